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
    id: str = Field(description="the delivery's id")
    event_id: str = Field(description="the event delivered (`E…`), also the webhook's `id`")
    event_type: str = Field(description="the event's type, e.g. `pay.succeeded`")
    app_id: str = Field(description="the app the webhook is for")
    mch_no: str = Field(description="the merchant the webhook is for")
    url: str = Field(description="where it is delivered")
    status: str = Field(
        description="`PENDING`, `SUCCEEDED`, `FAILED` (retries exhausted) or `SKIPPED` (no URL to deliver to)"
    )  # PENDING | SUCCEEDED | FAILED | SKIPPED (no URL to deliver to)
    attempts: int = Field(description="attempts made so far")
    next_attempt_at: UtcDateTime | None = Field(
        description="when the next attempt is due (RFC 3339 UTC); null when finished"
    )
    last_status: int | None = Field(description="HTTP status of the last attempt; null if it got no answer")
    last_error: str | None = Field(description="what went wrong on the last attempt, if anything")
    event_created_at: UtcDateTime = Field(description="when the event happened (RFC 3339 UTC)")
    created_at: UtcDateTime = Field(description="when the delivery was created (RFC 3339 UTC)")
    updated_at: UtcDateTime = Field(description="when the delivery last changed (RFC 3339 UTC)")
    finished_at: UtcDateTime | None = Field(
        description="when it succeeded, failed for good or was skipped (RFC 3339 UTC); null while pending"
    )


class AttemptView(BaseModel):
    attempt_no: int = Field(description="1 for the first attempt, counting up")
    started_at: UtcDateTime = Field(description="when the attempt started (RFC 3339 UTC)")
    latency_ms: int = Field(description="how long the attempt took, in milliseconds")
    http_status: int | None = Field(description="the endpoint's HTTP status; null if it did not answer")
    response_body: str | None = Field(description="the start of the endpoint's answer, for diagnosis")
    error_class: str | None = Field(
        description="the class of the failure (a timeout, a refused connection, an address the SSRF guard refused, "
        "…); null on an answer"
    )
    error_message: str | None = Field(description="the failure's message; null on an answer")
    succeeded: bool = Field(description="true for a 2xx answer")


class DeliveryDetail(DeliveryView):
    attempt_log: list[AttemptView] = Field(description="every attempt of the delivery, first first")


class ResendRange(BaseModel):
    """`POST /admin/deliveries/resend`: every FAILED delivery of the merchant created in [from, to).

    `from` and `to` are RFC 3339 strings with a time zone; a number (which pydantic would read as Unix seconds) or
    a time that has no UTC equivalent in the calendar (`0001-01-01T00:00:00+01:00`) is a 422 naming the field."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    mch_no: SafeText = Field(min_length=1, max_length=32, description="the merchant whose FAILED deliveries are resent")
    from_: datetime = Field(
        alias="from", description="start of the range of delivery creation times (RFC 3339 with a time zone, inclusive)"
    )
    to: datetime = Field(description="end of the range (RFC 3339 with a time zone, exclusive)")

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
    resent: int = Field(description="how many FAILED deliveries were queued again")


@dataclass(frozen=True)
class EventFilter:
    """What `GET /v1/events` may narrow the feed to: one type, and a creation window [created_from, created_to)."""

    event_type: str | None = None
    created_from: datetime | None = None
    created_to: datetime | None = None


@dataclass(frozen=True)
class EventPage:
    """Raw webhook bodies (byte-identical to what was POSTed), oldest first."""

    payloads: list[str]
    last_position: int | None
    more: bool


class WebhookEvent(BaseModel):
    """A webhook body as delivered and as listed by `GET /v1/events` (docs/webhooks.md); `data` is the order or
    refund object the event is about."""

    id: str = Field(description="the event's id (`E…`), stable across retries: deduplicate on it")
    type: str = Field(description="the event's type, e.g. `pay.succeeded`, `refund.succeeded`, `payout.failed`")
    created_at: str = Field(description="when the event happened (RFC 3339 UTC)")
    data: dict[str, Any] = Field(description="the order, refund or payout object the event is about, as it was then")
