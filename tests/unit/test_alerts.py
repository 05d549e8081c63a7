"""Issue 20, alerting: the core hook (an ERROR line with the ids, heard by listeners), its Prometheus listener, the
breaker watch (once per open period, not every check) and the ledger check's alert lines. No I/O."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import CollectorRegistry

from tomato.account.check import CheckReport, alert_violations
from tomato.channel.breaker_watch import BreakerWatch
from tomato.channel.breakers import BreakerRegistry
from tomato.core import alerts
from tomato.core.cache import MemoryCache
from tomato.core.clock import FrozenClock
from tomato.core.logs import JsonFormatter
from tomato.runtime.alert_metrics import AlertMetrics

T0 = datetime(2026, 12, 6, 10, 0, tzinfo=UTC)


@pytest.fixture
def registry() -> Iterator[CollectorRegistry]:
    registry = CollectorRegistry()
    metrics = AlertMetrics(registry).listen()
    yield registry
    metrics.close()


def alert_records(caplog: pytest.LogCaptureFixture, name: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if getattr(r, "alert", None) == name]


def test_an_alert_is_one_error_line_with_its_ids_in_text_and_json(
    caplog: pytest.LogCaptureFixture, registry: CollectorRegistry
) -> None:
    log = logging.getLogger("tomato.test")
    alerts.alert(log, alerts.WEBHOOK_DELIVERY_FAILED, "delivery D1 FAILED", delivery_id="D1", attempts=16,
                 last_status=None)  # fmt: skip
    (record,) = caplog.records
    assert record.levelno == logging.ERROR and record.name == "tomato.test"
    assert record.getMessage() == (
        "delivery D1 FAILED [alert=webhook_delivery_failed delivery_id=D1 attempts=16 last_status=None]"
    )
    line = json.loads(JsonFormatter().format(record))
    assert line["level"] == "ERROR" and line["alert"] == "webhook_delivery_failed"
    assert (line["delivery_id"], line["attempts"], line["last_status"]) == ("D1", 16, None)
    assert registry.get_sample_value("tomato_webhook_deliveries_failed_total") == 1
    assert registry.get_sample_value("tomato_alerts_total", {"alert": "webhook_delivery_failed"}) == 1
    assert registry.get_sample_value("tomato_alerts_total", {"alert": "breaker_stuck_open"}) == 0


def test_each_alert_feeds_its_own_series_and_a_closed_listener_hears_nothing(registry: CollectorRegistry) -> None:
    log = logging.getLogger("tomato.test")
    alerts.alert(log, alerts.RECONCILIATION_DISCREPANCIES, "batch B1", batch_id="B1")
    alerts.measure(alerts.LEDGER_CHECK_VIOLATIONS, 3)
    assert registry.get_sample_value("tomato_reconciliation_batches_with_discrepancies_total") == 1
    assert registry.get_sample_value("tomato_webhook_deliveries_failed_total") == 0
    assert registry.get_sample_value("tomato_ledger_check_violations") == 3
    alerts.measure(alerts.LEDGER_CHECK_VIOLATIONS, 0)
    assert registry.get_sample_value("tomato_ledger_check_violations") == 0
    other = CollectorRegistry()
    AlertMetrics(other).listen().close()
    alerts.alert(log, alerts.RECONCILIATION_DISCREPANCIES, "batch B2", batch_id="B2")
    assert other.get_sample_value("tomato_reconciliation_batches_with_discrepancies_total") == 0
    assert registry.get_sample_value("tomato_reconciliation_batches_with_discrepancies_total") == 2


def test_a_failing_listener_neither_breaks_the_caller_nor_the_other_listeners(caplog: pytest.LogCaptureFixture) -> None:
    heard: list[str] = []

    def broken(_: alerts.Signal) -> None:
        raise RuntimeError("boom")

    stops = [alerts.listen(broken), alerts.listen(lambda s: heard.append(s.name))]
    try:
        alerts.alert(logging.getLogger("tomato.test"), alerts.BREAKER_STUCK_OPEN, "open", channel_account_id="CA1")
    finally:
        for stop in stops:
            stop()
    assert heard == ["breaker_stuck_open"]
    assert [r.levelname for r in caplog.records] == ["ERROR", "WARNING"]


# --- the breaker watch ------------------------------------------------------------------------------------------


async def fail(breakers: BreakerRegistry, account_id: str, times: int) -> None:
    async def unwell() -> bool:
        return False

    for _ in range(times):
        await breakers.call(account_id, unwell, lambda ok: not ok)


async def succeed(breakers: BreakerRegistry, account_id: str) -> None:
    async def well() -> bool:
        return True

    await breakers.call(account_id, well, lambda ok: not ok)


async def test_a_breaker_open_past_the_threshold_alerts_once_per_open_period(
    caplog: pytest.LogCaptureFixture, registry: CollectorRegistry
) -> None:
    clock = FrozenClock(T0)
    breakers = BreakerRegistry(MemoryCache(), fail_max=2, reset_timeout_s=30.0, clock=clock, state_ttl_s=0.0)
    watch = BreakerWatch(breakers, alert_after_s=300.0)
    accounts = ["CA1", "CA2"]

    async def check_at(seconds: float) -> int:
        clock.advance(T0 + timedelta(seconds=seconds) - clock.now())
        return await watch.check(accounts, clock.timestamp())

    assert await check_at(0) == 0
    await fail(breakers, "CA1", 2)  # opens at T0
    assert await check_at(299) == 0 and watch.open_seconds(clock.timestamp()) == {"CA1": 299, "CA2": 0}
    assert alert_records(caplog, "breaker_stuck_open") == []
    assert await check_at(301) == 1
    (record,) = alert_records(caplog, "breaker_stuck_open")
    assert record.levelno == logging.ERROR
    assert record.__dict__["channel_account_id"] == "CA1" and record.__dict__["open_seconds"] == 301
    assert record.__dict__["open_since"] == "2026-12-06T10:00:00+00:00"
    # the probe after the reset timeout fails: the stored opened_at moves on, the open period does not
    await check_at(330)
    await fail(breakers, "CA1", 1)
    for moment in (331, 400, 3600):
        assert await check_at(moment) == 0
    assert len(alert_records(caplog, "breaker_stuck_open")) == 1
    assert watch.open_seconds(clock.timestamp()) == {"CA1": 3600, "CA2": 0}
    # a watch that stopped checking (another scheduler runs the job now) reports nothing rather than a stale state
    assert watch.open_seconds(clock.timestamp() + 61) == {}
    # a successful probe closes it; it opens again: a new period, alerted again once past the threshold
    await check_at(3631)
    await succeed(breakers, "CA1")
    assert await check_at(3632) == 0 and watch.open_seconds(clock.timestamp())["CA1"] == 0
    await fail(breakers, "CA1", 2)
    assert await check_at(3900) == 0
    assert await check_at(3933) == 1
    assert len(alert_records(caplog, "breaker_stuck_open")) == 2
    assert registry.get_sample_value("tomato_alerts_total", {"alert": "breaker_stuck_open"}) == 2


async def test_a_breaker_that_closes_within_the_threshold_never_alerts(caplog: pytest.LogCaptureFixture) -> None:
    clock = FrozenClock(T0)
    breakers = BreakerRegistry(MemoryCache(), fail_max=1, reset_timeout_s=30.0, clock=clock, state_ttl_s=0.0)
    watch = BreakerWatch(breakers, alert_after_s=60.0)
    for _ in range(5):  # open, probe at +30 s succeeds, open again: never 60 s in one period
        await fail(breakers, "CA1", 1)
        assert await watch.check(["CA1"], clock.timestamp()) == 0
        clock.advance(timedelta(seconds=31))
        await succeed(breakers, "CA1")
        assert await watch.check(["CA1"], clock.timestamp()) == 0
    assert caplog.records == [] or all(r.levelno < logging.ERROR for r in caplog.records)


# --- the ledger check's lines -----------------------------------------------------------------------------------


def test_each_ledger_violation_is_an_error_line_with_its_ids(
    caplog: pytest.LogCaptureFixture, registry: CollectorRegistry
) -> None:
    report = CheckReport()
    report.violation("journal J1 does not balance: its lines sum to 5", journal_id="J1")
    report.violation("balance of merchant_pending:M1 bucket 0 is 4, but its lines sum to 5",
                     account="merchant_pending:M1", bucket="0")  # fmt: skip
    report.warnings.append("merchant_available:M2 is negative: -1")
    alert_violations(report)
    records = alert_records(caplog, "ledger_check_violation")
    assert [r.levelno for r in records] == [logging.ERROR, logging.ERROR]
    assert records[0].__dict__["journal_id"] == "J1"
    assert records[1].__dict__["account"] == "merchant_pending:M1"
    assert records[0].getMessage().startswith("ledger check: journal J1 does not balance")
    assert registry.get_sample_value("tomato_ledger_check_violations") == 2
    assert registry.get_sample_value("tomato_alerts_total", {"alert": "ledger_check_violation"}) == 2


def test_a_clean_ledger_check_logs_nothing_and_sets_the_gauge_to_zero(
    caplog: pytest.LogCaptureFixture, registry: CollectorRegistry
) -> None:
    alerts.measure(alerts.LEDGER_CHECK_VIOLATIONS, 4)  # the previous run's
    alert_violations(CheckReport())
    assert caplog.records == []
    assert registry.get_sample_value("tomato_ledger_check_violations") == 0


def test_the_text_format_carries_the_ids() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    log = logging.getLogger("tomato.test.text")
    log.addHandler(handler)
    try:
        alerts.alert(log, alerts.BREAKER_STUCK_OPEN, "breaker of CA1 open for 301s", channel_account_id="CA1")
    finally:
        log.removeHandler(handler)
    assert stream.getvalue() == "breaker of CA1 open for 301s [alert=breaker_stuck_open channel_account_id=CA1]\n"
