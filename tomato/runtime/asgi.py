"""The ASGI factory `tomato serve` hands to uvicorn (`factory=True`), one app per worker process."""

from __future__ import annotations

from fastapi import FastAPI

from tomato.bootstrap import Container, bootstrap
from tomato.core.settings import load_settings
from tomato.gateway.app import create_app
from tomato.runtime.loops import BackgroundLoops


def create() -> FastAPI:
    settings = load_settings()
    loops = BackgroundLoops()

    async def build() -> Container:
        return await bootstrap(settings)

    async def stop(c: Container) -> None:
        await loops.shutdown()

    return create_app(build, on_start=[loops.start_bus, loops.start_relay], on_stop=[stop])
