"""When to ask the channel again about a PAYING order: 30 s, 1 m, 2 m, 5 m, 10 m, then every 30 m until
expiry + 1 day; and when to try again to close an expired order the channel would not let us close: 1 m, 2 m,
5 m, 10 m, then every 30 m (all divided by the compensation time scale)."""

from __future__ import annotations

from datetime import datetime, timedelta

from tomato.core.clock import as_utc

TIERS_S = (30, 60, 120, 300, 600)
STEADY_S = 1800
GIVE_UP_AFTER_EXPIRY = timedelta(days=1)
CLOSE_RETRY_S = (60, 120, 300, 600, 1800)


def next_query_at(created_at: datetime, expire_at: datetime, query_count: int, scale: float) -> datetime | None:
    """The time of query number `query_count + 1`, or None once past expiry + 1 day."""
    delays = [*TIERS_S, *([STEADY_S] * (query_count + 1))][: query_count + 1]
    at = as_utc(created_at) + timedelta(seconds=sum(delays) / scale)
    if at > as_utc(expire_at) + GIVE_UP_AFTER_EXPIRY / scale:
        return None
    return at


def next_close_at(now: datetime, close_failures: int, scale: float) -> datetime:
    """When to try closing an expired order again after its `close_failures`-th failed close (1, 2, …)."""
    delay = CLOSE_RETRY_S[min(close_failures, len(CLOSE_RETRY_S)) - 1]
    return as_utc(now) + timedelta(seconds=delay / scale)
