"""Liveness, readiness (each backend reported) and Prometheus metrics."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from sqlalchemy import text

from tomato.gateway.deps import container

router = APIRouter(tags=["health"])
CHECK_TIMEOUT_S = 2.0


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is alive; says nothing about its backends."""
    return {"status": "ok"}


async def _check_db(request: Request) -> bool:
    async with container(request).db.engine.connect() as conn:
        await conn.execute(text("SELECT 1"))
    return True


async def _bounded(check: Any) -> bool:
    try:
        return bool(await asyncio.wait_for(check, timeout=CHECK_TIMEOUT_S))
    except Exception:
        return False


@router.get("/readyz")
async def readyz(request: Request) -> JSONResponse:
    c = container(request)
    db_up, cache_up, bus_up = await asyncio.gather(
        _bounded(_check_db(request)), _bounded(c.cache.ping()), _bounded(c.bus.ping())
    )
    checks = {
        "database": {"backend": c.db.dialect, "up": db_up},
        "cache": {"backend": c.cache.name, "up": cache_up},
        "bus": {"backend": c.bus.name, "up": bus_up},
    }
    ready = db_up and cache_up and bus_up
    return JSONResponse(
        {"status": "ready" if ready else "unavailable", "checks": checks}, status_code=200 if ready else 503
    )


@router.get("/metrics", response_class=PlainTextResponse)
async def metrics(request: Request) -> PlainTextResponse:
    return PlainTextResponse(request.app.state.metrics.render(), media_type="text/plain; version=0.0.4")
