"""Working days and settlement due dates: pure functions, no database, no host time zone.

A day is a working day unless the holiday calendar says otherwise: Saturdays and Sundays are not, Monday to Friday
are, and a calendar row overrides either way (a public holiday on a weekday; a weekend day worked in exchange, 调休).
A merchant's cycle says when a payment booked on business date B becomes due for settlement:

- `D+0`: on B itself (whatever day of the week it is);
- `T+N` (N = 1–30): on the N-th working day after B — `T+1` of a Friday's payment is the next Monday when that is
  a working day.

Business dates are calendar dates in the business time zone (`TOMATO_BUSINESS_TIMEZONE`, Asia/Shanghai by default),
computed from an aware instant with `business_date_at`, never from the host's local time.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from tomato.merchant.schemas import SETTLE_CYCLE_PATTERN

_CYCLE = re.compile(SETTLE_CYCLE_PATTERN, re.ASCII)


@dataclass(frozen=True)
class WorkCalendar:
    """Weekends off, weekdays on, unless `overrides` (date → working) says otherwise."""

    overrides: Mapping[date, bool] = field(default_factory=dict)

    def is_working(self, day: date) -> bool:
        found = self.overrides.get(day)
        if found is not None:
            return found
        return day.weekday() < 5


def parse_cycle(cycle: str) -> int:
    """The number of working days a cycle waits: 0 for `D+0`, N for `T+N`; ValueError for anything else."""
    if _CYCLE.fullmatch(cycle) is None:
        raise ValueError(f"not a settlement cycle: {cycle!r} (D+0, T+1 … T+30)")
    return 0 if cycle == "D+0" else int(cycle[2:])


def due_date(business_date: date, cycle: str, calendar: WorkCalendar) -> date:
    """The date a line booked on `business_date` becomes due under `cycle` (see the module docstring).

    Terminates for any calendar: overrides are finite, and past them every Monday is a working day."""
    remaining = parse_cycle(cycle)
    day = business_date
    while remaining > 0:
        day += timedelta(days=1)
        if calendar.is_working(day):
            remaining -= 1
    return day


def business_date_at(instant: datetime, tz: str | ZoneInfo) -> date:
    """The business date of an aware instant in the business time zone (a naive instant is refused: it would be
    read in the host's zone)."""
    if instant.tzinfo is None:
        raise ValueError("an instant without a time zone has no business date")
    zone = tz if isinstance(tz, ZoneInfo) else ZoneInfo(tz)
    return instant.astimezone(zone).date()


def parse_date(text: str) -> date:
    """A `YYYY-MM-DD` business date (ASCII digits only); ValueError otherwise."""
    if re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", text, re.ASCII) is None:
        raise ValueError("must be a date YYYY-MM-DD")
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise ValueError("must be a date YYYY-MM-DD") from exc
