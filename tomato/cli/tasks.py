"""The operator's one-off tasks: the schema, admin tokens, merchants, secrets, the ledger check, a reconciliation."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from tomato.cli.apps import admin_app, app, db_app, ledger_app, merchant_app, secrets_app
from tomato.cli.startup import checked, ensure_schema, load_cli_settings

if TYPE_CHECKING:
    from tomato.account.check import CheckReport
    from tomato.core.reencrypt import ReencryptCount


@db_app.command("upgrade")
def db_upgrade(revision: str = "heads") -> None:
    """Apply the packaged migrations to TOMATO_DATABASE_URL."""
    settings = load_cli_settings()
    from tomato.migrations import upgrade

    upgrade(settings.database_url, revision)
    typer.echo(f"database at revision {revision}")


@ledger_app.command("check")
def ledger_check() -> None:
    """Verify every ledger invariant (docs/finance.md); prints each violation and exits 1, else prints "ok"."""
    settings = checked(load_cli_settings(), serves_api=False)
    ensure_schema(settings)

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
    settings = checked(load_cli_settings(), serves_api=False)
    ensure_schema(settings)

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
    settings = checked(load_cli_settings(), serves_api=False)
    ensure_schema(settings)

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
    settings = checked(load_cli_settings(), serves_api=False)
    ensure_schema(settings)

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
    settings = checked(load_cli_settings(), serves_api=False)
    ensure_schema(settings)

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
    settings = checked(load_cli_settings(), serves_api=False)
    ensure_schema(settings)

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
    settings = checked(load_cli_settings(), serves_api=False)
    ensure_schema(settings)

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

    settings = checked(load_cli_settings(), serves_api=False)
    ensure_schema(settings)
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
