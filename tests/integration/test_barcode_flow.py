"""Issue 22, barcode payments: the platform's half — the create that waits, the polling, the reversal after the
confirmation window — with the channel's answers scripted (each channel's own protocol is tested against its
simulator and SDK elsewhere). SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from tests.conftest import truncate_all
from tests.fixtures.pay_stack import PayStack, pay_stack
from tomato.channel.protocol import ChannelNotify, ChannelResult, ErrorClass, ResultStatus, TradeRef

ALIPAY_CODE = "281234567890123456"  # 18 digits starting 28: an Alipay payer's code


@pytest.fixture
async def quick(db_url: str, tmp_path: Path) -> AsyncIterator[PayStack]:
    """A stack whose barcode clock is short: the create waits 0.5 s, asking every 0.05 s."""
    async with pay_stack(db_url, tmp_path, barcode_wait_s=0.5, barcode_poll_s=0.05, barcode_confirm_s=30) as stack:
        yield stack
        if stack.c.db.dialect == "postgresql":
            await truncate_all(stack.c.db)


class Scripted:
    """The channel's answers to barcode pay, query and cancel, in order (the last one repeats)."""

    def __init__(self, inner: Any, create: ChannelResult, queries: list[ChannelResult]) -> None:
        self._inner = inner
        self.create_answer = create
        self.queries = queries
        self.cancels: list[TradeRef] = []
        self.created: list[Any] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def create(self, req: Any) -> ChannelResult:
        self.created.append(req)
        return self.create_answer

    async def query(self, ref: TradeRef) -> ChannelResult:
        return self.queries.pop(0) if len(self.queries) > 1 else self.queries[0]

    async def cancel(self, ref: TradeRef) -> ChannelResult:
        self.cancels.append(ref)
        return ChannelResult(ResultStatus.SUCCESS)


def paid(amount: int = 1234) -> ChannelResult:
    return ChannelResult(
        ResultStatus.SUCCESS, amount=amount, channel_trade_no="2026120622001", paid_at=datetime.now(UTC)
    )


CONFIRMING = ChannelResult(ResultStatus.WAITING, code="10003")


def script(pay: PayStack, monkeypatch: pytest.MonkeyPatch, create: ChannelResult, *queries: ChannelResult) -> Scripted:
    """Every account's adapter answers as scripted (only the code's channel, Alipay, is routed to)."""
    real = pay.c.channels.adapter
    scripted = Scripted(None, create, list(queries) or [CONFIRMING])

    async def adapter(account_id: str) -> Any:
        scripted._inner = await real(account_id)
        return scripted

    monkeypatch.setattr(pay.c.channels, "adapter", adapter)
    return scripted


async def _events(pay: PayStack, order_no: str) -> dict[str, int]:
    async with pay.c.db.engine.connect() as conn:
        rows = await conn.execute(
            text("SELECT event_type, count(*) FROM outbox_events WHERE aggregate_id = :o GROUP BY event_type"),
            {"o": order_no},
        )
        return {str(t): int(n) for t, n in rows}


async def _barcode(pay: PayStack, **extra: Any) -> Any:
    return await pay.client.create_order(pay_method="BARCODE", auth_code=ALIPAY_CODE, **extra)


async def test_a_payer_who_confirms_at_once_is_succeeded_in_the_create_answer(
    quick: PayStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    scripted = script(quick, monkeypatch, paid())
    r = await _barcode(quick)
    assert r.status_code == 201, r.text
    order = r.json()
    assert (order["status"], order["channel"], order["pay_data"]) == ("SUCCEEDED", "alipay", None)
    assert scripted.created[0].auth_code == ALIPAY_CODE and scripted.created[0].pay_method == "BARCODE"
    assert await _events(quick, order["order_no"]) == {"pay.succeeded": 1}


async def test_a_payer_confirming_on_the_phone_is_waited_for(quick: PayStack, monkeypatch: pytest.MonkeyPatch) -> None:
    script(quick, monkeypatch, CONFIRMING, CONFIRMING, CONFIRMING, paid())
    r = await _barcode(quick)
    assert r.status_code == 201 and r.json()["status"] == "SUCCEEDED", r.text


async def test_a_refused_payment_is_failed_at_once(quick: PayStack, monkeypatch: pytest.MonkeyPatch) -> None:
    refused = ChannelResult(ResultStatus.FAIL, ErrorClass.REJECTED, code="ACQ.BUYER_BALANCE_NOT_ENOUGH")
    script(quick, monkeypatch, refused)
    r = await _barcode(quick)
    assert r.status_code == 201 and r.json()["status"] == "FAILED", r.text
    assert await _events(quick, r.json()["order_no"]) == {"pay.failed": 1}


async def test_an_unconfirmed_payment_is_reversed_after_its_window_and_a_late_payment_is_kept(
    quick: PayStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    scripted = script(quick, monkeypatch, ChannelResult.unknown(ErrorClass.TIMEOUT, "read timeout"))
    r = await _barcode(quick)
    assert r.status_code == 201 and r.json()["status"] == "PAYING", r.text  # the outcome is unknown: followed
    order_no = r.json()["order_no"]

    quick.clock.advance(timedelta(seconds=10))
    assert await quick.c.pay.poll_barcodes() == 1
    assert scripted.cancels == [] and (await _status(quick, order_no)) == "PAYING"  # still in its window
    quick.clock.advance(timedelta(seconds=21))
    assert await quick.c.pay.poll_barcodes() == 1
    assert [c.order_no for c in scripted.cancels] == [order_no] and scripted.cancels[0].pay_method == "BARCODE"
    assert await _status(quick, order_no) == "CLOSED"
    assert await quick.c.pay.poll_barcodes() == 0  # closed: nothing more to follow

    late = ChannelNotify(kind="payment", status=ResultStatus.SUCCESS, order_no=order_no, amount=1234,
                         channel_trade_no="2026120622009", paid_at=quick.clock.now())  # fmt: skip
    await quick.c.pay.apply_notify(quick.accounts["alipay"], late)
    r = await quick.client.request("GET", f"/v1/pay/orders/{order_no}")
    assert (r.json()["status"], r.json()["paid_after_close"]) == ("SUCCEEDED", True)


async def test_bad_codes_are_refused_naming_auth_code_and_nothing_is_written(quick: PayStack) -> None:
    for fields in (
        {"pay_method": "BARCODE"},
        {"pay_method": "BARCODE", "auth_code": "28123456789012345x"},
        {"pay_method": "BARCODE", "auth_code": "991234567890123456"},  # no channel's prefix
        {"pay_method": "BARCODE", "auth_code": "1312345678901234"},  # WeChat's prefix, 16 digits (WeChat's are 18)
        {"pay_method": "ALIPAY_QR", "auth_code": ALIPAY_CODE},
    ):
        r = await quick.client.create_order(**fields)
        assert r.status_code == 422, (fields, r.text)
        assert [d["field"] for d in r.json()["error"]["details"]] == ["auth_code"], r.text
    async with quick.c.db.engine.connect() as conn:
        assert (await conn.execute(text("SELECT count(*) FROM pay_orders"))).scalar_one() == 0


async def _status(pay: PayStack, order_no: str) -> str:
    return str((await pay.client.request("GET", f"/v1/pay/orders/{order_no}")).json()["status"])
