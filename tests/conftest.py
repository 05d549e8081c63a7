"""Test harness: the storage fixtures run each test on the embedded backends and on the real services.

PostgreSQL gets one isolated database per run (migrated once, truncated between tests), Redis a key prefix per
test, RabbitMQ a virtual host per run (deleted with everything in it at the end) and a name prefix per test.
A missing service skips its tests with the reason, unless `TOMATO_REQUIRE_SERVICES=1`, which turns the skip into
a failure (CI).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from sqlalchemy.exc import DBAPIError

from tomato.core.cache import MemoryCache, RedisCache
from tomato.core.db import Database, create_engine
from tomato.migrations import metadata, upgrade

REQUIRE_SERVICES = os.environ.get("TOMATO_REQUIRE_SERVICES") == "1"
PG_ADMIN_URL = os.environ.get("TOMATO_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("TOMATO_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
AMQP_URL = os.environ.get("TOMATO_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")


def _reachable(url: str, default_port: int) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or default_port), timeout=1):
            return True
    except OSError:
        return False


def need_service(name: str, url: str, port: int) -> None:
    """Skip (or, when services are required, fail) when a real service is not reachable."""
    if _reachable(url, port):
        return
    message = f"{name} is not reachable at {url}"
    if REQUIRE_SERVICES:
        pytest.fail(f"{message} and TOMATO_REQUIRE_SERVICES=1")
    pytest.skip(message)


# --- PostgreSQL --------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    need_service("PostgreSQL", PG_ADMIN_URL, 5432)
    import asyncpg

    name = f"tomato_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(PG_ADMIN_URL)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    base = PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
    url = f"{base}/{name}"
    upgrade(url)
    yield url
    asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sqlite-template") / "template.db"
    upgrade(f"sqlite+aiosqlite:///{path}")
    return path


@pytest.fixture
def sqlite_url(sqlite_template: Path, tmp_path: Path) -> str:
    path = tmp_path / "tomato.db"
    shutil.copy(sqlite_template, path)
    return f"sqlite+aiosqlite:///{path}"


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest) -> str:
    """Runs the test once on the embedded SQLite file and once on the real PostgreSQL."""
    name = "sqlite_url" if request.param == "sqlite" else "pg_url"
    return str(request.getfixturevalue(name))


@pytest.fixture
async def db(db_url: str) -> AsyncIterator[Database]:
    database = Database(create_engine(db_url))
    try:
        yield database
    finally:
        if database.dialect == "postgresql":
            await truncate_all(database)
        await database.dispose()


async def truncate_all(database: Database, attempts: int = 5) -> None:
    """Empties every table the migrations created (a model without its migration yet is skipped).

    A stack's background work (a simulator's late notify, a job round) may still be writing: TRUNCATE takes its
    table locks one by one, so it can deadlock with such a writer, and PostgreSQL may pick the TRUNCATE to abort.
    It is tried again then — a failed one would leave the rows to the next test."""
    for attempt in range(1, attempts + 1):
        try:
            async with database.engine.begin() as conn:
                tables = await conn.exec_driver_sql("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
                existing = set(tables.scalars())
                names = ", ".join(f'"{t.name}"' for t in metadata().sorted_tables if t.name in existing)
                if names:
                    await conn.exec_driver_sql(f"TRUNCATE {names}")
            return
        except DBAPIError as exc:
            if attempt == attempts or "deadlock" not in str(exc):
                raise
            await asyncio.sleep(0.05 * attempt)


# --- Redis ---------------------------------------------------------------------------------------------------


@pytest.fixture
async def redis_cache() -> AsyncIterator[RedisCache]:
    need_service("Redis", REDIS_URL, 6379)
    prefix = f"tomato-test:{uuid.uuid4().hex[:8]}:"
    cache = RedisCache.from_url(REDIS_URL, prefix)
    try:
        yield cache
    finally:
        keys = [k async for k in cache.redis.scan_iter(match=f"{prefix}*")]
        if keys:
            await cache.redis.delete(*keys)
        await cache.close()


@pytest.fixture(params=["memory", "redis"])
def cache(request: pytest.FixtureRequest) -> MemoryCache | RedisCache:
    """Runs the test on the in-process cache and on the real Redis."""
    if request.param == "memory":
        return MemoryCache()
    redis_cache: RedisCache = request.getfixturevalue("redis_cache")
    return redis_cache


# --- RabbitMQ ---------------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def amqp_session_url() -> Iterator[str]:
    """The run's own vhost: whatever a test leaves on the broker goes when the run ends (tests/fixtures/rabbit.py)."""
    from tests.fixtures.rabbit import throwaway_vhost

    need_service("RabbitMQ", AMQP_URL, 5672)
    with throwaway_vhost(AMQP_URL, "run") as url:
        yield url


@pytest.fixture
def amqp_url(amqp_session_url: str) -> str:
    return amqp_session_url


@pytest.fixture
def amqp_prefix() -> str:
    """A unique exchange/queue name prefix, so parallel or leftover runs never share a queue."""
    return f"tomato-test-{uuid.uuid4().hex[:8]}"


# --- the platform ----------------------------------------------------------------------------------------------


@pytest.fixture
async def stack(db_url: str, tmp_path: Path):  # type: ignore[no-untyped-def]
    """The platform on the embedded backends, its database SQLite or PostgreSQL (both runs)."""
    from tests.fixtures.stack import running_stack, test_settings

    async with running_stack(test_settings(db_url, tmp_path)) as pair:
        yield pair
        if pair[0].db.dialect == "postgresql":
            await truncate_all(pair[0].db)


@pytest.fixture
async def pay(db_url: str, tmp_path: Path):  # type: ignore[no-untyped-def]
    """The platform and the channel simulator, wired in-process (SQLite and PostgreSQL runs)."""
    from tests.fixtures.pay_stack import pay_stack

    async with pay_stack(db_url, tmp_path) as stack:
        yield stack
        if stack.c.db.dialect == "postgresql":
            await truncate_all(stack.c.db)
