"""How far behind a queue runs, so a sweeper can tell a lost message from one still waiting in a backlog.

The consumer and the worker report, for each message, how late it is (now − when it became due); the sweepers
treat something as lost only once it is overdue by more than a few times the recent lag. Under a backlog the
sweepers back off instead of enqueueing copies of what is already queued (which would only deepen the backlog).
"""

from __future__ import annotations

import time

WINDOW_S = 30.0


class LagGauge:
    """The largest lag observed within the last `WINDOW_S` seconds (two rolling buckets)."""

    def __init__(self) -> None:
        self._bucket = 0
        self._current = 0.0
        self._previous = 0.0

    def _roll(self, now: float) -> None:
        bucket = int(now // WINDOW_S)
        if bucket != self._bucket:
            self._previous = self._current if bucket == self._bucket + 1 else 0.0
            self._current = 0.0
            self._bucket = bucket

    def observe(self, lag_s: float) -> None:
        self._roll(time.monotonic())
        if lag_s > self._current:
            self._current = lag_s

    def value(self) -> float:
        self._roll(time.monotonic())
        return max(self._current, self._previous)
