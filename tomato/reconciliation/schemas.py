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

    channel_account_id: SafeText = Field(min_length=1, max_length=32)
    date: str = Field(min_length=10, max_length=10, pattern=r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")

    @field_validator("date")
    @classmethod
    def _calendar_date(cls, value: str) -> str:
        parse_day(value)
        return value


class Resolution(BaseModel):
    action: str
    note: str
    by: str
    at: UtcDateTime


class DiscrepancyResolve(BaseModel):
    model_config = ConfigDict(extra="forbid")

    action: Literal["ACCEPT_CHANNEL", "ACCEPT_LOCAL", "WRITE_OFF"]
    note: SafeText = Field(min_length=1, max_length=500)


class AnomalyResolve(BaseModel):
    model_config = ConfigDict(extra="forbid")

    action: Literal["RELEASE_TO_MERCHANT", "REFUND_PAYER", "WRITE_OFF"]
    note: SafeText = Field(min_length=1, max_length=500)


class BatchView(BaseModel):
    id: str
    channel_account_id: str
    date: str
    status: str
    counts: dict[str, int]
    discrepancies: int
    error: str | None = None
    started_at: UtcDateTime | None = None
    finished_at: UtcDateTime | None = None


class DiscrepancyView(BaseModel):
    id: str
    batch_id: str
    type: str
    status: str
    order_no: str | None
    refund_no: str | None
    channel_trade_no: str | None
    local_amount: int | None
    channel_amount: int | None
    local_fee: int | None
    channel_fee: int | None
    resolution: Resolution | None


class AnomalyItem(BaseModel):
    """A pay anomaly with finance's resolution (null while open)."""

    id: str
    kind: str
    status: Literal["OPEN", "RESOLVED"]
    order_no: str | None
    refund_no: str | None
    mch_no: str | None
    channel_account_id: str | None
    channel_trade_no: str | None
    amount: int | None
    note: str | None
    created_at: UtcDateTime
    resolution: Resolution | None


class BatchPage(BaseModel):
    data: list[BatchView]
    next_cursor: str | None


class DiscrepancyPage(BaseModel):
    data: list[DiscrepancyView]
    next_cursor: str | None


class AnomalyPage(BaseModel):
    data: list[AnomalyItem]
    next_cursor: str | None


def counts_of(raw: dict[str, Any]) -> dict[str, int]:
    return {k: int(v) for k, v in raw.items()}
