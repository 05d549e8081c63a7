"""Fixtures shared by the integration tests of the webhook pipeline (a module may define its own `hooks`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.notice_harness import Harness, notice_harness


@pytest.fixture(params=["embedded", "services"])
def backend(request: pytest.FixtureRequest) -> dict[str, Any]:
    """embedded: SQLite + in-process bus; services: PostgreSQL + RabbitMQ (skipped when unreachable)."""
    if request.param == "embedded":
        return {"db_url": request.getfixturevalue("sqlite_url")}
    return {
        "db_url": request.getfixturevalue("pg_url"),
        "amqp_url": request.getfixturevalue("amqp_url"),
        "amqp_prefix": request.getfixturevalue("amqp_prefix"),
    }


@pytest.fixture
async def hooks(backend: dict[str, Any], tmp_path: Path) -> AsyncIterator[Harness]:
    """The notice pipeline on `backend`: relay, consumer, worker and a webhook receiver."""
    async with notice_harness(tmp_path=tmp_path, **backend) as h:
        yield h
