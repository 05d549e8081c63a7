"""The long-running roles other than `serve`: `worker` and `scheduler`, each until SIGINT/SIGTERM (then within the
budget of `runtime.shutdown`)."""

from __future__ import annotations

import asyncio
import logging

from tomato.bootstrap import Container, bootstrap
from tomato.core.settings import Settings
from tomato.gateway.metrics import Metrics
from tomato.runtime.heap import settle_heap
from tomato.runtime.loops import BackgroundLoops
from tomato.runtime.metrics_server import MetricsPort
from tomato.runtime.process_metrics import JobMetrics, attach_breakers, attach_process_metrics
from tomato.runtime.scheduler import JobRunner
from tomato.runtime.shutdown import bounded, on_stop_signal

log = logging.getLogger(__name__)


async def _prepared(settings: Settings) -> Container:
    if settings.is_sqlite:
        from tomato.migrations import upgrade

        await asyncio.to_thread(upgrade, settings.database_url)
    return await bootstrap(settings)


def _metrics(c: Container) -> Metrics:
    metrics = Metrics(http=False)
    attach_process_metrics(metrics, c)
    attach_breakers(metrics, c)
    return metrics


async def run_worker(settings: Settings, metrics_port: int = 0) -> None:
    """`metrics_port` 0: no metrics port (runtime.metrics_server)."""
    c = await _prepared(settings)
    stop = asyncio.Event()
    on_stop_signal(stop)
    loops = BackgroundLoops()
    port = MetricsPort(_metrics(c), settings, metrics_port) if metrics_port else None
    try:
        if port is not None:
            await port.start()
        await loops.start_bus(c)
        await loops.start_notice(c)
        await loops.start_relay(c)
        loops.start_booking(c)
        settle_heap()
        log.info("tomato worker: running (database %s, bus %s)", c.db.dialect, c.bus.name)
        await stop.wait()
    finally:
        await asyncio.gather(loops.shutdown(), *([port.stop()] if port else []))
        await bounded(c.aclose(), "closing the backends")
        log.info("tomato worker: stopped")


async def run_scheduler(settings: Settings, metrics_port: int = 0) -> None:
    c = await _prepared(settings)
    stop = asyncio.Event()
    on_stop_signal(stop)
    metrics = _metrics(c)
    jobs = JobRunner(c, observe=JobMetrics(metrics.registry).observe)
    port = MetricsPort(metrics, settings, metrics_port) if metrics_port else None
    try:
        if port is not None:
            await port.start()
        jobs.start()
        log.info("tomato scheduler: running (database %s)", c.db.dialect)
        await stop.wait()
    finally:
        await asyncio.gather(jobs.stop(), *([port.stop()] if port else []))
        await bounded(c.aclose(), "closing the backends")
        log.info("tomato scheduler: stopped")
