"""The stack `tomato demo` runs its story against: what `tomato dev` runs (gateway, outbox relay, ledger booking,
webhooks, timed jobs and the channel simulator in one process, seeded), in a data directory of the demo's own.

The ports are bound before anything else starts, so a port already in use is one clear error instead of a server
that dies in the background; port 0 picks a free one.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import shutil
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import uvicorn

from tomato.bootstrap import Container, bootstrap
from tomato.channel.sandbox.app import create_sandbox_app
from tomato.channel.sandbox.state import SandboxState
from tomato.core.settings import Settings
from tomato.gateway.app import create_app
from tomato.runtime.dev import DEV_OVERRIDES
from tomato.runtime.loops import BackgroundLoops
from tomato.runtime.scheduler import JobRunner
from tomato.runtime.seed import DevCredentials, seed_dev
from tomato.runtime.servers import EmbeddedServer
from tomato.runtime.shutdown import CANCEL_WAIT_S, GRACE_S, bounded, stop_tasks

DEFAULT_DATA_DIR = Path(".tomato") / "demo"
DB_FILE = "demo.db"
HEALTHY_WITHIN_S = 15.0


class StackFailed(RuntimeError):
    """The stack could not be started; the message says what and why."""


@dataclass(frozen=True)
class DemoStack:
    c: Container
    credentials: DevCredentials
    base_url: str
    sandbox_url: str


def prepare_data_dir(data_dir: Path | None) -> Path:
    """The default directory is emptied first, so every run starts from nothing (and a second run in the same
    working directory works); a directory given with --data-dir is used as it is, database included."""
    if data_dir is not None:
        data_dir.mkdir(parents=True, exist_ok=True)
        return data_dir
    if DEFAULT_DATA_DIR.exists():
        shutil.rmtree(DEFAULT_DATA_DIR)
    DEFAULT_DATA_DIR.mkdir(parents=True)
    return DEFAULT_DATA_DIR


def sqlite_url(data_dir: Path) -> str:
    return f"sqlite+aiosqlite:///{data_dir / DB_FILE}"


def demo_settings(base: Settings, base_url: str, data_dir: Path) -> Settings:
    """`tomato dev`'s overrides (fast retries, loopback webhooks) for whatever the settings leave unset; the demo's
    data directory (the local key file, statements) and, unless TOMATO_DATABASE_URL names one, its SQLite file."""
    values = base.model_dump()
    for name, value in DEV_OVERRIDES.items():
        if name not in base.model_fields_set:
            values[name] = value
    if "public_url" not in base.model_fields_set:
        values["public_url"] = base_url
    values["data_dir"] = str(data_dir)
    if "database_url" not in base.model_fields_set:
        values["database_url"] = sqlite_url(data_dir)
    return Settings(**values)


def bind(host: str, port: int, option: str) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a port in TIME_WAIT from the last run is fine
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        hint = f"; choose another with {option} (0: any free port)" if exc.errno == errno.EADDRINUSE else ""
        raise StackFailed(f"cannot listen on {host}:{port} ({option}): {exc.strerror}{hint}") from None
    return sock


@contextlib.asynccontextmanager
async def running_stack(
    base: Settings, *, host: str, port: int, sandbox_port: int, data_dir: Path, notify_url: str
) -> AsyncIterator[DemoStack]:
    """Yields once both servers answer `/healthz`; stops everything (as `tomato dev` does) on the way out."""
    with contextlib.ExitStack() as sockets:
        gateway_sock = sockets.enter_context(bind(host, port, "--port"))
        sandbox_sock = sockets.enter_context(bind(host, sandbox_port, "--sandbox-port"))
        base_url, sandbox_url = _url(host, gateway_sock), _url(host, sandbox_sock)
        settings = demo_settings(base, base_url, data_dir)
        if settings.is_sqlite:
            await asyncio.to_thread(_upgrade, settings.database_url)
        c = await bootstrap(settings)
        try:
            sandbox = SandboxState(time_scale=settings.sandbox_time_scale, fee_ppm=settings.sandbox_fee_ppm)
            credentials = await seed_dev(c, sandbox, sandbox_url, notify_url)
            async with _serving(c, sandbox, gateway_sock, sandbox_sock, base_url, sandbox_url):
                yield DemoStack(c, credentials, base_url, sandbox_url)
        finally:
            await bounded(c.aclose(), "closing the backends")


@contextlib.asynccontextmanager
async def _serving(
    c: Container, sandbox: SandboxState, gateway_sock: socket.socket, sandbox_sock: socket.socket,
    base_url: str, sandbox_url: str,
) -> AsyncIterator[None]:  # fmt: skip
    loops, jobs = BackgroundLoops(), JobRunner(c, speed=5.0)
    gateway = EmbeddedServer(_config(create_app(c)))
    simulator = EmbeddedServer(_config(create_sandbox_app(sandbox)))
    serving = [
        asyncio.create_task(gateway.serve(sockets=[gateway_sock]), name="serve:gateway"),
        asyncio.create_task(simulator.serve(sockets=[sandbox_sock]), name="serve:simulator"),
    ]
    try:
        await loops.start_bus(c)
        await loops.start_notice(c)
        await loops.start_relay(c)
        loops.start_booking(c)
        jobs.start()
        await _wait_healthy(sandbox_url, serving)
        await _wait_healthy(base_url, serving)
        yield
    finally:
        gateway.should_exit = True
        await asyncio.gather(jobs.stop(), loops.shutdown(), stop_tasks(serving[:1], grace_s=GRACE_S + CANCEL_WAIT_S))
        simulator.should_exit = True
        await stop_tasks(serving[1:], grace_s=GRACE_S)


async def _wait_healthy(url: str, serving: list[asyncio.Task[None]]) -> None:
    """Polls `/healthz` until it answers 200; a server that stopped, or the deadline, ends the wait."""
    async with httpx.AsyncClient(timeout=2) as client:
        deadline = asyncio.get_running_loop().time() + HEALTHY_WITHIN_S
        while asyncio.get_running_loop().time() < deadline:
            if any(task.done() for task in serving):
                raise StackFailed(f"a server stopped while starting ({url})")
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get(f"{url}/healthz")).status_code == 200:
                    return
            await asyncio.sleep(0.05)
    raise StackFailed(f"{url}/healthz did not answer 200 within {HEALTHY_WITHIN_S:.0f} s")


def _url(host: str, sock: socket.socket) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{sock.getsockname()[1]}"


def _config(app: object) -> uvicorn.Config:
    return uvicorn.Config(app, access_log=False, log_level="warning",  # type: ignore[arg-type]
                          timeout_graceful_shutdown=int(GRACE_S))  # fmt: skip


def _upgrade(url: str) -> None:
    from tomato.migrations import upgrade

    upgrade(url)
