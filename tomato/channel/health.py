"""Per-account call statistics over a sliding 5-minute window: success rate and p50/p99 latency.

Kept in-process (each serve worker sees its own traffic); the breaker state, which must agree across processes,
is shared separately (`breakers.py`: in Redis when configured).
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass

WINDOW_S = 300.0


@dataclass(frozen=True)
class HealthSnapshot:
    calls: int
    success_rate: float | None
    p50_ms: float | None
    p99_ms: float | None


def _percentile(sorted_values: list[float], q: float) -> float:
    index = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[index]


class HealthWindow:
    def __init__(self, window_s: float = WINDOW_S) -> None:
        self._window = window_s
        self._calls: dict[str, deque[tuple[float, float, bool]]] = {}

    def record(self, account_id: str, latency_s: float, ok: bool, *, at: float | None = None) -> None:
        calls = self._calls.setdefault(account_id, deque())
        now = time.monotonic() if at is None else at
        calls.append((now, latency_s, ok))
        self._prune(calls, now)

    def _prune(self, calls: deque[tuple[float, float, bool]], now: float) -> None:
        while calls and calls[0][0] < now - self._window:
            calls.popleft()

    def snapshot(self, account_id: str, *, at: float | None = None) -> HealthSnapshot:
        calls = self._calls.get(account_id, deque())
        self._prune(calls, time.monotonic() if at is None else at)
        if not calls:
            return HealthSnapshot(0, None, None, None)
        latencies = sorted(c[1] * 1000 for c in calls)
        ok = sum(1 for c in calls if c[2])
        return HealthSnapshot(len(calls), ok / len(calls), _percentile(latencies, 0.5), _percentile(latencies, 0.99))

    def accounts(self) -> list[str]:
        return list(self._calls)
