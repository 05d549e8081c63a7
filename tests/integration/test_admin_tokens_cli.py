"""Issue 19 acceptance 4 through the CLI: `tomato admin list-tokens` and `revoke-token`, and a token revoked there is
refused by the API on its next request. The commands run in-process (typer's runner) on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.conftest import truncate_all
from tests.fixtures.stack import running_stack
from tests.fixtures.stack import test_settings as platform_settings
from tomato.cli import app
from tomato.core.crypto import SecretBox
from tomato.core.db import Database, create_engine
from tomato.core.settings import Settings


@pytest.fixture
def cli_env(db_url: str, tmp_path: Path) -> Iterator[dict[str, str]]:
    env = {
        "TOMATO_DATABASE_URL": db_url,
        "TOMATO_SECRET_KEYS": SecretBox.generate_ring("t1"),
        "TOMATO_DATA_DIR": str(tmp_path / "data"),
        "TOMATO_ADMIN_TOKENS": "",
        "TOMATO_REDIS_URL": "",
        "TOMATO_AMQP_URL": "",
    }
    yield env
    if db_url.startswith("postgresql"):
        database = Database(create_engine(db_url))

        async def clean() -> None:
            await truncate_all(database)
            await database.dispose()

        asyncio.run(clean())


def _settings(env: dict[str, str], tmp_path: Path) -> Settings:
    return platform_settings(env["TOMATO_DATABASE_URL"], tmp_path, secret_keys=env["TOMATO_SECRET_KEYS"])


def _status_of(settings: Settings, token: str) -> int:
    """One admin request with `token` against a freshly started platform: its HTTP status."""

    async def run() -> int:
        async with running_stack(settings) as (_, client):
            r = await client.get("/admin/merchants", headers={"Authorization": f"Bearer {token}"})
            return r.status_code

    return asyncio.run(run())


def _audit(settings: Settings) -> list[dict[str, object]]:
    async def run() -> list[dict[str, object]]:
        async with running_stack(settings) as (c, _):
            from tomato.merchant.admin_schemas import AuditFilter

            items = await c.merchants.list_admin_audit(AuditFilter(), None, 100)
            return [i.model_dump(mode="json") for i in items]

    return asyncio.run(run())


def test_a_token_revoked_by_the_cli_is_refused_on_its_next_request(cli_env: dict[str, str], tmp_path: Path) -> None:
    runner = CliRunner()
    made = runner.invoke(app, ["admin", "create-token", "--role", "operator", "--name", "carol"], env=cli_env)
    assert made.exit_code == 0, made.output
    token = made.output.strip().splitlines()[-1]
    assert token.startswith("tpk_operator_")

    listed = runner.invoke(app, ["admin", "list-tokens"], env=cli_env)
    assert listed.exit_code == 0, listed.output
    header, *lines = [line for line in listed.output.splitlines() if line.strip()]
    assert header.split() == ["id", "role", "name", "created", "revoked"]
    [row] = [line.split() for line in lines if "carol" in line]
    token_id = row[0]
    assert token_id.startswith("tok_") and row[1] == "operator" and row[4] == "-"
    assert token not in listed.output

    settings = _settings(cli_env, tmp_path)
    assert _status_of(settings, token) == 200
    revoked = runner.invoke(app, ["admin", "revoke-token", token_id], env=cli_env)
    assert revoked.exit_code == 0, revoked.output
    assert _status_of(settings, token) == 401

    relisted = runner.invoke(app, ["admin", "list-tokens"], env=cli_env)
    [row] = [line.split() for line in relisted.output.splitlines() if "carol" in line]
    assert row[4] != "-" and row[4].endswith("Z")  # the revocation time

    again = runner.invoke(app, ["admin", "revoke-token", token_id], env=cli_env)
    assert again.exit_code == 1 and "ORDER_STATE_CONFLICT" in again.output
    unknown = runner.invoke(app, ["admin", "revoke-token", "tok_0000000000000000"], env=cli_env)
    assert unknown.exit_code == 1 and "TOKEN_NOT_FOUND" in unknown.output
    bad_role = runner.invoke(app, ["admin", "create-token", "--role", "root"], env=cli_env)
    assert bad_role.exit_code == 2 and "INVALID_REQUEST: role" in bad_role.output

    trail = _audit(settings)
    assert [(e["action"], e["via"], e["target"]) for e in trail] == [
        ("token.revoke", "cli", token_id),
        ("token.create", "cli", token_id),
    ]
    assert all(str(e["actor"]).startswith("cli:") and e["actor_token_id"] is None for e in trail)
    assert trail[0]["before"]["revoked_at"] is None and trail[0]["after"]["revoked_at"]  # type: ignore[index]
