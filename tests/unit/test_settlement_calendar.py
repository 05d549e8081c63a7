"""Due dates on working days (weekends, holidays, 调休) and business dates in the business zone, not the host's
(reliability scenario L10: payments at Fri 23:59:59 and Sat 00:00:00 Asia/Shanghai)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from tomato.account.calendar import WorkCalendar, business_date_at, due_date, parse_cycle, parse_date

FRI, SAT, SUN, MON, TUE, WED = (date(2026, 12, d) for d in (4, 5, 6, 7, 8, 9))
PLAIN = WorkCalendar()
SHANGHAI = "Asia/Shanghai"
FRI_LAST_SECOND = datetime(2026, 12, 4, 15, 59, 59, tzinfo=UTC)  # Fri 23:59:59 in Shanghai
SAT_FIRST_SECOND = datetime(2026, 12, 4, 16, 0, 0, tzinfo=UTC)  # Sat 00:00:00 in Shanghai


def test_weekends_are_off_and_weekdays_on_by_default() -> None:
    assert [PLAIN.is_working(d) for d in (FRI, SAT, SUN, MON)] == [True, False, False, True]


@pytest.mark.parametrize(
    ("booked", "cycle", "due"),
    [
        (FRI, "T+1", MON),  # across the weekend
        (SAT, "T+1", MON),
        (SUN, "T+1", MON),
        (MON, "T+1", TUE),
        (FRI, "T+2", TUE),
        (FRI, "T+3", WED),
        (FRI, "D+0", FRI),
        (SAT, "D+0", SAT),  # D+0 is the business date itself, working day or not
        (FRI, "T+30", date(2027, 1, 15)),  # 30 weekdays: 6 full weeks
    ],
)
def test_due_dates_on_the_default_calendar(booked: date, cycle: str, due: date) -> None:
    assert due_date(booked, cycle, PLAIN) == due


def test_a_holiday_pushes_the_due_date_and_a_worked_weekend_day_pulls_it() -> None:
    holiday = WorkCalendar({MON: False})
    assert due_date(FRI, "T+1", holiday) == TUE
    assert due_date(FRI, "T+2", holiday) == WED
    worked_saturday = WorkCalendar({SAT: True})  # 调休
    assert due_date(FRI, "T+1", worked_saturday) == SAT
    assert due_date(FRI, "T+2", worked_saturday) == MON
    golden_week = WorkCalendar({date(2026, 10, d): False for d in range(1, 8)} | {date(2026, 10, 10): True})
    assert due_date(date(2026, 9, 30), "T+1", golden_week) == date(2026, 10, 8)
    assert due_date(date(2026, 10, 9), "T+1", golden_week) == date(2026, 10, 10)  # the worked Saturday


@pytest.mark.parametrize("cycle", ["T+0", "T+31", "D+1", "t+1", "T+01", "T+1 ", "T+1\n", "T+١", "", "T1"])
def test_anything_but_d0_and_t1_to_t30_is_not_a_cycle(cycle: str) -> None:
    with pytest.raises(ValueError):
        parse_cycle(cycle)
    with pytest.raises(ValueError):
        due_date(FRI, cycle, PLAIN)


def test_cycle_lengths() -> None:
    assert [parse_cycle(c) for c in ("D+0", "T+1", "T+9", "T+10", "T+30")] == [0, 1, 9, 10, 30]


@pytest.mark.parametrize("text", ["2026-02-30", "2026-1-01", "26-01-01", "2026-01-01T00", "２０２６-01-01", ""])
def test_malformed_dates_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_date(text)


def test_the_last_second_of_friday_and_the_first_of_saturday_in_shanghai() -> None:
    assert business_date_at(FRI_LAST_SECOND, SHANGHAI) == FRI
    assert business_date_at(SAT_FIRST_SECOND, SHANGHAI) == SAT
    assert due_date(business_date_at(FRI_LAST_SECOND, SHANGHAI), "T+1", PLAIN) == MON
    assert due_date(business_date_at(SAT_FIRST_SECOND, SHANGHAI), "T+1", PLAIN) == MON
    # the same instants written with another offset are the same business dates
    pacific = timezone(timedelta(hours=-8))
    assert business_date_at(FRI_LAST_SECOND.astimezone(pacific), SHANGHAI) == FRI
    assert business_date_at(SAT_FIRST_SECOND.astimezone(pacific), SHANGHAI) == SAT


def test_a_naive_instant_has_no_business_date() -> None:
    with pytest.raises(ValueError):
        business_date_at(datetime(2026, 12, 4, 23, 59, 59), SHANGHAI)  # noqa: DTZ001 — the point of the test


SCRIPT = """
import json, time
from datetime import UTC, datetime
from tomato.account.calendar import business_date_at
print(json.dumps({"offset_s": -time.timezone, "dates": [
    business_date_at(datetime(2026, 12, 4, 15, 59, 59, tzinfo=UTC), "Asia/Shanghai").isoformat(),
    business_date_at(datetime(2026, 12, 4, 16, 0, 0, tzinfo=UTC), "Asia/Shanghai").isoformat(),
]}))
"""


@pytest.mark.parametrize(("host_tz", "offset_s"), [("America/Los_Angeles", -8 * 3600), ("Asia/Tokyo", 9 * 3600)])
def test_business_dates_do_not_depend_on_the_host_time_zone(host_tz: str, offset_s: int) -> None:
    env = {**os.environ, "TZ": host_tz}
    out = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, check=True)
    got = json.loads(out.stdout)
    assert got["offset_s"] == offset_s  # the host zone really was another one
    assert got["dates"] == ["2026-12-04", "2026-12-05"]
