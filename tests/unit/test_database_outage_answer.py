"""Found by the chaos run (bench/chaos.py, "postgresql restart"): while the database cannot be reached, every request
that needs it answered `500 INTERNAL_ERROR` and logged an "unhandled error" traceback. It is an outage, not a bug:
the answer is `503 SERVICE_UNAVAILABLE` with `Retry-After`, logged as one warning line; real bugs stay 500."""

from __future__ import annotations

import logging

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.exc import DBAPIError, InterfaceError

from tomato.gateway.errors import install


def _app(exc: Exception) -> FastAPI:
    app = FastAPI()
    install(app)

    @app.get("/boom")
    async def boom() -> None:
        raise exc

    return app


async def _get(exc: Exception) -> httpx.Response:
    transport = httpx.ASGITransport(app=_app(exc), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        return await client.get("/boom")


@pytest.mark.parametrize(
    "exc",
    [
        ConnectionRefusedError(111, "Connection refused"),  # the pool cannot open a connection
        InterfaceError("SELECT 1", {}, Exception("connection is closed"), connection_invalidated=True),
        DBAPIError("COMMIT", {}, Exception("connection was closed in the middle of operation"),
                   connection_invalidated=True),  # fmt: skip
    ],
)
async def test_database_unreachable_is_503_with_retry_after(exc: Exception, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="tomato.gateway.errors"):
        r = await _get(exc)
    assert r.status_code == 503
    assert r.json()["error"]["code"] == "SERVICE_UNAVAILABLE"
    assert r.headers["Retry-After"] == "1"
    assert "unhandled error" not in caplog.text
    assert [rec.levelno for rec in caplog.records] == [logging.WARNING]
    assert all(rec.exc_info is None for rec in caplog.records)  # one line, no traceback


async def test_other_database_errors_stay_500(caplog: pytest.LogCaptureFixture) -> None:
    exc = DBAPIError("INSERT", {}, Exception("deadlock detected"), connection_invalidated=False)
    with caplog.at_level(logging.ERROR, logger="tomato.gateway.errors"):
        r = await _get(exc)
    assert r.status_code == 500
    assert r.json()["error"]["code"] == "INTERNAL_ERROR"
    assert "unhandled error" in caplog.text
