"""Commands into and read models out of the channel context."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, field_validator, model_validator

from tomato.core.clock import UtcDateTime
from tomato.core.money import MAX_FEN
from tomato.core.pay_methods import PayMethod
from tomato.core.text import SafeText

ChannelName = Literal["alipay", "wechat", "bank"]
HHMM = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"


class ChannelAccountCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    channel: ChannelName
    name: SafeText = Field(min_length=1, max_length=128)
    config: dict[str, Any]
    mch_no: SafeText | None = Field(default=None, max_length=32)
    daily_limit: int | None = Field(default=None, ge=1, le=MAX_FEN)
    cost_ppm: StrictInt = Field(default=0, ge=0, le=1_000_000)  # the channel's own fee, parts per million


class ChannelAccountUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: SafeText | None = Field(default=None, min_length=1, max_length=128)  # omitted: unchanged; null: refused
    daily_limit: int | None = Field(default=None, ge=1, le=MAX_FEN)  # null: no limit
    cost_ppm: StrictInt | None = Field(default=None, ge=0, le=1_000_000)  # omitted: unchanged; null: refused

    @field_validator("name", "cost_ppm")
    @classmethod
    def _not_null(cls, value: object) -> object:
        """Runs only when the field is given: an account always has a name and a cost rate, so a null is a 422."""
        if value is None:
            raise ValueError("must not be null; omit it to keep the current value")
        return value


class ChannelAccountView(BaseModel):
    """Never carries the config: secrets are write-only."""

    id: str
    channel: str
    name: str
    status: str
    mch_no: str | None = None
    daily_limit: int | None = None
    cost_ppm: int = 0
    created_at: UtcDateTime


class Candidate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    channel_account_id: SafeText = Field(min_length=1, max_length=32)
    priority: int = Field(default=1, ge=0, le=1000)
    weight: int = Field(default=100, ge=1, le=1_000_000)


class RoutingRuleCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rank: int = Field(default=0, ge=-1_000_000, le=1_000_000)
    pay_methods: list[PayMethod] = Field(min_length=1)
    app_id: SafeText | None = Field(default=None, max_length=32)
    min_amount: int | None = Field(default=None, ge=0, le=MAX_FEN)
    max_amount: int | None = Field(default=None, ge=0, le=MAX_FEN)
    candidates: list[Candidate] = Field(min_length=1, max_length=50)
    time_start: str | None = Field(default=None, pattern=HHMM)
    time_end: str | None = Field(default=None, pattern=HHMM)

    @model_validator(mode="after")
    def _bounds(self) -> RoutingRuleCreate:
        if self.min_amount is not None and self.max_amount is not None and self.min_amount > self.max_amount:
            raise ValueError("min_amount must not exceed max_amount")
        if (self.time_start is None) != (self.time_end is None):
            raise ValueError("time_start and time_end go together")
        return self


class RoutingRuleView(RoutingRuleCreate):
    id: str
    created_at: UtcDateTime


class AccountHealth(BaseModel):
    """Breaker state (shared across processes) and this process's last-5-minute call statistics."""

    channel_account_id: str
    channel: str
    status: str
    breaker: str
    fail_counter: int
    opened_at: UtcDateTime | None
    calls: int
    success_rate: float | None
    p50_ms: float | None
    p99_ms: float | None
