"""A small Prometheus text registry: request counts and latency histograms by route and status.

Kept in-process and dependency-free; each `serve` worker exposes its own figures.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Callable

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Metrics:
    def __init__(self) -> None:
        self._count: dict[tuple[str, str, int], int] = defaultdict(int)
        self._hist: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0] * (len(BUCKETS) + 1))
        self._sum: dict[tuple[str, str], float] = defaultdict(float)
        self._gauges: dict[str, Callable[[], float]] = {}
        self._collectors: list[Callable[[], list[str]]] = []

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        self._count[(method, route, status)] += 1
        self._hist[(method, route)][bisect.bisect_left(BUCKETS, seconds)] += 1
        self._sum[(method, route)] += seconds

    def gauge(self, name: str, read: Callable[[], float]) -> None:
        self._gauges[name] = read

    def collector(self, collect: Callable[[], list[str]]) -> None:
        """Adds lines (with their own HELP/TYPE) computed at scrape time, e.g. per-channel-account health."""
        self._collectors.append(collect)

    def render(self) -> str:
        out = [
            "# HELP tomato_http_requests_total HTTP requests by method, route and status.",
            "# TYPE tomato_http_requests_total counter",
        ]
        for (method, route, status), n in sorted(self._count.items()):
            out.append(f'tomato_http_requests_total{{method="{method}",route="{route}",status="{status}"}} {n}')
        out += [
            "# HELP tomato_http_request_duration_seconds HTTP request latency by method and route.",
            "# TYPE tomato_http_request_duration_seconds histogram",
        ]
        for (method, route), counts in sorted(self._hist.items()):
            labels = f'method="{method}",route="{route}"'
            running = 0
            for bound, n in zip(BUCKETS, counts, strict=False):
                running += n
                out.append(f'tomato_http_request_duration_seconds_bucket{{{labels},le="{bound}"}} {running}')
            running += counts[-1]
            out.append(f'tomato_http_request_duration_seconds_bucket{{{labels},le="+Inf"}} {running}')
            out.append(f"tomato_http_request_duration_seconds_sum{{{labels}}} {self._sum[(method, route)]:.6f}")
            out.append(f"tomato_http_request_duration_seconds_count{{{labels}}} {running}")
        for name, read in sorted(self._gauges.items()):
            out += [f"# TYPE {name} gauge", f"{name} {read()}"]
        for collect in self._collectors:
            out += collect()
        return "\n".join(out) + "\n"
