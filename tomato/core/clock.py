"""An injectable clock so tests can freeze or move time; always timezone-aware UTC."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Annotated, Protocol
from zoneinfo import ZoneInfo

from pydantic import PlainSerializer


class Clock(Protocol):
    def now(self) -> datetime: ...
    def timestamp(self) -> float: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    def timestamp(self) -> float:
        return time.time()


class FrozenClock:
    """A clock that only moves when told to."""

    def __init__(self, at: datetime) -> None:
        self._at = at

    def now(self) -> datetime:
        return self._at

    def timestamp(self) -> float:
        return self._at.timestamp()

    def advance(self, delta: timedelta) -> None:
        self._at += delta


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """SQLite returns naive datetimes; every stored time is UTC, so naive means UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def rfc3339(value: datetime | None) -> str | None:
    if value is None:
        return None
    return as_utc(value).strftime("%Y-%m-%dT%H:%M:%SZ")


def business_date(moment: datetime, tz_name: str) -> str:
    """The business date ("YYYY-MM-DD") of an instant in the business time zone (`TOMATO_BUSINESS_TIMEZONE`),
    whatever the host's zone. A naive `moment` is UTC, like every stored time."""
    return as_utc(moment).astimezone(ZoneInfo(tz_name)).date().isoformat()


UtcDateTime = Annotated[datetime, PlainSerializer(rfc3339, return_type=str, when_used="json")]
"""A read-model time that renders like every API time, RFC 3339 UTC (`2026-11-24T10:30:00Z`), whatever tzinfo the
database handed back (SQLite: none)."""
