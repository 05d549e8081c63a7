"""Issue 20, alerting, on the embedded backends and the real services: a delivery that ends FAILED, a breaker that
stays open, a reconciliation batch with discrepancies and a ledger check violation each log exactly one ERROR line
per occurrence with the ids an operator needs, and move their metric; nothing is logged when nothing is wrong."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import update

from tests.fixtures.booking import consumer, drain, write_event
from tests.fixtures.ledger import fund_available
from tests.fixtures.notice_harness import Harness, notice_config, notice_harness
from tests.fixtures.pay_stack import PayStack
from tests.fixtures.stack import admin
from tomato.account import accounts as acct
from tomato.account.models import Balance
from tomato.channel.breaker_watch import BreakerWatch
from tomato.channel.breakers import BreakerRegistry
from tomato.core.cache import MemoryCache, RedisCache
from tomato.core.clock import FrozenClock
from tomato.core.crypto import SecretBox
from tomato.core.db import Database
from tomato.core.ids import Snowflake
from tomato.gateway.channel_metrics import channel_health
from tomato.runtime.alert_metrics import AlertMetrics
from tomato.runtime.process_metrics import backlog_probe
from tomato.runtime.scheduler import JOBS, JobRunner

METHOD = {"alipay": "ALIPAY_QR", "wechat": "WECHAT_NATIVE"}


@pytest.fixture
def registry() -> Iterator[CollectorRegistry]:
    registry = CollectorRegistry()
    metrics = AlertMetrics(registry).listen()
    yield registry
    metrics.close()


def alert_lines(caplog: pytest.LogCaptureFixture, name: str) -> list[dict[str, Any]]:
    return [{**r.__dict__, "levelname": r.levelname} for r in caplog.records if getattr(r, "alert", None) == name]


async def until(predicate: Any, timeout_s: float = 30.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not predicate():
            await asyncio.sleep(0.02)  # the log records of another task: nothing to subscribe to


# --- webhooks -----------------------------------------------------------------------------------------------------


async def test_a_delivery_that_ends_failed_is_one_error_line_and_one_count(
    backend: dict[str, Any], tmp_path: Path, caplog: pytest.LogCaptureFixture, registry: CollectorRegistry
) -> None:
    async with notice_harness(tmp_path=tmp_path, respond=lambda _r: 503, config=notice_config(80000.0), **backend) as h:
        (event_id,) = await h.emit()
        (delivery,) = await h.wait_status("FAILED", 1, timeout_s=30)
        await until(lambda: alert_lines(caplog, "webhook_delivery_failed"))
    (line,) = alert_lines(caplog, "webhook_delivery_failed")
    assert line["levelname"] == "ERROR"
    assert (line["delivery_id"], line["event_id"], line["app_id"]) == (delivery.id, event_id, h.app_id)
    assert (line["url_host"], line["attempts"], line["last_status"]) == ("127.0.0.1", 16, 503)
    assert line["last_error"] == "HTTPStatus"
    assert registry.get_sample_value("tomato_webhook_deliveries_failed_total") == 1
    assert registry.get_sample_value("tomato_alerts_total", {"alert": "webhook_delivery_failed"}) == 1


async def test_deliveries_that_succeed_or_are_retried_log_no_alert(
    hooks: Harness, caplog: pytest.LogCaptureFixture, registry: CollectorRegistry
) -> None:
    await hooks.emit(2)
    await hooks.wait_status("SUCCEEDED", 2)
    assert [r for r in caplog.records if r.levelname == "ERROR"] == []
    assert registry.get_sample_value("tomato_webhook_deliveries_failed_total") == 0


# --- breakers -----------------------------------------------------------------------------------------------------


async def trip(breakers: BreakerRegistry, account_id: str, times: int, *, ok: bool = False) -> None:
    async def answer() -> bool:
        return ok

    for _ in range(times):
        await breakers.call(account_id, answer, lambda well: not well)


async def test_a_breaker_stuck_open_alerts_once_per_open_period_on_the_shared_store(
    cache: MemoryCache | RedisCache, caplog: pytest.LogCaptureFixture, registry: CollectorRegistry
) -> None:
    """memory, and Redis: the Lua script moves `opened_at` on each failed probe; the watch keeps the period."""
    clock = FrozenClock(datetime(2026, 12, 6, 10, 0, tzinfo=UTC))
    account = f"CA{time.monotonic_ns()}"
    breakers = BreakerRegistry(cache, fail_max=3, reset_timeout_s=30.0, clock=clock, state_ttl_s=0.0)
    watch = BreakerWatch(breakers, alert_after_s=120.0)

    async def check_after(seconds: float) -> int:
        clock.advance(timedelta(seconds=seconds))
        return await watch.check([account], clock.timestamp())

    await trip(breakers, account, 3)
    assert await check_after(60) == 0
    await check_after(0)
    await trip(breakers, account, 1)  # the probe at +60 s fails: still one open period
    assert await check_after(61) == 1
    for _ in range(4):
        assert await check_after(30) == 0
    (line,) = alert_lines(caplog, "breaker_stuck_open")
    assert line["levelname"] == "ERROR" and line["channel_account_id"] == account
    assert line["open_since"] == "2026-12-06T10:00:00+00:00" and line["open_seconds"] == 121
    await trip(breakers, account, 1, ok=True)  # a successful probe closes it: the period ends
    assert await check_after(1) == 0 and watch.open_seconds(clock.timestamp()) == {account: 0}
    assert registry.get_sample_value("tomato_alerts_total", {"alert": "breaker_stuck_open"}) == 1


async def test_the_channel_service_watches_every_active_account_and_shows_seconds_open(
    pay: PayStack, caplog: pytest.LogCaptureFixture, registry: CollectorRegistry
) -> None:
    channels = pay.c.channels
    assert await channels.watch_breakers() == 0  # all closed
    account = pay.accounts["alipay"]
    await trip(channels.breakers, account, pay.c.settings.breaker_fail_max)
    assert await channels.watch_breakers() == 0  # open, but only just
    assert alert_lines(caplog, "breaker_stuck_open") == []
    watched = list(channels.breaker_watch.watched())
    assert account in watched and set(pay.accounts.values()) <= set(watched)
    later = time.time() + pay.c.settings.alert_breaker_open_s + 1
    assert await channels.breaker_watch.check(watched, later) == 1
    assert await channels.breaker_watch.check(watched, later + 60) == 0
    (line,) = alert_lines(caplog, "breaker_stuck_open")
    assert line["channel_account_id"] == account
    families = {f.name: f for f in channel_health(channels)}
    open_s = {s.labels["account"]: s.value for s in families["tomato_channel_breaker_open_seconds"].samples}
    state = {s.labels["account"]: s.value for s in families["tomato_channel_breaker_state"].samples}
    assert set(open_s) == set(state) >= set(pay.accounts.values())  # every watched account, called or not
    assert state[account] == 2 and open_s[account] >= 0  # seconds of wall time: asserted with a fake clock in unit/
    assert all(open_s[a] == 0 and state[a] == 0 for a in pay.accounts.values() if a != account)
    # a process where the watch does not run (serve, worker) shows no such series: nothing refreshes its view
    channels.breaker_watch = BreakerWatch(channels.breakers, 300.0)
    families = {f.name: f for f in channel_health(channels)}
    assert families["tomato_channel_breaker_open_seconds"].samples == []


# --- reconciliation -----------------------------------------------------------------------------------------------


async def paid_order(pay: PayStack, channel: str, amount: int) -> str:
    r = await pay.client.create_order(amount=amount, pay_method=METHOD[channel])
    assert r.status_code == 201, r.text
    order_no = str(r.json()["order_no"])
    assert (await pay.scan(order_no=order_no, result="paid")).status_code == 200
    async with asyncio.timeout(10):
        while (await pay.client.request("GET", f"/v1/pay/orders/{order_no}")).json()["status"] != "SUCCEEDED":
            await asyncio.sleep(0.02)  # the simulator's notify arrives on its own schedule
    return order_no


async def open_discrepancies(pay: PayStack) -> float:
    families = {f.name: f for f in await backlog_probe(pay.c)()}
    return float(families["tomato_reconciliation_open_discrepancies"].samples[0].value)


async def test_a_batch_with_discrepancies_is_one_error_line_a_count_and_open_discrepancies(
    pay: PayStack, caplog: pytest.LogCaptureFixture, registry: CollectorRegistry
) -> None:
    pay.c.reconciliation.deps.suspense_minutes = 0  # orders made "now" never wait for the next day
    day = pay.clock.now().astimezone(ZoneInfo("Asia/Shanghai")).date()
    clean = await pay.c.reconciliation.run(pay.accounts["alipay"], day)
    assert clean.status == "MATCHED"
    assert alert_lines(caplog, "reconciliation_discrepancies") == []
    assert registry.get_sample_value("tomato_reconciliation_batches_with_discrepancies_total") == 0

    account = pay.accounts["wechat"]
    orders = [await paid_order(pay, "wechat", 1_000 + i) for i in range(3)]
    faults = [{"type": "MISSING_CHANNEL", "order_no": orders[0]}, {"type": "AMOUNT_MISMATCH", "order_no": orders[1]}]
    body = {"channel": "wechat", "date": day.isoformat(), "faults": faults}
    assert (await pay.sandbox_http.post("/sandbox/statement-faults", json=body)).status_code == 200
    batch = await pay.c.reconciliation.run(account, day)
    assert batch.status == "DISCREPANCIES"
    (line,) = alert_lines(caplog, "reconciliation_discrepancies")
    assert line["levelname"] == "ERROR"
    assert (line["batch_id"], line["channel_account_id"], line["business_date"]) == (batch.id, account, day.isoformat())
    assert line["discrepancies"] == 2 and line["by_type"] == "MISSING_CHANNEL=1 AMOUNT_MISMATCH=1"
    assert registry.get_sample_value("tomato_reconciliation_batches_with_discrepancies_total") == 1
    assert await open_discrepancies(pay) == 2
    # finance resolves them: the gauge goes down (it is read from the database)
    r = await pay.http.get(f"/admin/reconciliation/discrepancies?batch_id={batch.id}", headers=admin("finance"))
    for d in r.json()["data"]:
        path = f"/admin/reconciliation/discrepancies/{d['id']}/resolve"
        resolved = await pay.http.post(path, json={"action": "WRITE_OFF", "note": "test"}, headers=admin("finance"))
        assert resolved.status_code == 200, resolved.text
    assert await open_discrepancies(pay) == 0


# --- the ledger check ---------------------------------------------------------------------------------------------


def job(name: str) -> Any:
    return next(j for j in JOBS if j.name == name)


async def test_the_scheduled_ledger_check_logs_each_violation_and_sets_the_gauge(
    pay: PayStack, caplog: pytest.LogCaptureFixture, registry: CollectorRegistry
) -> None:
    runner = JobRunner(pay.c, jobs=[job("account.ledger_check"), job("channel.breaker_watch")])
    await fund_available(pay.c.db, pay.c.ids, "M1", 5_000)
    assert await runner.run_guarded(job("account.ledger_check")) == 0
    assert alert_lines(caplog, "ledger_check_violation") == []
    assert registry.get_sample_value("tomato_ledger_check_violations") == 0
    async with pay.c.db.uow() as uow:
        await uow.session.execute(
            update(Balance).where(Balance.account == acct.merchant_available("M1")).values(balance=Balance.balance + 1)
        )
        await uow.commit()
    found = await runner.run_guarded(job("account.ledger_check"))
    assert found == 2  # the balance off its lines, and the trial balance
    lines = alert_lines(caplog, "ledger_check_violation")
    assert len(lines) == 2 and {line["levelname"] for line in lines} == {"ERROR"}
    assert [line.get("account") for line in lines] == ["merchant_available:M1", None]
    assert lines[0]["bucket"] == "0"
    assert registry.get_sample_value("tomato_ledger_check_violations") == 2
    assert await runner.run_guarded(job("channel.breaker_watch")) == 0
    assert pay.c.settings.ledger_check_every_s == 3600 and runner._every(job("account.ledger_check")) == 3600


def run_cli(db_url: str, tmp_path: Path) -> tuple[int, str, str]:
    import subprocess

    env = {**os.environ, "TOMATO_DATABASE_URL": db_url, "TOMATO_DATA_DIR": str(tmp_path / "data"),
           "TOMATO_SECRET_KEYS": SecretBox.generate_ring("t1"), "TOMATO_LOG_FORMAT": "json"}  # fmt: skip
    done = subprocess.run([sys.executable, "-m", "tomato.cli", "ledger", "check"], env=env, capture_output=True,
                          text=True, timeout=120)  # fmt: skip
    return done.returncode, done.stdout, done.stderr


def json_alerts(stderr: str) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    return [line for line in lines if line.get("alert") == "ledger_check_violation"]


@pytest.mark.slow
async def test_the_command_logs_an_error_line_per_violation_and_exits_1(
    db: Database, db_url: str, tmp_path: Path
) -> None:
    ids = Snowflake(14)
    await fund_available(db, ids, "M1", 5_000)
    anomaly = {"anomaly_id": "AN1", "kind": "second_payment", "amount": 300, "channel_account_id": "CA1",
               "business_date": "2026-12-06"}  # fmt: skip
    await write_event(db, ids, "pay.anomaly", anomaly, "AN1")
    await drain(consumer(db, ids))
    code, out, err = await asyncio.to_thread(run_cli, db_url, tmp_path)
    assert (code, out.strip().splitlines()[-1], json_alerts(err)) == (0, "ok", []), err
    async with db.uow() as uow:
        await uow.session.execute(update(Balance).where(Balance.account == acct.SUSPENSE).values(balance=0))
        await uow.commit()
    code, out, err = await asyncio.to_thread(run_cli, db_url, tmp_path)
    assert code == 1, out
    alerts = json_alerts(err)
    # the suspense balance's buckets (how many depends on the ids), then the trial balance
    assert len(alerts) == out.count("violation: ") >= 2
    assert {a["level"] for a in alerts} == {"ERROR"}
    assert [a.get("account") for a in alerts] == ["suspense"] * (len(alerts) - 1) + [None]
    assert all(f"bucket {a['bucket']} " in a["message"] for a in alerts[:-1])
    assert "trial balance" in alerts[-1]["message"]
