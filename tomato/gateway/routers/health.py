"""Liveness and readiness (each backend reported, the bus as optional); `/metrics` is routers/metrics.py."""

from __future__ import annotations

import asyncio
from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy import text

from tomato.gateway.deps import container

router = APIRouter(tags=["health"])
CHECK_TIMEOUT_S = 2.0


class Check(BaseModel):
    backend: str = Field(
        description="which implementation serves it, e.g. `postgresql`, `sqlite`, `redis`, `memory`, `rabbitmq`, "
        "`in-process`"
    )
    up: bool = Field(description="whether it answered")
    status: Literal["up", "down", "degraded"] = Field(
        description="`up`, `down`, or `degraded` (down, but the gateway goes on without it)"
    )


class Readiness(BaseModel):
    status: Literal["ready", "degraded", "unavailable"] = Field(
        description="`ready`, `degraded` (serving without an optional store) or `unavailable`"
    )
    checks: dict[str, Check] = Field(description="one check per store the process depends on (database, cache, bus)")


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


@router.get(
    "/readyz",
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "the database or the cache is down"}},
)
async def readyz(request: Request) -> JSONResponse:
    """503 when the database or the cache is down (no payment can be taken: the merchant API fails closed without
    its nonce store); 200 `degraded` when only the bus is, because the outbox keeps every event until it is back."""
    c = container(request)
    db_up, cache_up, bus_up = await asyncio.gather(
        _bounded(_check_db(request)), _bounded(c.cache.ping()), _bounded(c.bus.ping())
    )
    checks = {
        "database": _check(c.db.dialect, db_up, "down"),
        "cache": _check(c.cache.name, cache_up, "down"),
        "bus": _check(c.bus.name, bus_up, "degraded"),
    }
    if not (db_up and cache_up):
        return JSONResponse({"status": "unavailable", "checks": checks}, status_code=503)
    return JSONResponse({"status": "ready" if bus_up else "degraded", "checks": checks}, status_code=200)


def _check(backend: str, up: bool, when_down: str) -> dict[str, Any]:
    return {"backend": backend, "up": up, "status": "up" if up else when_down}
