"""The long-running roles other than `serve`: `worker` and `scheduler`, each until SIGINT/SIGTERM (then within the
budget of `runtime.shutdown`)."""

from __future__ import annotations

import asyncio
import logging

from tomato.bootstrap import Container, bootstrap
from tomato.core.settings import Settings
from tomato.runtime.loops import BackgroundLoops
from tomato.runtime.scheduler import JobRunner
from tomato.runtime.shutdown import bounded, on_stop_signal

log = logging.getLogger(__name__)


async def _prepared(settings: Settings) -> Container:
    if settings.is_sqlite:
        from tomato.migrations import upgrade

        await asyncio.to_thread(upgrade, settings.database_url)
    return await bootstrap(settings)


async def run_worker(settings: Settings) -> None:
    c = await _prepared(settings)
    stop = asyncio.Event()
    on_stop_signal(stop)
    loops = BackgroundLoops()
    try:
        await loops.start_bus(c)
        await loops.start_notice(c)
        await loops.start_relay(c)
        loops.start_booking(c)
        log.info("tomato worker: running (database %s, bus %s)", c.db.dialect, c.bus.name)
        await stop.wait()
    finally:
        await loops.shutdown()
        await bounded(c.aclose(), "closing the backends")
        log.info("tomato worker: stopped")


async def run_scheduler(settings: Settings) -> None:
    c = await _prepared(settings)
    stop = asyncio.Event()
    on_stop_signal(stop)
    jobs = JobRunner(c)
    try:
        jobs.start()
        log.info("tomato scheduler: running (database %s)", c.db.dialect)
        await stop.wait()
    finally:
        await jobs.stop()
        await bounded(c.aclose(), "closing the backends")
        log.info("tomato scheduler: stopped")
