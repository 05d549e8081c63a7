"""Migration 0015 gives every admin token that existed before it a distinct public id, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import os
import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import text

from tests.conftest import PG_ADMIN_URL, need_service
from tomato.core.db import create_engine
from tomato.migrations import alembic_config, upgrade


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database no migration has touched yet (PostgreSQL: a throwaway one, dropped afterwards)."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'old.db'}"
        return
    need_service("PostgreSQL", PG_ADMIN_URL, 5432)
    import asyncpg

    name = f"tomato_m15_{os.getpid()}_{uuid.uuid4().hex[:6]}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(PG_ADMIN_URL)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    base = PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
    try:
        yield f"{base}/{name}"
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def test_existing_tokens_get_distinct_ids(empty_db_url: str) -> None:
    upgrade(empty_db_url, "0014")

    async def insert() -> None:
        engine = create_engine(empty_db_url)
        async with engine.begin() as conn:
            for i in range(3):
                await conn.execute(
                    text(
                        "INSERT INTO admin_tokens (token_hash, role, name, created_at) "
                        "VALUES (:h, 'operator', :n, :t)"
                    ),
                    {"h": f"{i:064d}", "n": f"old{i}", "t": datetime.now(UTC)},
                )
        await engine.dispose()

    async def token_ids() -> list[str]:
        engine = create_engine(empty_db_url)
        async with engine.connect() as conn:
            ids = list((await conn.execute(text("SELECT token_id FROM admin_tokens"))).scalars())
        await engine.dispose()
        return ids

    asyncio.run(insert())
    upgrade(empty_db_url)
    ids = asyncio.run(token_ids())
    assert len(ids) == len(set(ids)) == 3
    assert all(re.fullmatch(r"tok_[0-9a-f]{16}", i) for i in ids)
    # and it can be undone, the tokens kept
    command.downgrade(alembic_config(empty_db_url), "0014")
    upgrade(empty_db_url)
    assert len(set(asyncio.run(token_ids()))) == 3
