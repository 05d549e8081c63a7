"""Read models and commands at the notice context's edge (admin API and `GET /v1/events`)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from tomato.core.clock import UtcDateTime
from tomato.core.text import SafeText
from tomato.pay.schemas import field_errors

RFC3339 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})", re.ASCII
)


class DeliveryView(BaseModel):
    id: str
    event_id: str
    event_type: str
    app_id: str
    mch_no: str
    url: str
    status: str  # PENDING | SUCCEEDED | FAILED | SKIPPED (no URL to deliver to)
    attempts: int
    next_attempt_at: UtcDateTime | None
    last_status: int | None
    last_error: str | None
    event_created_at: UtcDateTime
    created_at: UtcDateTime
    updated_at: UtcDateTime
    finished_at: UtcDateTime | None


class AttemptView(BaseModel):
    attempt_no: int
    started_at: UtcDateTime
    latency_ms: int
    http_status: int | None
    response_body: str | None
    error_class: str | None
    error_message: str | None
    succeeded: bool


class DeliveryDetail(DeliveryView):
    attempt_log: list[AttemptView]


class ResendRange(BaseModel):
    """`POST /admin/deliveries/resend`: every FAILED delivery of the merchant created in [from, to).

    `from` and `to` are RFC 3339 strings with a time zone; a number (which pydantic would read as Unix seconds) or
    a time that has no UTC equivalent in the calendar (`0001-01-01T00:00:00+01:00`) is a 422 naming the field."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    mch_no: SafeText = Field(min_length=1, max_length=32)
    from_: datetime = Field(alias="from")
    to: datetime

    @field_validator("from_", "to", mode="before")
    @classmethod
    def _rfc3339(cls, value: object) -> object:
        if not isinstance(value, str) or RFC3339.fullmatch(value) is None:
            raise ValueError("must be an RFC 3339 date-time with a time zone, e.g. 2024-05-01T00:00:00+08:00")
        return value

    @field_validator("from_", "to")
    @classmethod
    def _in_utc(cls, value: datetime) -> datetime:
        """Stored times are UTC: a time whose UTC equivalent falls outside years 1-9999 cannot be compared."""
        try:
            return value.astimezone(UTC)
        except OverflowError as exc:
            raise ValueError("outside the calendar once converted to UTC") from exc

    @model_validator(mode="after")
    def _ordered(self) -> ResendRange:
        if self.to <= self.from_:
            raise field_errors("ResendRange", [("to", "must be after from")])
        return self


class ResendResult(BaseModel):
    resent: int


@dataclass(frozen=True)
class EventPage:
    """Raw webhook bodies (byte-identical to what was POSTed), oldest first."""

    payloads: list[str]
    last_position: int | None
    more: bool


class WebhookEvent(BaseModel):
    """A webhook body as delivered and as listed by `GET /v1/events` (docs/webhooks.md); `data` is the order or
    refund object the event is about."""

    id: str
    type: str
    created_at: str
    data: dict[str, Any]
