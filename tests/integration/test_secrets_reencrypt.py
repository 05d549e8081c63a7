"""`tomato secrets re-encrypt` (docs/operations.md, "Rotating TOMATO_SECRET_KEYS"): secrets written under key A, the
command run with the ring "B,A", and afterwards every secret opens with B alone — app secrets, the platform key and
channel account configs, on SQLite and on PostgreSQL. A second run rewrites nothing; a row changed between read and
write is left alone; a row no key opens is reported and the command exits 1."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from tests.fixtures.stack import test_settings as settings_for
from tomato.bootstrap import Container, bootstrap
from tomato.channel.models import ChannelAccount, ChannelIdentity
from tomato.channel.sandbox import SandboxState
from tomato.core.crypto import SecretBox, SecretBoxError, generate_rsa_key, public_key_pem
from tomato.core.db import Database, create_engine
from tomato.core.reencrypt import reencrypt_column
from tomato.merchant.models import AppKey, PlatformKey
from tomato.merchant.portal_schemas import PortalInvite
from tomato.merchant.portal_users import TOTP_CONTEXT
from tomato.merchant.schemas import AppCreate, KeyRotate, MerchantCreate
from tomato.merchant.user_models import MerchantUser
from tomato.runtime.seed import seed_channel_accounts
from tomato.runtime.seed_providers import seed_service_providers

RING_A = SecretBox.generate_ring("ka")
RING_B = SecretBox.generate_ring("kb")
RING_C = SecretBox.generate_ring("kc")
TOMATO = Path(__file__).resolve().parents[2] / "tomato"


def run_cli(db_url: str, ring: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The real command in a process of its own, given only the settings an operator would export."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOMATO_")}
    env.update(TOMATO_DATABASE_URL=db_url, TOMATO_SECRET_KEYS=ring, TOMATO_DATA_DIR=str(cwd / "data"))
    return subprocess.run(
        [sys.executable, "-m", "tomato.cli", "secrets", "re-encrypt", "--batch", "2"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def counts(stdout: str) -> dict[str, dict[str, int]]:
    found: dict[str, dict[str, int]] = {}
    for table, rest in re.findall(r"^(\w+\.\w+): (.*)$", stdout, re.M):
        found[table] = {k: int(v) for k, v in (pair.split("=") for pair in rest.split())}
    return found


async def written_under_a(c: Container) -> tuple[dict[str, list[bytes]], list[str], str]:
    """Two HMAC apps (one mid-rotation, two keys), an RSA app (no secret), the platform key and the simulator
    accounts: (secrets per app newest first, account ids, platform key id)."""
    merchant = await c.merchants.create_merchant(MerchantCreate(name="Rotating"))
    apps: dict[str, list[bytes]] = {}
    for name in ("one", "two"):
        created = await c.merchants.create_app(merchant.mch_no, AppCreate(name=name))
        assert created.secret is not None
        apps[created.app.app_id] = [created.secret.encode()]
    first = next(iter(apps))
    rotated = await c.merchants.rotate_key(first, KeyRotate())
    assert rotated.secret is not None
    apps[first].insert(0, rotated.secret.encode())
    rsa_key = public_key_pem(generate_rsa_key())
    await c.merchants.create_app(merchant.mch_no, AppCreate(name="rsa", sign_type="RSA-SHA256", public_key_pem=rsa_key))
    platform = await c.merchants.platform_signer()
    sandbox = SandboxState()
    accounts = await seed_channel_accounts(c, sandbox, "http://127.0.0.1:9100")
    # an Alipay ISV account whose identity's token is a secret too, and a WeChat partner account
    providers = await seed_service_providers(c, sandbox, "http://127.0.0.1:9100", merchant.mch_no, 0)
    await c.merchants.users.invite(merchant.mch_no, PortalInvite(email="owner@example.com", role="owner"), "test")
    return apps, [*accounts.values(), *providers.values()], platform.key_id


async def ciphertexts(db: Database) -> list[str]:
    async with db.uow() as uow:
        keys = (await uow.session.scalars(select(AppKey.secret_ciphertext))).all()
        platform = (await uow.session.scalars(select(PlatformKey.private_key_ciphertext))).all()
        configs = (await uow.session.scalars(select(ChannelAccount.config_ciphertext))).all()
        tokens = (await uow.session.scalars(select(ChannelIdentity.secret_ciphertext))).all()
        totp = (await uow.session.scalars(select(MerchantUser.totp_secret_ciphertext))).all()
    return [t for t in [*keys, *platform, *configs, *tokens, *totp] if t is not None]


async def test_rows_under_a_open_with_b_alone_after_the_command(db: Database, db_url: str, tmp_path: Path) -> None:
    c = await bootstrap(settings_for(db_url, tmp_path, secret_keys=RING_A))
    try:
        apps, accounts, platform_key_id = await written_under_a(c)
    finally:
        await c.aclose()
    before = await ciphertexts(db)
    assert before and all(t.startswith("v1:ka:") for t in before)

    done = run_cli(db_url, f"{RING_B},{RING_A}", tmp_path)
    assert done.returncode == 0, done.stderr
    assert "active key: kb" in done.stdout and RING_B.split(":", 1)[1] not in done.stdout + done.stderr
    found = counts(done.stdout)
    assert found["merchant_app_keys.secret_ciphertext"] == {"rewritten": 3, "current": 0, "changed": 0, "failed": 0}
    assert found["platform_keys.private_key_ciphertext"]["rewritten"] == 1
    assert found["channel_accounts.config_ciphertext"]["rewritten"] == len(accounts) >= 5
    assert found["channel_identities.secret_ciphertext"]["rewritten"] == 1
    assert found["merchant_users.totp_secret_ciphertext"]["rewritten"] == 1
    after = await ciphertexts(db)
    assert len(after) == len(before) and all(t.startswith("v1:kb:") for t in after)

    c = await bootstrap(settings_for(db_url, tmp_path, secret_keys=RING_B))
    try:
        for app_id, secrets in apps.items():
            assert list((await c.merchants.app_auth(app_id, fresh=True)).hmac_secrets) == secrets
        assert (await c.merchants.platform_signer()).key_id == platform_key_id
        for account_id in accounts:
            await c.channels.adapter(account_id)  # decrypts and parses the whole config
        async with c.db.uow() as uow:
            (totp,) = (await uow.session.scalars(select(MerchantUser.totp_secret_ciphertext))).all()
        assert totp is not None and len(SecretBox.from_ring(RING_B).decrypt(totp, context=TOTP_CONTEXT)) == 32
    finally:
        await c.aclose()
    with pytest.raises(SecretBoxError):
        SecretBox.from_ring(RING_A).decrypt(after[0], context="anything")

    again = run_cli(db_url, RING_B, tmp_path)
    assert again.returncode == 0, again.stderr
    assert all(n["rewritten"] == 0 and n["current"] > 0 for n in counts(again.stdout).values())


async def test_a_row_no_key_opens_is_reported_and_left_alone(db: Database, db_url: str, tmp_path: Path) -> None:
    c = await bootstrap(settings_for(db_url, tmp_path, secret_keys=RING_C))
    try:
        merchant = await c.merchants.create_merchant(MerchantCreate(name="Lost"))
        await c.merchants.create_app(merchant.mch_no, AppCreate(name="x"))
    finally:
        await c.aclose()
    lost = await ciphertexts(db)

    done = run_cli(db_url, f"{RING_B},{RING_A}", tmp_path)
    assert done.returncode == 1
    assert counts(done.stdout)["merchant_app_keys.secret_ciphertext"]["failed"] == 1
    assert "TOMATO_SECRET_KEYS" in done.stderr
    assert await ciphertexts(db) == lost


async def test_a_row_changed_between_read_and_write_is_not_overwritten(sqlite_url: str) -> None:
    """Compare-and-set on the old ciphertext: another writer's value wins and is counted as `changed`."""
    db = Database(create_engine(sqlite_url))
    a, b = SecretBox.from_ring(RING_A), SecretBox.from_ring(f"{RING_B},{RING_A}")
    path = sqlite_url.split("///", 1)[1]
    try:
        async with db.uow() as uow:
            for kid in ("K1", "K2"):
                uow.session.add(
                    ChannelAccount(
                        id=kid,
                        channel="alipay",
                        name=kid,
                        status="ACTIVE",
                        config_ciphertext=a.encrypt(json.dumps({"n": kid}), context=f"channel-account:{kid}"),
                        cost_ppm=0,
                        created_at=datetime.now(UTC),
                        updated_at=datetime.now(UTC),
                    )
                )
            await uow.commit()
        concurrent = b.encrypt(json.dumps({"n": "edited"}), context="channel-account:K2")

        def context(pk: str) -> str:
            if pk == "K2":  # an operator edits the account after the batch was read, before it is written
                with sqlite3.connect(path) as conn:
                    conn.execute("UPDATE channel_accounts SET config_ciphertext = ? WHERE id = 'K2'", (concurrent,))
            return f"channel-account:{pk}"

        count = await reencrypt_column(
            db, b, key=ChannelAccount.id, column=ChannelAccount.config_ciphertext, context=context
        )
        assert (count.rewritten, count.changed, count.failed) == (1, 1, 0) and not count.done
        async with db.uow() as uow:
            rows = dict((await uow.session.execute(select(ChannelAccount.id, ChannelAccount.config_ciphertext))).all())
        assert rows["K2"] == concurrent
        assert json.loads(SecretBox.from_ring(RING_B).decrypt(rows["K1"], context="channel-account:K1")) == {"n": "K1"}
    finally:
        await db.dispose()


