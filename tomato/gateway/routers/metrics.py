"""`GET /metrics`: Prometheus text of this process (of every worker under `serve --workers N`), left out entirely when
`TOMATO_METRICS_ENABLED=false` and behind `Authorization: Bearer` when `TOMATO_METRICS_TOKEN` is set."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from tomato.gateway.endpoint_guard import refusal
from tomato.gateway.metrics import CONTENT_TYPE, Metrics

REALM = "tomato metrics"


def metrics_router(token: str | None) -> APIRouter:
    router = APIRouter(tags=["health"])

    @router.get(
        "/metrics",
        response_class=Response,
        responses={
            200: {"content": {"text/plain": {"schema": {"type": "string"}}}, "description": "Prometheus text"},
            401: {"description": "TOMATO_METRICS_TOKEN is set and the request did not carry it as a Bearer token"},
        },
    )
    async def metrics(request: Request) -> Response:
        """Prometheus text format; every metric is described in docs/observability.md."""
        denied = refusal(request, token, realm=REALM)
        if denied is not None:
            return denied
        registry: Metrics = request.app.state.metrics
        return Response(await registry.render(), media_type=CONTENT_TYPE)

    return router
