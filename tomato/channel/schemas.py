"""Commands into and read models out of the channel context."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from tomato.core.pay_methods import PayMethod

ChannelName = Literal["alipay", "wechat", "bank"]


class ChannelAccountCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    channel: ChannelName
    name: str = Field(min_length=1, max_length=128)
    config: dict[str, Any]
    mch_no: str | None = Field(default=None, max_length=32)


class ChannelAccountView(BaseModel):
    """Never carries the config: secrets are write-only."""

    id: str
    channel: str
    name: str
    status: str
    mch_no: str | None = None
    created_at: datetime


class Candidate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    channel_account_id: str = Field(min_length=1, max_length=32)
    priority: int = Field(default=1, ge=0, le=1000)
    weight: int = Field(default=100, ge=1, le=1_000_000)


class RoutingRuleCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rank: int = Field(default=0, ge=-1_000_000, le=1_000_000)
    pay_methods: list[PayMethod] = Field(min_length=1)
    app_id: str | None = Field(default=None, max_length=32)
    min_amount: int | None = Field(default=None, ge=0)
    max_amount: int | None = Field(default=None, ge=0)
    candidates: list[Candidate] = Field(min_length=1, max_length=50)

    @model_validator(mode="after")
    def _bounds(self) -> RoutingRuleCreate:
        if self.min_amount is not None and self.max_amount is not None and self.min_amount > self.max_amount:
            raise ValueError("min_amount must not exceed max_amount")
        return self


class RoutingRuleView(RoutingRuleCreate):
    id: str
    created_at: datetime
