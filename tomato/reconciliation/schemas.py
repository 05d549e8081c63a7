"""Pydantic types at the reconciliation context's edge: commands in, read models out (docs/api.md)."""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from tomato.core.clock import UtcDateTime
from tomato.core.text import SafeText


class DiscrepancyType(StrEnum):
    MISSING_LOCAL = "MISSING_LOCAL"
    MISSING_CHANNEL = "MISSING_CHANNEL"
    AMOUNT_MISMATCH = "AMOUNT_MISMATCH"
    FEE_MISMATCH = "FEE_MISMATCH"
    STATUS_MISMATCH = "STATUS_MISMATCH"
    DUPLICATE = "DUPLICATE"


class DiscrepancyStatus(StrEnum):
    OPEN = "OPEN"
    AUTO_RESOLVED = "AUTO_RESOLVED"
    RESOLVED = "RESOLVED"


class BatchStatus(StrEnum):
    RUNNING = "RUNNING"
    MATCHED = "MATCHED"
    DISCREPANCIES = "DISCREPANCIES"
    ERROR = "ERROR"


def parse_day(value: str) -> date:
    """A calendar date written exactly YYYY-MM-DD (ValueError otherwise)."""
    if len(value) != 10 or not value.isascii():
        raise ValueError("must be a date YYYY-MM-DD")
    return date.fromisoformat(value)


class ReconciliationRun(BaseModel):
    model_config = ConfigDict(extra="forbid")

    channel_account_id: SafeText = Field(
        min_length=1, max_length=32, description="the channel account whose statement is reconciled"
    )
    date: str = Field(
        min_length=10,
        max_length=10,
        pattern=r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$",
        description="the statement's business date (YYYY-MM-DD)",
    )

    @field_validator("date")
    @classmethod
    def _calendar_date(cls, value: str) -> str:
        parse_day(value)
        return value


class Resolution(BaseModel):
    action: str = Field(description="what finance decided (e.g. `ACCEPT_CHANNEL`, `WRITE_OFF`)")
    note: str = Field(description="finance's note on why")
    by: str = Field(description="who resolved it (the admin token's name)")
    at: UtcDateTime = Field(description="when it was resolved (RFC 3339 UTC)")


class DiscrepancyResolve(BaseModel):
    model_config = ConfigDict(extra="forbid")

    action: Literal["ACCEPT_CHANNEL", "ACCEPT_LOCAL", "WRITE_OFF"] = Field(
        description="`ACCEPT_CHANNEL` (book the channel's figure), `ACCEPT_LOCAL` (keep ours) or `WRITE_OFF`"
    )
    note: SafeText = Field(min_length=1, max_length=500, description="why (kept with the resolution)")


class AnomalyResolve(BaseModel):
    model_config = ConfigDict(extra="forbid")

    action: Literal["RELEASE_TO_MERCHANT", "REFUND_PAYER", "WRITE_OFF"] = Field(
        description="`RELEASE_TO_MERCHANT`, `REFUND_PAYER` or `WRITE_OFF`"
    )
    note: SafeText = Field(min_length=1, max_length=500, description="why (kept with the resolution)")


class BatchView(BaseModel):
    id: str = Field(description="the batch's id (`RB…`)")
    channel_account_id: str = Field(description="the channel account reconciled")
    date: str = Field(description="the statement's business date (YYYY-MM-DD)")
    status: str = Field(description="`RUNNING`, `MATCHED`, `DISCREPANCIES` or `ERROR`")
    counts: dict[str, int] = Field(
        description="row counts of the run (statement rows, matched, missing on each side, …)"
    )
    discrepancies: int = Field(description="how many discrepancies the run recorded")
    error: str | None = Field(default=None, description="why the run failed; null unless `ERROR`")
    started_at: UtcDateTime | None = Field(default=None, description="when the run started (RFC 3339 UTC)")
    finished_at: UtcDateTime | None = Field(
        default=None, description="when the run finished (RFC 3339 UTC); null while running"
    )


class DiscrepancyView(BaseModel):
    id: str = Field(description="the discrepancy's id (`RD…`)")
    batch_id: str = Field(description="the batch that found it")
    type: str = Field(
        description="`MISSING_LOCAL`, `MISSING_CHANNEL`, `AMOUNT_MISMATCH`, `FEE_MISMATCH`, `STATUS_MISMATCH` or "
        "`DUPLICATE`"
    )
    status: str = Field(description="`OPEN`, `AUTO_RESOLVED` or `RESOLVED`")
    order_no: str | None = Field(description="our order concerned, if any")
    refund_no: str | None = Field(description="our refund concerned, if any")
    channel_trade_no: str | None = Field(description="the channel's trade number on the statement row, if any")
    local_amount: int | None = Field(description="our amount in fen; null when we have no record")
    channel_amount: int | None = Field(description="the statement's amount in fen; null when the statement has no row")
    local_fee: int | None = Field(description="our recorded channel cost in fen, if any")
    channel_fee: int | None = Field(description="the statement's fee in fen, if any")
    resolution: Resolution | None = Field(description="how finance resolved it; null while open")


class AnomalyItem(BaseModel):
    """A pay anomaly with finance's resolution (null while open)."""

    id: str = Field(description="the anomaly's id (`AN…`)")
    kind: str = Field(
        description="what happened, e.g. a payment after close or an amount the channel reported differently"
    )
    status: Literal["OPEN", "RESOLVED"] = Field(description="`OPEN` or `RESOLVED`")
    order_no: str | None = Field(description="the order concerned, if any")
    refund_no: str | None = Field(description="the refund concerned, if any")
    mch_no: str | None = Field(description="the merchant concerned, if known")
    channel_account_id: str | None = Field(description="the channel account that reported it")
    channel_trade_no: str | None = Field(description="the channel's trade number, if known")
    amount: int | None = Field(description="the channel's figure, in fen")
    note: str | None = Field(description="what the platform recorded about it")
    created_at: UtcDateTime = Field(description="when it was recorded (RFC 3339 UTC)")
    resolution: Resolution | None = Field(description="how finance resolved it; null while open")


class BatchPage(BaseModel):
    data: list[BatchView] = Field(description="the batches of this page")
    next_cursor: str | None = Field(description="pass as `cursor` to get the next page; null on the last page")


class DiscrepancyPage(BaseModel):
    data: list[DiscrepancyView] = Field(description="the discrepancies of this page")
    next_cursor: str | None = Field(description="pass as `cursor` to get the next page; null on the last page")


class AnomalyPage(BaseModel):
    data: list[AnomalyItem] = Field(description="the anomalies of this page")
    next_cursor: str | None = Field(description="pass as `cursor` to get the next page; null on the last page")


def counts_of(raw: dict[str, Any]) -> dict[str, int]:
    return {k: int(v) for k, v in raw.items()}
