"""Commands into and read models out of settlement and the holiday calendar."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool

from tomato.account.calendar import parse_date
from tomato.core.clock import UtcDateTime


def _real_date(value: str) -> str:
    parse_date(value)  # 2026-02-30 has the shape but is no date
    return value


BusinessDate = Annotated[
    str,
    Field(min_length=10, max_length=10, pattern=r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$", examples=["2026-12-07"]),
    AfterValidator(_real_date),
]
"""A business date `YYYY-MM-DD` (ASCII digits, a real calendar date); anything else is a 422 naming the field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SettlementRunRequest(_Strict):
    date: BusinessDate


class SettlementRunResult(BaseModel):
    """What this run moved: `settled_count` pending lines (payments, refunds) settled, `settled_amount` fen moved
    from pending to available (net). A run of a date already settled moves nothing new and answers 0 / 0."""

    date: str
    settled_count: int
    settled_amount: int


class SettlementBatchView(BaseModel):
    id: str  # "SB…"
    mch_no: str
    date: str
    amount: int
    line_count: int
    journal_id: str
    created_at: UtcDateTime


class SettlementBatchPage(BaseModel):
    data: list[SettlementBatchView]
    next_cursor: str | None


class CalendarDayUpdate(_Strict):
    working: StrictBool


class CalendarDayView(BaseModel):
    date: str
    working: bool
    weekend: bool  # Saturday or Sunday
    override: bool  # the calendar table decides this day (else the default: weekdays on, weekends off)


class CalendarView(BaseModel):
    data: list[CalendarDayView]
