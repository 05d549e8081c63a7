"""Read models and commands at the notice context's edge (admin API and `GET /v1/events`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, model_validator

from tomato.core.text import SafeText


class DeliveryView(BaseModel):
    id: str
    event_id: str
    event_type: str
    app_id: str
    mch_no: str
    url: str
    status: str  # PENDING | SUCCEEDED | FAILED | SKIPPED (no URL to deliver to)
    attempts: int
    next_attempt_at: datetime | None
    last_status: int | None
    last_error: str | None
    event_created_at: datetime
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None


class AttemptView(BaseModel):
    attempt_no: int
    started_at: datetime
    latency_ms: int
    http_status: int | None
    response_body: str | None
    error_class: str | None
    error_message: str | None
    succeeded: bool


class DeliveryDetail(DeliveryView):
    attempt_log: list[AttemptView]


class ResendRange(BaseModel):
    """`POST /admin/deliveries/resend`: every FAILED delivery of the merchant created in [from, to)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    mch_no: SafeText = Field(min_length=1, max_length=32)
    from_: datetime = Field(alias="from")
    to: datetime

    @model_validator(mode="after")
    def _ordered(self) -> ResendRange:
        if self.from_.tzinfo is None or self.to.tzinfo is None:
            raise ValueError("from and to need a time zone (RFC 3339)")
        if self.to <= self.from_:
            raise ValueError("to must be after from")
        return self


class ResendResult(BaseModel):
    resent: int


@dataclass(frozen=True)
class EventPage:
    """Raw webhook bodies (byte-identical to what was POSTed), oldest first."""

    payloads: list[str]
    last_position: int | None
    more: bool
