"""The `tomato` command: one CLI for every process role and the operator's one-off tasks."""

from __future__ import annotations

import asyncio
import gc
import os
import shutil
import tempfile
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from tomato.core.logs import configure_logging
from tomato.core.settings import Settings, load_settings

if TYPE_CHECKING:
    from tomato.account.check import CheckReport
    from tomato.core.reencrypt import ReencryptCount

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"  # prometheus_client's own name (gateway.metrics reads it)

app = typer.Typer(help="Tomato Pay: an aggregated payment gateway.", no_args_is_help=True, add_completion=False)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
admin_app = typer.Typer(help="Admin API tokens.", no_args_is_help=True)
merchant_app = typer.Typer(help="Merchant onboarding.", no_args_is_help=True)
ledger_app = typer.Typer(help="The ledger (account context).", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(ledger_app, name="ledger")
app.add_typer(admin_app, name="admin")
app.add_typer(merchant_app, name="merchant")
secrets_app = typer.Typer(help="Secrets at rest (TOMATO_SECRET_KEYS).", no_args_is_help=True)
app.add_typer(secrets_app, name="secrets")


def _settings() -> Settings:
    settings = load_settings()
    configure_logging(settings.log_level, settings.log_format)
    return settings


def _checked(settings: Settings, *, serves_api: bool, workers: int = 1) -> Settings:
    """Refuses an unsafe deployment (see tomato.runtime.preflight) with exit status 2 and the reasons."""
    from tomato.runtime.preflight import StartupRefused, check_startup

    try:
        check_startup(settings, serves_api=serves_api, workers=workers)
    except StartupRefused as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    return settings


def _ensure_schema(settings: Settings) -> None:
    """The embedded SQLite file is brought up to date automatically; PostgreSQL needs `tomato db upgrade`."""
    if settings.is_sqlite:
        from tomato.migrations import upgrade

        upgrade(settings.database_url)


def _run_loop(main: Coroutine[Any, Any, None]) -> None:
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
def _multiprocess_metrics(workers: int) -> Iterator[None]:
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


@db_app.command("upgrade")
def db_upgrade(revision: str = "heads") -> None:
    """Apply the packaged migrations to TOMATO_DATABASE_URL."""
    settings = _settings()
    from tomato.migrations import upgrade

    upgrade(settings.database_url, revision)
    typer.echo(f"database at revision {revision}")


@app.command()
def serve(
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: Annotated[int, typer.Option(min=1, help="uvicorn worker processes")] = 1,
) -> None:
    """Run the HTTP edge (merchant API, callbacks, cashier, admin); SIGTERM drains and exits."""
    import uvicorn

    settings = _checked(_settings(), serves_api=True, workers=workers)
    _ensure_schema(settings)
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
        with _multiprocess_metrics(workers):
            uvicorn.run(config.app, factory=True, host=host, port=port, workers=workers, access_log=False,
                        log_config=None, log_level=settings.log_level.lower())  # fmt: skip
        return
    from tomato.runtime.servers import GracefulServer

    GracefulServer(config).run()


@ledger_app.command("check")
def ledger_check() -> None:
    """Verify every ledger invariant (docs/finance.md); prints each violation and exits 1, else prints "ok"."""
    settings = _checked(_settings(), serves_api=False)
    _ensure_schema(settings)

    async def run() -> CheckReport:
        from tomato.account.check import check_ledger
        from tomato.bootstrap import bootstrap

        c = await bootstrap(settings)
        try:
            return await check_ledger(
                c.db, c.pay.succeeded_orders, c.clock.now(), pending_payouts=c.payouts.pending_by_merchant
            )
        finally:
            await c.aclose()

    report = asyncio.run(run())
    from tomato.account.check import alert_violations

    alert_violations(report)  # an ERROR line per violation (stderr), for a log-based alert on a cron run
    for warning in report.warnings:
        typer.echo(f"warning: {warning}")
    for violation in report.violations:
        typer.echo(f"violation: {violation}")
    if not report.ok:
        typer.echo(f"{len(report.violations)} violation(s)")
        raise typer.Exit(1)
    typer.echo("ok")


@admin_app.command("create-token")
def create_token(role: Annotated[str, typer.Option(help="operator or finance")], name: str = "") -> None:
    """Create an admin bearer token; it is printed once and stored only as a hash. Audited (via cli)."""
    settings = _checked(_settings(), serves_api=False)
    _ensure_schema(settings)

    async def run() -> str:
        from tomato.bootstrap import bootstrap
        from tomato.core.errors import TomatoError
        from tomato.merchant.admin_schemas import AdminTokenView

        c = await bootstrap(settings)
        try:
            created = await c.merchants.issue_admin_token(role, name)
            view = AdminTokenView(**created.model_dump())
            await c.merchants.record_admin_action(
                via="cli", actor=_cli_actor(), action="token.create", target=created.id, before=None, after=view
            )
            return created.token
        except TomatoError as exc:
            typer.echo(f"{exc.code}: {exc.message}", err=True)
            raise typer.Exit(2) from None
        finally:
            await c.aclose()

    typer.echo(asyncio.run(run()))


@admin_app.command("list-tokens")
def list_tokens() -> None:
    """Every admin token, oldest first: id, role, name, created, revoked (never the token or its hash)."""
    settings = _checked(_settings(), serves_api=False)
    _ensure_schema(settings)

    async def run() -> list[list[str]]:
        from tomato.bootstrap import bootstrap
        from tomato.core.clock import rfc3339
        from tomato.merchant.admin_schemas import AdminTokenView

        c = await bootstrap(settings)
        tokens: list[AdminTokenView] = []
        try:
            while page := await c.merchants.list_admin_tokens(tokens[-1].id if tokens else None, 500):
                tokens += page
        finally:
            await c.aclose()
        return [[t.id, t.role, t.name, rfc3339(t.created_at) or "", rfc3339(t.revoked_at) or "-"] for t in tokens]

    rows = [["id", "role", "name", "created", "revoked"], *asyncio.run(run())]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        typer.echo("  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip())


@admin_app.command("revoke-token")
def revoke_token(token_id: Annotated[str, typer.Argument(help="the token's id, tok_… (see list-tokens)")]) -> None:
    """Revoke an admin token: its very next request is refused with 401. Audited (via cli).
    Exits 1 when there is no such token or it is already revoked."""
    settings = _checked(_settings(), serves_api=False)
    _ensure_schema(settings)

    async def run() -> int:
        from tomato.bootstrap import bootstrap
        from tomato.core.errors import TomatoError

        c = await bootstrap(settings)
        try:
            before = await c.merchants.get_admin_token(token_id)
            after = await c.merchants.revoke_admin_token(token_id)
            await c.merchants.record_admin_action(
                via="cli", actor=_cli_actor(), action="token.revoke", target=token_id, before=before, after=after
            )
        except TomatoError as exc:
            typer.echo(f"{exc.code}: {exc.message}", err=True)
            return 1
        finally:
            await c.aclose()
        typer.echo(f"revoked {after.id} ({after.role}:{after.name})")
        return 0

    raise typer.Exit(asyncio.run(run()))


def _cli_actor() -> str:
    """Who ran a CLI command, as audit rows name them: `cli:<login name>` (the CLI has no admin token)."""
    import getpass

    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no login name in this environment (a container without a passwd entry)
        return "cli:unknown"


@merchant_app.command("create")
def create_merchant(
    name: str,
    sign_type: Annotated[str, typer.Option(help="HMAC-SHA256 or RSA-SHA256")] = "HMAC-SHA256",
    public_key_file: Annotated[Path | None, typer.Option(help="merchant RSA public key (RSA apps)")] = None,
    notify_url: str | None = None,
) -> None:
    """Create a merchant with one app; prints the app id and, for HMAC apps, the secret (shown only once)."""
    settings = _checked(_settings(), serves_api=False)
    _ensure_schema(settings)

    async def run() -> None:
        from tomato.bootstrap import bootstrap
        from tomato.merchant.schemas import AppCreate, MerchantCreate

        c = await bootstrap(settings)
        try:
            merchant = await c.merchants.create_merchant(MerchantCreate(name=name))
            created = await c.merchants.create_app(
                merchant.mch_no,
                AppCreate.model_validate(
                    {
                        "sign_type": sign_type,
                        "notify_url": notify_url,
                        "public_key_pem": public_key_file.read_text() if public_key_file else None,
                    },
                    strict=False,
                ),
            )
        finally:
            await c.aclose()
        typer.echo(f"mch_no={merchant.mch_no}")
        typer.echo(f"app_id={created.app.app_id}")
        if created.secret:
            typer.echo(f"app_secret={created.secret}")

    asyncio.run(run())


@secrets_app.command("re-encrypt")
def secrets_reencrypt(
    batch: Annotated[int, typer.Option(min=1, max=10_000, help="rows per transaction")] = 200,
) -> None:
    """Rewrite every encrypted column under the first key of TOMATO_SECRET_KEYS (docs/operations.md, "Rotating
    TOMATO_SECRET_KEYS"); prints counts per column. Exits 1 while a row is left under an old key."""
    settings = _checked(_settings(), serves_api=False)
    _ensure_schema(settings)

    async def run() -> list[ReencryptCount]:
        from tomato.bootstrap import secret_box
        from tomato.channel.reencrypt import reencrypt_secrets as channel_secrets
        from tomato.core.db import Database, create_engine
        from tomato.merchant.reencrypt import reencrypt_secrets as merchant_secrets

        box = secret_box(settings)
        typer.echo(f"active key: {box.active}")
        db = Database(create_engine(settings.database_url, pool_size=2))
        try:
            return [*await merchant_secrets(db, box, batch=batch), *await channel_secrets(db, box, batch=batch)]
        finally:
            await db.dispose()

    counts = asyncio.run(run())
    for c in counts:
        typer.echo(f"{c.table}: rewritten={c.rewritten} current={c.current} changed={c.changed} failed={c.failed}")
    if any(c.failed for c in counts):
        typer.echo("some rows open with no key of the ring: put their key back in TOMATO_SECRET_KEYS", err=True)
    if any(c.changed for c in counts):
        typer.echo("some rows changed while being rewritten: run the command again", err=True)
    if not all(c.done for c in counts):
        raise typer.Exit(1)
    typer.echo("every secret is under the active key; older keys may be removed from TOMATO_SECRET_KEYS")


@secrets_app.command("platform-key")
def secrets_platform_key() -> None:
    """Create the platform's RSA key if there is none yet, and print its id and public half (docs/operations.md,
    "The platform key"). Run it once before starting several processes, so they never race to create two."""
    settings = _checked(_settings(), serves_api=False)
    _ensure_schema(settings)

    async def run() -> tuple[str, str]:
        from tomato.bootstrap import bootstrap

        c = await bootstrap(settings)
        try:
            signer = await c.merchants.platform_signer()
        finally:
            await c.aclose()
        return signer.key_id, signer.public_key_pem

    key_id, pem = asyncio.run(run())
    typer.echo(f"key_id={key_id}")
    typer.echo(pem.rstrip("\n"))


@app.command()
def reconcile(
    date: Annotated[str, typer.Option("--date", help="business date YYYY-MM-DD")],
    channel_account: Annotated[str | None, typer.Option("--channel-account", help="one account (default: all)")] = None,
) -> None:
    """Reconcile the channel statements of one business date (every active account, or one) and print each batch.
    Exits 1 when a statement could not be had or checked (its batch is ERROR), else 0."""
    from datetime import date as Date

    settings = _checked(_settings(), serves_api=False)
    _ensure_schema(settings)
    try:
        day = Date.fromisoformat(date) if len(date) == 10 else None
    except ValueError:
        day = None
    if day is None:
        typer.echo("--date must be YYYY-MM-DD", err=True)
        raise typer.Exit(2)

    async def run() -> int:
        from tomato.bootstrap import bootstrap
        from tomato.core.errors import TomatoError

        c = await bootstrap(settings)
        failed = 0
        try:
            accounts = [channel_account] if channel_account else await c.reconciliation.active_accounts()
            with typer.progressbar(length=len(accounts), label=f"reconciling {day}") as bar:
                for account in accounts:

                    def seen(n: int, account: str = account) -> None:
                        bar.label = f"{account}: {n} statement rows loaded"
                        bar.render_progress()

                    try:
                        batch = await c.reconciliation.run(account, day, progress=seen)
                        line = f"{account} {batch.id} {batch.status} {batch.counts}"
                    except TomatoError as exc:  # the statement could not be had (ERROR batch), an unknown account…
                        failed += 1
                        line = f"{account} {exc.code}: {exc.message}"
                    bar.update(1)
                    typer.echo(f"\n{line}")
        finally:
            await c.aclose()
        return 1 if failed else 0

    raise typer.Exit(asyncio.run(run()))


@app.command()
def sandbox(
    host: str = "127.0.0.1",
    port: int = 9100,
    time_scale: Annotated[float, typer.Option(help="divides the channels' notify retry delays")] = 1.0,
) -> None:
    """Run the channel simulator alone (channel gateways, payer API /sandbox/scan, /sandbox/faults, statements)."""
    import uvicorn

    from tomato.channel.sandbox import SandboxState, create_sandbox_app

    settings = _settings()
    from tomato.runtime.servers import GracefulServer

    app_ = create_sandbox_app(SandboxState(time_scale=time_scale, fee_ppm=settings.sandbox_fee_ppm))
    GracefulServer(
        uvicorn.Config(app_, host=host, port=port, access_log=False, log_config=None,
                       log_level=settings.log_level.lower())  # fmt: skip
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

    settings = _checked(_settings(), serves_api=False)
    _run_loop(run_worker(settings, enabled_port(settings, metrics_port, settings.worker_metrics_port)))


@app.command()
def scheduler(metrics_port: MetricsPortOption = None) -> None:
    """Timed jobs (compensation queries, expiry), each behind a database lease; run as many as you like."""
    from tomato.runtime.metrics_server import enabled_port
    from tomato.runtime.roles import run_scheduler

    settings = _checked(_settings(), serves_api=False)
    _run_loop(run_scheduler(settings, enabled_port(settings, metrics_port, settings.scheduler_metrics_port)))


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

    settings = _checked(_settings(), serves_api=True)  # dev only ever turns an unset database into SQLite
    _run_loop(
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

    settings = _checked(_settings(), serves_api=True)
    if "log_level" not in settings.model_fields_set:  # the story's lines are the output; other logs when asked
        configure_logging("ERROR", settings.log_format)
    options = DemoOptions(host=host, port=port, sandbox_port=sandbox_port, data_dir=data_dir, keep=keep)
    status: list[int] = []

    async def main() -> None:
        status.append(await run_demo(settings, options, out=lambda line: typer.echo(line)))

    _run_loop(main())
    raise typer.Exit(status[0] if status else 1)

if __name__ == "__main__":  # pragma: no cover
    app()
