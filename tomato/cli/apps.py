"""The `tomato` command and its groups; the commands register on them from `roles` and `tasks`."""

from __future__ import annotations

import typer

app = typer.Typer(help="Tomato Pay: an aggregated payment gateway.", no_args_is_help=True, add_completion=False)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
admin_app = typer.Typer(help="Admin API tokens.", no_args_is_help=True)
merchant_app = typer.Typer(help="Merchant onboarding.", no_args_is_help=True)
ledger_app = typer.Typer(help="The ledger (account context).", no_args_is_help=True)
secrets_app = typer.Typer(help="Secrets at rest (TOMATO_SECRET_KEYS).", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(ledger_app, name="ledger")
app.add_typer(admin_app, name="admin")
app.add_typer(merchant_app, name="merchant")
app.add_typer(secrets_app, name="secrets")
