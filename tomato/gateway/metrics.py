"""The process's Prometheus metrics (prometheus_client): HTTP requests and latency by route template and status, plus
figures computed at scrape time (channel breakers, backlogs) by collectors and async probes.

One process: the counters live in this object's registry. `serve --workers N`: the CLI points every worker at a
fresh `PROMETHEUS_MULTIPROC_DIR` before they start (prometheus_client picks its storage when it is imported), each
worker writes its counters there, and whichever worker answers a scrape sums them all (MultiProcessCollector), so
one scrape reports the requests of every worker. Scrape-time figures come from the answering worker.
"""

from __future__ import annotations

import asyncio
import glob
import logging
import os
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics, generate_latest
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
PROBE_TIMEOUT_S = 5.0  # under Prometheus' default scrape timeout (10 s): a stuck database never fails the scrape

Families = Iterable[Metric]
Probe = Callable[[], Awaitable[Families]]


def multiprocess_dir() -> str | None:
    """The directory of `serve --workers N` (or of any multi-process server the operator set it for)."""
    return os.environ.get(MULTIPROC_ENV) or None


class _Live(Collector):
    """A collector computed at each scrape by a plain function (in-memory state such as breakers)."""

    def __init__(self, read: Callable[[], Families]) -> None:
        self._read = read

    def describe(self) -> Families:
        return []  # names are not checked up front: reading here would run the collector at registration

    def collect(self) -> Families:
        return list(self._read())


class _Fixed(Collector):
    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> Families:
        return self._families


class _HttpMetrics:
    def __init__(self, registry: CollectorRegistry | None) -> None:
        self.requests = Counter(
            "tomato_http_requests", "HTTP requests by method, route template and status.",
            ["method", "route", "status"], registry=registry,
        )  # fmt: skip
        self.duration = Histogram(
            "tomato_http_request_duration_seconds", "HTTP request latency by method and route template.",
            ["method", "route"], buckets=BUCKETS, registry=registry,
        )  # fmt: skip
        self.served = Gauge(
            "tomato_serve_process_requests",
            "Requests this serve process answered since it started (one series per live worker, label pid, under "
            "serve --workers N).",
            registry=registry, multiprocess_mode="liveall",
        )  # fmt: skip


class Metrics:
    """What `/metrics` shows for one process. `collector` adds a synchronous scrape-time reader, `probe` an async one
    (database counts), `registry` takes the process's own counters (the scheduler's job runs). `http=False` for the
    worker's and scheduler's metrics port, which serves no API."""

    def __init__(self, *, multiproc: str | None = None, http: bool = True) -> None:
        # no `_created` series beside every counter: nobody graphs them
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.registry = CollectorRegistry(auto_describe=True)
        self.multiproc = multiproc
        # multi-process: the HTTP figures live in files and are summed at scrape, so they join no registry
        self._http = _HttpMetrics(None if multiproc else self.registry) if http else None
        self._probes: list[Probe] = []
        self._children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        if self._http is None:
            return
        key = (method, route, status)
        children = self._children.get(key)
        if children is None:  # labels() (a lock, validation, a dict lookup) once per series, not per request
            children = self._children[key] = (
                self._http.requests.labels(method, route, str(status)), self._http.duration.labels(method, route)
            )
        children[0].inc()
        children[1].observe(seconds)
        self._http.served.inc()

    def collector(self, read: Callable[[], Families]) -> None:
        """Adds families computed at scrape time, e.g. per-channel-account breaker state."""
        self.registry.register(_Live(read))

    def probe(self, read: Probe) -> None:
        """Adds families read asynchronously at scrape time (a database count); one that fails or takes longer than
        `PROBE_TIMEOUT_S` is left out of that scrape (with a log line) instead of failing it."""
        self._probes.append(read)

    async def render(self) -> bytes:
        results = await asyncio.gather(
            *(asyncio.wait_for(probe(), PROBE_TIMEOUT_S) for probe in self._probes), return_exceptions=True
        )
        probed: list[Metric] = []
        for result in results:
            if isinstance(result, BaseException):
                log.warning("a metrics probe failed: %r", result)
            else:
                probed.extend(result)
        parts = [generate_latest(self.registry)]
        if self.multiproc:
            parts.insert(0, await asyncio.to_thread(_read_multiproc, self.multiproc))
        if probed:
            scraped = CollectorRegistry(auto_describe=False)
            scraped.register(_Fixed(probed))
            parts.append(generate_latest(scraped))
        return b"".join(parts)

    def process_exiting(self) -> None:
        """A serve worker stopping removes its per-process series (its counters keep counting in the sums)."""
        if self.multiproc:
            mark_process_dead(os.getpid(), self.multiproc)  # type: ignore[no-untyped-call]


def _read_multiproc(path: str) -> bytes:
    """Every worker's counters summed; first forgets workers that died without saying so (killed, crashed)."""
    _forget_dead(path)
    registry = CollectorRegistry(auto_describe=False)
    MultiProcessCollector(registry, path=path)  # type: ignore[no-untyped-call]
    return generate_latest(registry)


def _forget_dead(path: str) -> None:
    if os.name != "posix":  # os.kill(pid, 0) probes only on POSIX
        return
    for name in glob.glob(os.path.join(path, "gauge_live*_*.db")):
        pid_text = Path(name).stem.rsplit("_", 1)[-1]
        if pid_text.isdigit() and not _alive(int(pid_text)):
            mark_process_dead(int(pid_text), path)  # type: ignore[no-untyped-call]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def gauge(name: str, documentation: str, value: float) -> Metric:
    """A gauge family with one unlabelled sample, for probes."""
    return GaugeMetricFamily(name, documentation, value=value)
