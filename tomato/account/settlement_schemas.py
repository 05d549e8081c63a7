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
    date: BusinessDate = Field(description="the business date to settle (YYYY-MM-DD)")


class SettlementRunResult(BaseModel):
    """What this run moved: `settled_count` pending lines (payments, refunds) settled, `settled_amount` fen moved
    from pending to available (net). A run of a date already settled moves nothing new and answers 0 / 0."""

    date: str = Field(description="the business date that was settled")
    settled_count: int = Field(description="pending lines (payments, refunds) this run settled")
    settled_amount: int = Field(description="net fen this run moved from pending to available")


class SettlementBatchView(BaseModel):
    id: str = Field(description="the batch's id (`SB…`)")  # "SB…"
    mch_no: str = Field(description="the merchant settled")
    date: str = Field(description="the business date settled (YYYY-MM-DD)")
    amount: int = Field(description="net fen moved from pending to available")
    line_count: int = Field(description="pending lines settled")
    journal_id: str = Field(description="the journal entry that booked it")
    created_at: UtcDateTime = Field(description="when it ran (RFC 3339 UTC)")


class SettlementBatchPage(BaseModel):
    data: list[SettlementBatchView] = Field(description="the settlement batches of this page")
    next_cursor: str | None = Field(description="pass as `cursor` to get the next page; null on the last page")


class CalendarDayUpdate(_Strict):
    working: StrictBool = Field(description="true makes the day a working day (settlements run), false a holiday")


class CalendarDayView(BaseModel):
    date: str = Field(description="the day (YYYY-MM-DD)")
    working: bool = Field(description="whether `T+N` settlement counts the day")
    weekend: bool = Field(description="Saturday or Sunday")  # Saturday or Sunday
    override: bool = Field(
        description="true when the calendar table decides the day (else weekdays work and weekends do not)"
    )  # the calendar table decides this day (else the default: weekdays on, weekends off)


class CalendarView(BaseModel):
    data: list[CalendarDayView] = Field(description="the days asked for, in order")
