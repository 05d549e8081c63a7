"""The ASGI factory `tomato serve` hands to uvicorn (`factory=True`), one app per worker process."""

from __future__ import annotations

from fastapi import FastAPI

from tomato.bootstrap import Container, bootstrap
from tomato.core.logs import configure_logging
from tomato.core.settings import load_settings
from tomato.gateway.app import create_app
from tomato.runtime.heap import settle_heap
from tomato.runtime.loops import BackgroundLoops
from tomato.runtime.preflight import check_startup


def create() -> FastAPI:
    settings = load_settings()
    configure_logging(settings.log_level, settings.log_format)  # each `serve --workers N` worker is a new interpreter
    check_startup(settings, serves_api=True)  # `tomato serve` checked already; this covers `uvicorn …:create`
    loops = BackgroundLoops()

    async def build() -> Container:
        return await bootstrap(settings)

    async def stop(c: Container) -> None:
        await loops.shutdown()

    async def freeze_heap(c: Container) -> None:
        settle_heap()

    return create_app(
        build, on_start=[loops.start_bus, loops.start_relay, freeze_heap], on_stop=[stop], settings=settings
    )
