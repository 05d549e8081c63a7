"""The long-running process roles: serve, worker, scheduler, the simulator, and `tomato dev` / `tomato demo`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tomato.cli.apps import app
from tomato.cli.startup import checked, ensure_schema, load_cli_settings, multiprocess_metrics, run_loop
from tomato.core.logs import configure_logging


@app.command()
def serve(
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: Annotated[int, typer.Option(min=1, help="uvicorn worker processes")] = 1,
) -> None:
    """Run the HTTP edge (merchant API, callbacks, cashier, admin); SIGTERM drains and exits."""
    import uvicorn

    settings = checked(load_cli_settings(), serves_api=True, workers=workers)
    ensure_schema(settings)
    # log_config=None: uvicorn's lines go through our handler (core.logs), in our format; its access log stays off
    # (ours is the middleware's, TOMATO_ACCESS_LOG)
    config = uvicorn.Config(
        "tomato.runtime.asgi:create",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        access_log=False,
        log_config=None,
        timeout_graceful_shutdown=8,
        log_level=settings.log_level.lower(),
    )
    if workers > 1:  # uvicorn's supervisor forwards SIGTERM to the workers and waits for them
        with multiprocess_metrics(workers):
            uvicorn.run(config.app, factory=True, host=host, port=port, workers=workers, access_log=False,
                        log_config=None, log_level=settings.log_level.lower())  # fmt: skip
        return
    from tomato.runtime.servers import GracefulServer

    GracefulServer(config).run()


@app.command()
def sandbox(
    host: str = "127.0.0.1",
    port: int = 9100,
    time_scale: Annotated[float, typer.Option(help="divides the channels' notify retry delays")] = 1.0,
) -> None:
    """Run the channel simulator alone (channel gateways, payer API /sandbox/scan, /sandbox/faults, statements)."""
    import uvicorn

    from tomato.channel.sandbox import SandboxState, create_sandbox_app

    settings = load_cli_settings()
    from tomato.runtime.heap import settle_heap
    from tomato.runtime.servers import GracefulServer

    app_ = create_sandbox_app(SandboxState(time_scale=time_scale, fee_ppm=settings.sandbox_fee_ppm))
    settle_heap()
    GracefulServer(
        uvicorn.Config(
            app_, host=host, port=port, access_log=False, log_config=None, log_level=settings.log_level.lower()
        )  # fmt: skip
    ).run()


MetricsPortOption = Annotated[
    int | None,
    typer.Option("--metrics-port", min=0, max=65535, help="serve /metrics on this port (0: none); see the settings"),
]


@app.command()
def worker(metrics_port: MetricsPortOption = None) -> None:
    """Event consumers and the outbox relay (re-publishes anything left unsent)."""
    from tomato.runtime.metrics_server import enabled_port
    from tomato.runtime.roles import run_worker

    settings = checked(load_cli_settings(), serves_api=False)
    run_loop(run_worker(settings, enabled_port(settings, metrics_port, settings.worker_metrics_port)))


@app.command()
def scheduler(metrics_port: MetricsPortOption = None) -> None:
    """Timed jobs (compensation queries, expiry), each behind a database lease; run as many as you like."""
    from tomato.runtime.metrics_server import enabled_port
    from tomato.runtime.roles import run_scheduler

    settings = checked(load_cli_settings(), serves_api=False)
    run_loop(run_scheduler(settings, enabled_port(settings, metrics_port, settings.scheduler_metrics_port)))


@app.command()
def dev(
    port: int = 8000,
    sandbox_port: int = 9100,
    host: str = "127.0.0.1",
    credentials_out: Annotated[Path | None, typer.Option(help="write the credentials JSON here once serving")] = None,
    notify_url: Annotated[str | None, typer.Option(help="default webhook URL of the demo apps")] = None,
) -> None:
    """Gateway, worker, scheduler and channel simulator in one process, seeded for black-box use."""
    from tomato.runtime.dev import run_dev

    settings = checked(load_cli_settings(), serves_api=True)  # dev only ever turns an unset database into SQLite
    run_loop(
        run_dev(
            settings,
            host=host,
            port=port,
            sandbox_port=sandbox_port,
            credentials_out=credentials_out,
            notify_url=notify_url,
        )
    )


@app.command()
def demo(
    keep: Annotated[bool, typer.Option(help="after the summary keep the stack serving, until Ctrl-C")] = False,
    port: Annotated[int, typer.Option(help="gateway port (0: any free one)")] = 8000,
    sandbox_port: Annotated[int, typer.Option(help="channel simulator port (0: any free one)")] = 9100,
    host: str = "127.0.0.1",
    data_dir: Annotated[
        Path | None, typer.Option(help="keep the data here and reuse it (default: .tomato/demo, emptied each run)")
    ] = None,
) -> None:
    """The whole product in one command: the `tomato dev` stack plus a scripted story — orders on every channel,
    payments, verified webhooks, a refund, settlement, a payout, reconciliation — and the money figures.
    Exits 0, or 1 naming the step that failed."""
    from tomato.runtime.demo import DemoOptions, run_demo

    settings = checked(load_cli_settings(), serves_api=True)
    if "log_level" not in settings.model_fields_set:  # the story's lines are the output; other logs when asked
        configure_logging("ERROR", settings.log_format)
    options = DemoOptions(host=host, port=port, sandbox_port=sandbox_port, data_dir=data_dir, keep=keep)
    status: list[int] = []

    async def main() -> None:
        status.append(await run_demo(settings, options, out=lambda line: typer.echo(line)))

    run_loop(main())
    raise typer.Exit(status[0] if status else 1)
