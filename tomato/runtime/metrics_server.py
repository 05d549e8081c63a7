"""The metrics port of `tomato worker` and `tomato scheduler` (they serve no API): `GET /metrics`, behind
`TOMATO_METRICS_TOKEN` like the gateway's, and `GET /healthz`. Off unless a port is given (`--metrics-port`,
`TOMATO_WORKER_METRICS_PORT`, `TOMATO_SCHEDULER_METRICS_PORT`), so several workers on one host never collide."""

from __future__ import annotations

import asyncio
import logging

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tomato.core.settings import Settings
from tomato.gateway.endpoint_guard import refusal
from tomato.gateway.metrics import CONTENT_TYPE, Metrics
from tomato.runtime.servers import EmbeddedServer
from tomato.runtime.shutdown import GRACE_S, stop_tasks

log = logging.getLogger(__name__)


def metrics_app(metrics: Metrics, token: str | None) -> Starlette:
    async def scrape(request: Request) -> Response:
        return refusal(request, token, realm="tomato metrics") or Response(
            await metrics.render(), media_type=CONTENT_TYPE
        )

    async def healthz(_: Request) -> Response:
        return JSONResponse({"status": "ok"})

    return Starlette(routes=[Route("/metrics", scrape), Route("/healthz", healthz)])


class MetricsPort:
    """Serves `metrics` on `host:port` inside the role's event loop until `stop()`."""

    def __init__(self, metrics: Metrics, settings: Settings, port: int) -> None:
        config = uvicorn.Config(metrics_app(metrics, settings.metrics_token), host=settings.metrics_host, port=port,
                                access_log=False, log_config=None, log_level="warning", lifespan="off")  # fmt: skip
        self.server = EmbeddedServer(config)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Returns once the port listens; a port already taken fails the role's start (exit status 1)."""
        self._task = asyncio.create_task(self.server.serve(), name="metrics-port")
        while not self.server.started:
            if self._task.done():
                self._task.result()  # raises what stopped it
                raise RuntimeError(f"metrics port {self.server.config.port} did not start")
            await asyncio.sleep(0.02)
        log.info("metrics on http://%s:%d/metrics", self.server.config.host, self.server.config.port)

    async def stop(self) -> None:
        if self._task is None:
            return
        self.server.should_exit = True
        await stop_tasks([self._task], grace_s=GRACE_S)


def enabled_port(settings: Settings, port: int | None, default: int) -> int:
    """The CLI's `--metrics-port` over the role's setting; 0 (or metrics disabled) means no port."""
    chosen = default if port is None else port
    return chosen if settings.metrics_enabled else 0
