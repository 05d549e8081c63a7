"""`tomato dev`: gateway, relay, ledger booking, scheduler and the channel simulator in one process, seeded, on
loopback.

The credentials file is written atomically only once both ports serve and `/healthz` answers 200; SIGINT (Ctrl-C)
or SIGTERM stops it within the budget of `runtime.shutdown` and exits 0: the gateway, the background loops and the
jobs stop together, the simulator after them (jobs may be asking it something until then).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import tempfile
from pathlib import Path

import httpx
import uvicorn

from tomato.bootstrap import bootstrap
from tomato.channel.sandbox.app import create_sandbox_app
from tomato.channel.sandbox.state import SandboxState
from tomato.core.settings import Settings
from tomato.gateway.app import create_app
from tomato.runtime.loops import BackgroundLoops
from tomato.runtime.process_metrics import JobMetrics, attach_process_metrics
from tomato.runtime.scheduler import JobRunner
from tomato.runtime.seed import seed_dev
from tomato.runtime.servers import EmbeddedServer
from tomato.runtime.shutdown import CANCEL_WAIT_S, GRACE_S, bounded, on_stop_signal, stop_tasks

log = logging.getLogger(__name__)

DEV_OVERRIDES = {
    "webhook_time_scale": 60.0,
    "sandbox_time_scale": 60.0,
    "compensation_time_scale": 6.0,
    "webhook_allowed_networks": "127.0.0.0/8,::1/128",
    "cashier_sandbox_hints": True,
}


def dev_settings(base: Settings, base_url: str) -> Settings:
    values = base.model_dump()
    for name, value in DEV_OVERRIDES.items():
        if name not in base.model_fields_set:
            values[name] = value
    if "public_url" not in base.model_fields_set and "TOMATO_PUBLIC_URL" not in os.environ:
        values["public_url"] = base_url
    if "database_url" not in base.model_fields_set and "TOMATO_DATABASE_URL" not in os.environ:
        Path(".tomato").mkdir(exist_ok=True)
        for suffix in ("", "-wal", "-shm"):  # dev data is throwaway: the simulator's keys are new every run
            Path(f".tomato/dev.db{suffix}").unlink(missing_ok=True)
        values["database_url"] = "sqlite+aiosqlite:///./.tomato/dev.db"
    return Settings(**values)


def write_atomically(path: Path, data: dict[str, object]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh, indent=2)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


async def _wait_healthy(url: str) -> None:
    """Polls the gateway's /healthz (the simulator starts first and is polled the same way)."""
    async with httpx.AsyncClient(timeout=2) as client:
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get(f"{url}/healthz")).status_code == 200:
                    return
            await asyncio.sleep(0.1)


async def run_dev(
    settings: Settings,
    *,
    host: str,
    port: int,
    sandbox_port: int,
    credentials_out: Path | None,
    notify_url: str | None,
) -> None:
    base_url, sandbox_url = f"http://{host}:{port}", f"http://{host}:{sandbox_port}"
    settings = dev_settings(settings, base_url)
    if settings.is_sqlite:
        await asyncio.to_thread(_upgrade, settings.database_url)
    c = await bootstrap(settings)
    sandbox = SandboxState(time_scale=settings.sandbox_time_scale, fee_ppm=settings.sandbox_fee_ppm)
    credentials = await seed_dev(c, sandbox, sandbox_url, notify_url)
    app = create_app(c)
    attach_process_metrics(app.state.metrics, c)  # one process: the worker's and scheduler's figures on /metrics
    loops, jobs = BackgroundLoops(), JobRunner(c, speed=5.0, observe=JobMetrics(app.state.metrics.registry).observe)
    gateway = EmbeddedServer(_server_config(app, host, port))
    simulator = EmbeddedServer(_server_config(create_sandbox_app(sandbox), host, sandbox_port))
    stop = asyncio.Event()
    on_stop_signal(stop)
    serving = [asyncio.create_task(s.serve(), name=f"serve:{s.config.port}") for s in (gateway, simulator)]
    try:
        await loops.start_bus(c)
        await loops.start_notice(c)
        await loops.start_relay(c)
        loops.start_booking(c)
        jobs.start()
        await _wait_healthy(sandbox_url)
        await _wait_healthy(base_url)
        if credentials_out is not None:
            write_atomically(credentials_out, credentials.as_json(base_url, sandbox_url))
        log.warning("tomato dev: gateway %s, simulator %s, app %s", base_url, sandbox_url, credentials.app_id)
        await _until_stopped(stop, serving)
    finally:
        gateway.should_exit = True
        await asyncio.gather(jobs.stop(), loops.shutdown(), stop_tasks(serving[:1], grace_s=GRACE_S + CANCEL_WAIT_S))
        simulator.should_exit = True
        await stop_tasks(serving[1:], grace_s=GRACE_S)
        await bounded(c.aclose(), "closing the backends")


async def _until_stopped(stop: asyncio.Event, serving: list[asyncio.Task[None]]) -> None:
    waiter = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait([waiter, *serving], return_when=asyncio.FIRST_COMPLETED)
    waiter.cancel()
    for task in done:
        if task is not waiter and task.exception() is not None:
            raise RuntimeError("a dev server stopped unexpectedly") from task.exception()


def _server_config(app: object, host: str, port: int) -> uvicorn.Config:
    """In-flight requests get the shutdown grace, then uvicorn cancels them."""
    return uvicorn.Config(app, host=host, port=port, access_log=False, log_level="warning",  # type: ignore[arg-type]
                          log_config=None, timeout_graceful_shutdown=int(GRACE_S))  # fmt: skip


def _upgrade(url: str) -> None:
    from tomato.migrations import upgrade

    upgrade(url)
