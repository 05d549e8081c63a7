"""Finance endpoints for settlement (run a date, list batches) and the holiday calendar (finance or operator)."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request

from tomato.account.calendar import parse_date
from tomato.account.settlement_schemas import (
    BusinessDate,
    CalendarDayUpdate,
    CalendarDayView,
    CalendarView,
    SettlementBatchPage,
    SettlementRunRequest,
    SettlementRunResult,
)
from tomato.core.errors import InvalidRequest
from tomato.core.text import SafeText
from tomato.gateway.audit_trail import audited
from tomato.gateway.deps import admin_route, container
from tomato.gateway.paging import Cursor, Limit, check_limit, cursor_int, decode_cursor, page

finance = APIRouter(prefix="/admin", tags=["admin: settlement"], route_class=admin_route("finance"))
calendar = APIRouter(prefix="/admin", tags=["admin: settlement"], route_class=admin_route("operator", "finance"))

_BAD_INPUT: dict[int | str, dict[str, Any]] = {422: {"description": "INVALID_REQUEST naming the field"}}


def _date(field: str, value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return parse_date(value)
    except ValueError as exc:
        raise InvalidRequest.field(field, str(exc)) from exc


@finance.post("/settlements/run", response_model=SettlementRunResult, responses=_BAD_INPUT)
async def run_settlement(cmd: SettlementRunRequest, request: Request) -> SettlementRunResult:
    """Settles everything due on or before `date` (a future date is allowed) and answers when it has finished;
    a date already settled settles nothing new (`settled_count` 0, `settled_amount` 0)."""
    day = _date("date", cmd.date)
    assert day is not None
    result = await container(request).settlement.run(day)
    await audited(request, "settlement.run", day.isoformat(), after=result)
    return result


@finance.get("/settlements", response_model=SettlementBatchPage, responses=_BAD_INPUT)
async def list_settlements(
    request: Request,
    date: Annotated[BusinessDate | None, Query()] = None,
    mch_no: Annotated[SafeText | None, Query(max_length=32)] = None,
    limit: Limit = None,
    cursor: Cursor = None,
) -> dict[str, Any]:
    """Settlement batches, newest first; `date` and `mch_no` filter them."""
    n = check_limit(limit)
    key = decode_cursor(cursor)
    before = None if key is None else cursor_int(key.removeprefix("SB"))
    batches = await container(request).settlement.list_batches(_date("date", date), mch_no, before, n + 1)
    return page(batches, n, lambda b: b.id.removeprefix("SB"), lambda b: b.model_dump(mode="json"))


@calendar.get("/calendar", response_model=CalendarView, responses=_BAD_INPUT)
async def get_calendar(
    request: Request,
    from_: Annotated[BusinessDate | None, Query(alias="from")] = None,
    to: Annotated[BusinessDate | None, Query()] = None,
) -> CalendarView:
    """Every day from `from` (default today's business date) to `to` (default 30 days later, at most 366 days):
    whether it is a working day and whether the calendar table decides it."""
    return await container(request).settlement.calendar(_date("from", from_), _date("to", to))


@calendar.put("/calendar/{date}", response_model=CalendarDayView, responses=_BAD_INPUT)
async def set_calendar_day(
    date: Annotated[BusinessDate, Path()], cmd: CalendarDayUpdate, request: Request
) -> CalendarDayView:
    """`{"working": false}` makes a weekday a holiday; `{"working": true}` makes a weekend day a working day (调休)."""
    day = _date("date", date)
    assert day is not None
    return await _set_day(request, day, cmd.working)


@calendar.delete("/calendar/{date}", response_model=CalendarDayView, responses=_BAD_INPUT)
async def clear_calendar_day(date: Annotated[BusinessDate, Path()], request: Request) -> CalendarDayView:
    """Removes the day's override: it is a working day again exactly when it is a weekday."""
    day = _date("date", date)
    assert day is not None
    return await _set_day(request, day, None)


async def _set_day(request: Request, day: date, working: bool | None) -> CalendarDayView:
    svc = container(request).settlement
    before = (await svc.calendar(day, day)).data[0]
    after = await svc.set_calendar_day(day, working)
    action = "calendar.clear" if working is None else "calendar.set"
    await audited(request, action, day.isoformat(), before=before, after=after)
    return after
