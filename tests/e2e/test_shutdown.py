"""Ctrl-C (SIGINT) or SIGTERM stops `tomato dev`, `tomato worker` and `tomato scheduler` within 3 s, exit status 0 and
no traceback — also while work hangs at the far end: a webhook the merchant never answers (worker, dev) and a
compensation query the channel never answers (scheduler). Each role runs as a real process on the embedded backends
in a temporary directory; the hanging peers are this test's own HTTP servers, so "in flight" is a condition we see."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import free_port
from tests.fixtures.merchant_client import MerchantClient
from tests.fixtures.pay_stack import LateASGITransport
from tests.fixtures.stack import test_settings as make_settings
from tests.fixtures.webhook_receiver import Received, Receiver
from tomato.bootstrap import bootstrap
from tomato.channel.sandbox.app import create_sandbox_app
from tomato.channel.sandbox.state import SandboxState
from tomato.core.crypto import SecretBox
from tomato.core.outbox import add_event
from tomato.core.settings import Settings
from tomato.gateway.app import create_app
from tomato.merchant.schemas import AppCreate, MerchantCreate
from tomato.runtime.seed import seed_channel_accounts, seed_demo_merchant

pytestmark = pytest.mark.slow

STOP_WITHIN_S = 3.0  # the contract (docs/operations.md, "Shutdown")


@pytest.fixture
async def hanging() -> AsyncIterator[Receiver]:
    """An HTTP peer that takes every request and never answers (until the test ends)."""
    release = asyncio.Event()

    async def never(_: Received) -> int:
        await release.wait()
        return 200

    receiver = Receiver(respond=never)
    await receiver.start()
    try:
        yield receiver
    finally:
        release.set()
        await receiver.close()


def _env(**tomato: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOMATO_")}
    return {**env, **{f"TOMATO_{k.upper()}": v for k, v in tomato.items()}}


async def _spawn(cwd: Path, env: dict[str, str], *args: str) -> asyncio.subprocess.Process:
    err = (cwd / "stderr.log").open("wb")
    try:
        return await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tomato.cli", *args, cwd=cwd, env=env, stdout=err, stderr=err
        )
    finally:
        err.close()


async def _stop_promptly(proc: asyncio.subprocess.Process, sig: signal.Signals, cwd: Path) -> None:
    assert proc.returncode is None, (cwd / "stderr.log").read_text()[-3000:]
    started = time.monotonic()
    proc.send_signal(sig)
    try:
        code = await asyncio.wait_for(proc.wait(), timeout=30)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    elapsed = time.monotonic() - started
    log = (cwd / "stderr.log").read_text()
    assert code == 0, log[-3000:]
    assert elapsed < STOP_WITHIN_S, f"stopped after {elapsed:.1f} s\n{log[-3000:]}"
    assert "Traceback" not in log, log[-3000:]


async def _wait_for(what: str, ready: Any, proc: asyncio.subprocess.Process, cwd: Path, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not ready():
        if proc.returncode is not None or time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen:\n{(cwd / 'stderr.log').read_text()[-3000:]}")
        await asyncio.sleep(0.05)  # polling a condition another process brings about


def _embedded(cwd: Path) -> Settings:
    return make_settings(f"sqlite+aiosqlite:///{cwd}/tomato.db", cwd, secret_keys=SecretBox.generate_ring("s1"),
                         webhook_allowed_networks="127.0.0.0/8")  # fmt: skip


async def _migrated(settings: Settings) -> None:
    from tomato.migrations import upgrade

    await asyncio.to_thread(upgrade, settings.database_url)


def _role_env(settings: Settings, **extra: str) -> dict[str, str]:
    return _env(
        database_url=settings.database_url,
        secret_keys=settings.secret_keys or "",
        data_dir=settings.data_dir,
        webhook_allowed_networks=settings.webhook_allowed_networks,
        **extra,
    )


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
async def test_dev_stops_promptly_with_a_webhook_in_flight(
    tmp_path: Path, hanging: Receiver, sig: signal.Signals
) -> None:
    creds_file = tmp_path / "creds.json"
    proc = await _spawn(tmp_path, _env(), "dev", "--port", str(free_port()), "--sandbox-port", str(free_port()),
                        "--credentials-out", str(creds_file), "--notify-url", hanging.url)  # fmt: skip
    try:
        await _wait_for("the credentials file", creds_file.exists, proc, tmp_path)
        creds = json.loads(creds_file.read_text())
        async with (
            httpx.AsyncClient(base_url=creds["base_url"]) as http,
            httpx.AsyncClient(base_url=creds["sandbox_url"]) as sandbox,
        ):
            order = (await MerchantClient(http, creds["app_id"], secret=creds["app_secret"]).create_order()).json()
            paid = await sandbox.post("/sandbox/scan", json={"content": order["pay_data"]["value"], "result": "paid"})
            assert paid.status_code == 200, paid.text
        await _wait_for("the pay.succeeded webhook", lambda: hanging.received, proc, tmp_path)
        await _stop_promptly(proc, sig, tmp_path)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_worker_stops_promptly_with_a_webhook_in_flight(tmp_path: Path, hanging: Receiver) -> None:
    settings = _embedded(tmp_path)
    await _migrated(settings)
    c = await bootstrap(settings)
    try:
        merchant = await c.merchants.create_merchant(MerchantCreate(name="Hang Ltd"))
        app = await c.merchants.create_app(merchant.mch_no, AppCreate(name="h", notify_url=hanging.url))
        async with c.db.uow() as uow:
            add_event(uow.session, c.ids, event_type="pay.succeeded", aggregate_type="pay_order",
                      aggregate_id="P1", data={"order_no": "P1"}, app_id=app.app.app_id)  # fmt: skip
            await uow.commit()
    finally:
        await c.aclose()
    proc = await _spawn(tmp_path, _role_env(settings), "worker")
    try:
        await _wait_for("the webhook", lambda: hanging.received, proc, tmp_path)
        await _stop_promptly(proc, signal.SIGTERM, tmp_path)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_scheduler_stops_promptly_with_a_channel_query_in_flight(tmp_path: Path, hanging: Receiver) -> None:
    """The order is created against an in-process simulator; its channel account names the hanging peer, so the
    scheduler's compensation query (due at once with the time scale below) never gets an answer."""
    settings = _embedded(tmp_path)
    await _migrated(settings)
    to_sandbox = LateASGITransport()
    c = await bootstrap(settings, channel_transport=to_sandbox)
    sandbox = SandboxState(time_scale=1000.0)
    try:
        await seed_channel_accounts(c, sandbox, hanging.url.removesuffix("/hooks"))
        _, app_id, secret, _, _ = await seed_demo_merchant(c, None)
        to_sandbox.app = create_sandbox_app(sandbox)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(c)), base_url="http://t.test") as h:
            created = await MerchantClient(h, app_id, secret=secret).create_order()
        assert created.status_code == 201 and created.json()["status"] == "PAYING", created.text
    finally:
        await sandbox.aclose()
        await c.aclose()
    proc = await _spawn(tmp_path, _role_env(settings, compensation_time_scale="1000"), "scheduler")
    try:
        await _wait_for("the compensation query", lambda: hanging.received, proc, tmp_path)
        assert hanging.received[0].path.startswith("/alipay/gateway.do?")
        await _stop_promptly(proc, signal.SIGTERM, tmp_path)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
