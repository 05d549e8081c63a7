"""When to ask the channel again about a PAYING order: 30 s, 1 m, 2 m, 5 m, 10 m, then every 30 m until
expiry + 1 day (all divided by the compensation time scale)."""

from __future__ import annotations

from datetime import datetime, timedelta

from tomato.core.clock import as_utc

TIERS_S = (30, 60, 120, 300, 600)
STEADY_S = 1800
GIVE_UP_AFTER_EXPIRY = timedelta(days=1)


def next_query_at(created_at: datetime, expire_at: datetime, query_count: int, scale: float) -> datetime | None:
    """The time of query number `query_count + 1`, or None once past expiry + 1 day."""
    delays = [*TIERS_S, *([STEADY_S] * (query_count + 1))][: query_count + 1]
    at = as_utc(created_at) + timedelta(seconds=sum(delays) / scale)
    if at > as_utc(expire_at) + GIVE_UP_AFTER_EXPIRY / scale:
        return None
    return at
