"""What every `tomato` command does before its work: settings from the environment (and logging), the start-up
checks, the embedded schema, the event loop, and the metrics directory of `serve --workers N`."""

from __future__ import annotations

import asyncio
import gc
import os
import shutil
import tempfile
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from typing import Any

import typer

from tomato.core.logs import configure_logging
from tomato.core.settings import Settings, load_settings

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"  # prometheus_client's own name (gateway.metrics reads it)


def load_cli_settings() -> Settings:
    settings = load_settings()
    configure_logging(settings.log_level, settings.log_format)
    return settings


def checked(settings: Settings, *, serves_api: bool, workers: int = 1) -> Settings:
    """Refuses an unsafe deployment (see tomato.runtime.preflight) with exit status 2 and the reasons."""
    from tomato.runtime.preflight import StartupRefused, check_startup

    try:
        check_startup(settings, serves_api=serves_api, workers=workers)
    except StartupRefused as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    return settings


def ensure_schema(settings: Settings) -> None:
    """The embedded SQLite file is brought up to date automatically; PostgreSQL needs `tomato db upgrade`."""
    if settings.is_sqlite:
        from tomato.migrations import upgrade

        upgrade(settings.database_url)


def run_loop(main: Coroutine[Any, Any, None]) -> None:
    """Long-running roles run on uvloop where it is installed (about a quarter less CPU per webhook), as uvicorn's
    servers do; elsewhere (Windows, PyPy: the dependency's platform marker leaves it out) on asyncio's own loop.

    Once the loop has returned the process only exits: freezing the heap spares the interpreter's final garbage
    collection of everything imported (one to three seconds on a busy machine, most of a Ctrl-C's wait)."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
    else:
        uvloop.run(main)
    gc.freeze()


@contextmanager
def multiprocess_metrics(workers: int) -> Iterator[None]:
    """`serve --workers N`: a fresh private directory (0700, under $TMPDIR) where every worker writes its metrics, so
    one scrape of any worker reports them all (gateway.metrics); removed when serve exits. Set before uvicorn starts
    the workers, because prometheus_client picks its storage when a worker imports it."""
    if workers < 2:
        yield
        return
    path = tempfile.mkdtemp(prefix="tomato-metrics-")
    previous = os.environ.get(MULTIPROC_ENV)
    os.environ[MULTIPROC_ENV] = path
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(MULTIPROC_ENV, None)
        else:
            os.environ[MULTIPROC_ENV] = previous
        shutil.rmtree(path, ignore_errors=True)
