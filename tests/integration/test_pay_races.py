"""Issue 15: a channel's payment notify racing the merchant's close, on PostgreSQL (real concurrent commits).

The channel acknowledges the close but leaves the trade payable (the simulator's `ignore_close`), the payer pays,
and the notify and our local close are released together by a barrier. Whichever commits first, the payment must
be recorded: the order ends `SUCCEEDED` with exactly one `pay.succeeded`, and the close answers as the API says.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from tests.conftest import truncate_all
from tests.fixtures.pay_stack import PayStack, pay_stack
from tomato.channel.protocol import ChannelNotify, ResultStatus, TradeRef
from tomato.channel.sandbox import alipay_simulator
from tomato.pay.service import Outcome

ROUNDS = 200
PARALLEL = 10
STAGGER = 40


@pytest.fixture
async def pg_pay(pg_url: str, tmp_path: Path) -> AsyncIterator[PayStack]:
    # 200 rounds of create + close from one app outrun its default rate limit (100/s) on a fast machine: a 429 close
    # never reached the channel, so its round's notify waited at the barrier for good (a CI hang)
    async with pay_stack(pg_url, tmp_path, rate_limit_rps=100_000, rate_limit_burst=100_000) as stack:
        yield stack
        await truncate_all(stack.c.db)


class CloseThenWait:
    """The channel side of the race: after the channel acknowledged the close, the test's `after_close` hook runs
    (the payer pays, then both sides meet at a barrier) before our close goes on to close the order locally."""

    def __init__(self, inner: Any, after_close: dict[str, Any]) -> None:
        self._inner = inner
        self._after_close = after_close

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def close(self, ref: TradeRef) -> Any:
        result = await self._inner.close(ref)
        hook = self._after_close.get(ref.order_no)
        if hook is not None:
            await hook()
        return result


def notify_of(sim: Any, order_no: str) -> ChannelNotify:
    """The verified notify the channel sends for the order's paid trade (what the callback route hands on)."""
    trade = sim.book.find_by_order_no(order_no)
    return ChannelNotify(
        kind="payment", status=ResultStatus.SUCCESS, order_no=order_no, amount=trade.amount,
        channel_trade_no=trade.channel_trade_no, paid_at=trade.paid_at,
    )  # fmt: skip


async def _state(pay: PayStack, order_no: str) -> tuple[dict[str, Any], dict[str, int]]:
    """The order's status and flag, and how many events of each type and paid-after-close anomalies it has."""
    async with pay.c.db.engine.connect() as conn:
        order = (
            await conn.execute(
                text("SELECT status, paid_after_close FROM pay_orders WHERE order_no = :o"), {"o": order_no}
            )
        ).one()
        rows = await conn.execute(
            text("SELECT event_type, count(*) FROM outbox_events WHERE aggregate_id = :o GROUP BY event_type"),
            {"o": order_no},
        )
        counts = {str(t): int(n) for t, n in rows}
        anomalies = await conn.execute(
            text("SELECT count(*) FROM pay_anomalies WHERE order_no = :o AND kind = 'paid_after_close'"),
            {"o": order_no},
        )
        counts["anomaly:paid_after_close"] = int(anomalies.scalar_one())
    return {"status": order.status, "paid_after_close": order.paid_after_close}, counts


async def test_notify_racing_a_close_is_never_lost(pg_pay: PayStack, monkeypatch: pytest.MonkeyPatch) -> None:
    pay = pg_pay
    await pay.faults(channel="alipay", ignore_close=True, drop_notify=True)
    sim = alipay_simulator(pay.sandbox)
    after_close: dict[str, Any] = {}
    real_adapter = pay.c.channels.adapter

    async def adapter(account_id: str) -> Any:
        return CloseThenWait(await real_adapter(account_id), after_close)

    monkeypatch.setattr(pay.c.channels, "adapter", adapter)

    async def one_round(i: int) -> bool:
        """One order: close and payment race; True when our close committed first."""
        order = (await pay.client.create_order()).json()
        order_no = order["order_no"]
        barrier = asyncio.Barrier(2)

        async def pay_then_meet() -> None:
            # the close was acknowledged, yet the QR is still payable: the payer pays now
            assert (await pay.scan(content=order["pay_data"]["value"], result="paid")).status_code == 200
            await barrier.wait()
            # round i lets the notify run i % STAGGER event-loop steps ahead, so the rounds sweep every
            # interleaving of the two transactions (not a sleep: nothing waits for the other side)
            for _ in range(i % STAGGER):
                await asyncio.sleep(0)

        after_close[order_no] = pay_then_meet

        async def notify() -> Outcome:
            await barrier.wait()
            return await pay.c.pay.apply_notify(pay.accounts["alipay"], notify_of(sim, order_no))

        async def close() -> Any:
            try:
                return await pay.client.request("POST", f"/v1/pay/orders/{order_no}/close", {})
            finally:  # a close refused before it reached the channel never meets the notify: free it, do not hang
                await barrier.abort()

        closed, outcome = await asyncio.gather(close(), notify(), return_exceptions=True)
        assert not isinstance(closed, BaseException) and closed.status_code in (200, 409), (i, closed)
        assert outcome is Outcome.APPLIED, (i, outcome)  # the channel gets its ack: the payment must be recorded
        got, counts = await _state(pay, order_no)
        assert got["status"] == "SUCCEEDED", (i, got, counts)
        assert counts.get("pay.succeeded") == 1, (i, counts)
        if closed.status_code == 200:  # our close committed first: the payment came after it
            assert closed.json()["status"] == "CLOSED"
            assert got["paid_after_close"]
            assert counts.get("pay.closed") == 1 and counts["anomaly:paid_after_close"] == 1, (i, counts)
            return True
        # the payment committed first: the close answers as for any SUCCEEDED order and closed nothing
        assert closed.status_code == 409 and closed.json()["error"]["code"] == "ORDER_STATE_CONFLICT"
        assert not got["paid_after_close"]
        assert counts.get("pay.closed", 0) == 0 and counts["anomaly:paid_after_close"] == 0, (i, counts)
        return False

    # independent orders race side by side, so the rounds' database waits overlap (the suite stays quick)
    won: list[bool] = []
    for start in range(0, ROUNDS, PARALLEL):
        won += await asyncio.gather(*(one_round(i) for i in range(start, min(start + PARALLEL, ROUNDS))))
    assert len(won) == ROUNDS
    assert any(won) and not all(won), "the rounds should see both commit orders"


async def test_concurrent_refused_reports_make_one_anomaly(pg_pay: PayStack) -> None:
    """The same refused report from many notifies and queries at once: one anomaly row, one `pay.anomaly`."""
    pay = pg_pay
    await pay.faults(channel="alipay", drop_notify=True)
    order = (await pay.client.create_order(amount=1234)).json()
    wrong = ChannelNotify(
        kind="payment", status=ResultStatus.SUCCESS, order_no=order["order_no"], amount=1, channel_trade_no="T-1"
    )
    outcomes = await asyncio.gather(*(pay.c.pay.apply_notify(pay.accounts["alipay"], wrong) for _ in range(30)))
    assert set(outcomes) == {Outcome.REJECTED}
    async with pay.c.db.engine.connect() as conn:
        kinds = (await conn.execute(text("SELECT kind FROM pay_anomalies"))).scalars().all()
        events = (await conn.execute(text("SELECT event_type FROM outbox_events"))).scalars().all()
    assert kinds == ["amount_mismatch"]
    assert events == ["pay.anomaly"]