def test_every_encrypted_column_is_re_encrypted() -> None:
    """A context that seals a new secret (`self._box.encrypt(…, context=f"name:…")`) must add its column to its
    `reencrypt.py`, else rotating TOMATO_SECRET_KEYS would strand it under the old key."""
    sealed: set[str] = set()
    for path in TOMATO.rglob("*.py"):
        if "sandbox" in path.parts:
            continue
        sealed |= set(
            re.findall(r"\b_?box\.encrypt\((?:(?!box\.).){0,300}?context=f\"([a-z-]+):", path.read_text(), re.S)
        )
    covered = set()
    for path in TOMATO.rglob("reencrypt.py"):
        covered |= set(re.findall(r"f\"([a-z-]+):\{", path.read_text()))
    assert {"app-key", "platform-key", "channel-account"} <= sealed, sealed
    assert sealed <= covered, f"not re-encrypted: {sealed - covered}"


def test_platform_key_command_creates_the_key_once_and_prints_its_public_half(sqlite_url: str, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOMATO_")}
    env.update(TOMATO_DATABASE_URL=sqlite_url, TOMATO_SECRET_KEYS=RING_A, TOMATO_DATA_DIR=str(tmp_path / "data"))
    runs = [
        subprocess.run(
            [sys.executable, "-m", "tomato.cli", "secrets", "platform-key"],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
        )
        for _ in range(2)
    ]  # fmt: skip
    assert [r.returncode for r in runs] == [0, 0], runs[0].stderr
    first, second = (r.stdout.splitlines() for r in runs)
    assert first == second and first[0].startswith("key_id=PK")
    assert first[1] == "-----BEGIN PUBLIC KEY-----" and first[-1] == "-----END PUBLIC KEY-----"
    assert "PRIVATE" not in runs[0].stdout + runs[0].stderr
