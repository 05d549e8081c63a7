"""The webhook worker's hot statements on PostgreSQL are planned for the tables as they are when they run.

`notice_deliveries` grows from empty. A prepared statement switches to a generic plan after five executions if that
plan looks no dearer than the custom ones, and keeps it until the table is next analyzed: made while the table was
empty, the record statement's generic plan hashed a sequential scan of the whole table, and the bench's PostgreSQL
spent a core on it once the table had grown (30 ms per batch at 60,000 rows)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from tomato.core.db import Database, create_engine
from tomato.core.rawpg import raw_connection
from tomato.notice import repository as repo

pytestmark = pytest.mark.services


def _batch(n: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    now = datetime.now(UTC)
    attempts = [{"id": 9_000_000 + n, "delivery_id": f"DPLAN{n}", "attempt_no": 1, "started_at": now,
                 "latency_ms": 3, "http_status": 200, "response_body": "ok", "error_class": None,
                 "error_message": None, "succeeded": True}]  # fmt: skip
    updates = [{"b_id": f"DPLAN{n}", "b_token": "gone", "status": "SUCCEEDED", "attempts": 1,
                "next_attempt_at": None, "last_status": 200, "last_error": None, "finished_at": now,
                "updated_at": now}]  # fmt: skip
    return attempts, updates


async def test_recording_attempts_never_settles_on_a_generic_plan(pg_url: str) -> None:
    db = Database(create_engine(pg_url, pool_size=1))
    try:
        async with raw_connection(db.engine, "record") as raw:
            for n in range(8):  # past the five custom plans after which PostgreSQL may go generic
                await repo.record_pg(raw, *_batch(n))
            plans = await raw.fetch(
                "SELECT generic_plans, custom_plans FROM pg_prepared_statements WHERE statement LIKE 'WITH appended%'"
            )
            await raw.execute("DELETE FROM notice_attempts WHERE delivery_id LIKE 'DPLAN%'")
        assert [tuple(p) for p in plans] == [(0, 8)]
    finally:
        await db.dispose()
