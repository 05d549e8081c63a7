"""The long-running roles other than `serve`: `worker` and `scheduler`, each until SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio
import signal

from tomato.bootstrap import Container, bootstrap
from tomato.core.settings import Settings
from tomato.runtime.loops import BackgroundLoops
from tomato.runtime.scheduler import JobRunner


async def _until_signal() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


async def _prepared(settings: Settings) -> Container:
    if settings.is_sqlite:
        from tomato.migrations import upgrade

        await asyncio.to_thread(upgrade, settings.database_url)
    return await bootstrap(settings)


async def run_worker(settings: Settings) -> None:
    c = await _prepared(settings)
    loops = BackgroundLoops()
    try:
        await loops.start_bus(c)
        await loops.start_notice(c)
        await loops.start_relay(c)
        await _until_signal()
    finally:
        await loops.shutdown()
        await c.aclose()


async def run_scheduler(settings: Settings) -> None:
    c = await _prepared(settings)
    jobs = JobRunner(c)
    try:
        jobs.start()
        await _until_signal()
    finally:
        await jobs.stop()
        await c.aclose()
