"""End-to-end fixtures: `tomato dev` as a real process on loopback, used only through docs/api.md."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import AMQP_URL, PG_ADMIN_URL, REDIS_URL, need_service
from tests.fixtures.rabbit import throwaway_vhost
from tomato.core.crypto import SecretBox


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class DevStack:
    def __init__(self, creds: dict[str, Any], proc: subprocess.Popen[bytes], env: dict[str, str], cwd: Path) -> None:
        self.creds, self.proc, self.env, self.cwd = creds, proc, env, cwd

    async def scalar(self, sql: str, *args: Any) -> Any:
        """Reads the stack's own database (to count outbox events, which docs/api.md exposes only later)."""
        url = self.env.get("TOMATO_DATABASE_URL")
        if url is None:
            import sqlite3

            with sqlite3.connect(self.cwd / ".tomato" / "dev.db") as conn:
                return conn.execute(sql.replace("$1", "?"), args).fetchone()[0]
        import asyncpg

        conn = await asyncpg.connect(url.replace("+asyncpg", ""))
        try:
            return await conn.fetchval(sql, *args)
        finally:
            await conn.close()


def _create_pg_db() -> tuple[str, str]:
    import asyncpg

    name = f"tomato_e2e_{uuid.uuid4().hex[:8]}"

    async def run() -> None:
        conn = await asyncpg.connect(PG_ADMIN_URL)
        await conn.execute(f'CREATE DATABASE "{name}"')
        await conn.close()

    asyncio.run(run())
    base = PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
    return name, f"{base}/{name}"


def _drop_pg_db(name: str) -> None:
    import asyncpg

    async def run() -> None:
        conn = await asyncpg.connect(PG_ADMIN_URL)
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.close()

    asyncio.run(run())


@contextmanager
def running_dev(kind: str, cwd: Path, extra_args: list[str] | None = None) -> Iterator[DevStack]:
    """`tomato dev` as a subprocess on the embedded backends (`kind="embedded"`) or on PostgreSQL + Redis + RabbitMQ
    (`"services"`, in a RabbitMQ vhost of its own, deleted afterwards); yields once the credentials file exists, and
    checks it exits 0 on SIGTERM within 10 s."""
    with ExitStack() as cleanup:
        env = {k: v for k, v in os.environ.items() if not k.startswith("TOMATO_")}
        if kind == "services":
            env.update(cleanup.enter_context(services_env(cwd)))
        yield from _run_dev(cwd, env, extra_args)


@contextmanager
def services_env(cwd: Path) -> Iterator[dict[str, str]]:
    """`TOMATO_*` settings for a stack on the real services: a new migrated PostgreSQL database, a Redis key prefix
    and a RabbitMQ vhost of its own; the database and the vhost (with every queue in it) are dropped on exit."""
    need_service("PostgreSQL", PG_ADMIN_URL, 5432)
    need_service("Redis", REDIS_URL, 6379)
    need_service("RabbitMQ", AMQP_URL, 5672)
    db_name, url = _create_pg_db()
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith("TOMATO_")}
        subprocess.run([sys.executable, "-m", "tomato.cli", "db", "upgrade"], env={**env, "TOMATO_DATABASE_URL": url},
                       cwd=cwd, check=True, capture_output=True)  # fmt: skip
        with throwaway_vhost(AMQP_URL, "e2e") as amqp_url:
            yield {
                "TOMATO_DATABASE_URL": url,
                "TOMATO_REDIS_URL": REDIS_URL,
                "TOMATO_REDIS_PREFIX": f"{db_name}:",
                "TOMATO_AMQP_URL": amqp_url,
                "TOMATO_AMQP_PREFIX": db_name,
                "TOMATO_SECRET_KEYS": SecretBox.generate_ring("e2e"),  # PostgreSQL needs a shared key
            }
    finally:
        _drop_pg_db(db_name)


def _run_dev(cwd: Path, env: dict[str, str], extra_args: list[str] | None) -> Iterator[DevStack]:
    creds_file = cwd / "creds.json"
    cmd = [sys.executable, "-m", "tomato.cli", "dev", "--port", str(free_port()), "--sandbox-port", str(free_port()),
           "--credentials-out", str(creds_file), *(extra_args or [])]  # fmt: skip
    log = (cwd / "dev.log").open("wb")
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while not creds_file.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"tomato dev did not come up:\n{(cwd / 'dev.log').read_text()[-3000:]}")
            time.sleep(0.1)
        yield DevStack(json.loads(creds_file.read_text()), proc, env, cwd)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0, (cwd / "dev.log").read_text()[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()


@pytest.fixture(params=["embedded", "services"], scope="module")
def dev_stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevStack]:
    """`tomato dev` on the embedded backends, and on PostgreSQL + Redis + RabbitMQ."""
    with running_dev(request.param, tmp_path_factory.mktemp(f"dev-{request.param}")) as stack:
        yield stack
