"""The ledger against a model (issue 17, acceptance 2): Hypothesis drives pay, partial and full refunds, anomalies,
settlement and payouts that the bank pays or rejects, on PostgreSQL, through the platform's own paths — orders paid at
the channel simulator, refunds through the merchant API, the booking consumer reading the outbox, the settlement
service, payouts through the merchant API and the bank simulator. After every step the merchant's balances must be
what the model says, every order's refund fee shares must add up to at most its fee (exactly its fee once fully
refunded), the trial balance must be zero and `tomato ledger check` must pass.

The model: a payment of A at 6,000 ppm adds A − F to pending; a refund takes what leaves the merchant (R minus its fee
share) from pending while pending covers it and the rest from available, even below zero; a settlement run for a date
everything is due by moves all of pending to available, one for today (nothing due under T+1) moves nothing; a payout
is refused unless available covers it, then leaves available for good (paid) or comes back (rejected).
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any, TypeVar

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, initialize, invariant, rule
from sqlalchemy import text

from tests.conftest import truncate_all
from tests.fixtures.booking import consumer, drain, write_event
from tests.fixtures.pay_stack import PayStack, pay_stack
from tomato.account import accounts as acct
from tomato.account.check import check_ledger
from tomato.account.ledger import balances
from tomato.core.clock import business_date
from tomato.merchant.fees import payment_fee, refund_fee_total

T = TypeVar("T")
FEE_PPM = 6_000  # the demo merchant's plan (tomato.runtime.seed), proportional refund fee
BANK_ACCOUNT = {"name": "Test Payee", "number": "6216261000000000018", "bank": "Bank of Tests"}
_numbers = itertools.count(1)


@dataclass
class Order:
    order_no: str
    amount: int
    fee: int
    refunded: int = 0
    fee_returned: int = 0
    refunds: list[int] = field(default_factory=list)


async def _until(check: Callable[[], Awaitable[bool]], what: str, timeout: float = 20.0) -> None:
    try:
        async with asyncio.timeout(timeout):
            while not await check():
                await asyncio.sleep(0.01)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


class LedgerMachine(RuleBasedStateMachine):
    """One pay stack per example (a fresh demo merchant on the shared test database)."""

    pg_url: str
    tmp_path: Path

    orders = Bundle("orders")

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self._stack_cm = pay_stack(self.pg_url, self.tmp_path / f"ex{next(_numbers)}")
        self.pay: PayStack = self.run(self._stack_cm.__aenter__())
        self.booker = consumer(self.pay.c.db, self.pay.c.ids)
        self.mch_no = self.run(self.pay.c.merchants.app_auth(self.pay.client.app_id)).mch_no
        self.today = business_date(self.pay.clock.now(), self.pay.c.settings.business_timezone)
        self.pending = self.available = 0
        self.paid: list[Order] = []

    def run(self, coro: Awaitable[T]) -> T:
        return self.loop.run_until_complete(coro)

    def teardown(self) -> None:
        try:
            self.run(truncate_all(self.pay.c.db))  # the next example starts from an empty ledger and no orders
            self.run(self._stack_cm.__aexit__(None, None, None))
        finally:
            self.loop.close()

    async def _book(self) -> None:
        await drain(self.booker)

    async def _status(self, path: str) -> str:
        r = await self.pay.client.request("GET", path)
        assert r.status_code == 200, r.text
        return str(r.json()["status"])

    # --- rules ------------------------------------------------------------------------------------------------

    @initialize()
    def channels_answer(self) -> None:
        self.run(self.pay.faults(channel="bank", reject_payouts=False))

    @rule(target=orders, amount=st.integers(min_value=1, max_value=10_000_000))
    def pay_an_order(self, amount: int) -> Order:
        async def go() -> Order:
            r = await self.pay.client.create_order(pay_method="ALIPAY_QR", amount=amount)
            assert r.status_code == 201, r.text
            order_no = r.json()["order_no"]
            await self.pay.scan(order_no=order_no, result="paid")
            path = f"/v1/pay/orders/{order_no}"
            await _until(lambda: self._is(path, "SUCCEEDED"), f"{order_no} SUCCEEDED")
            await self._book()
            return Order(order_no, amount, payment_fee(amount, FEE_PPM))

        order = self.run(go())
        self.paid.append(order)
        self.pending += order.amount - order.fee
        return order

    async def _is(self, path: str, status: str) -> bool:
        return await self._status(path) == status

    @rule(order=orders, share=st.integers(min_value=1, max_value=100), full=st.booleans())
    def refund(self, order: Order, share: int, full: bool) -> None:
        left = order.amount - order.refunded
        if left == 0 or len(order.refunds) >= 50:
            return
        amount = left if full else max(1, left * share // 100)

        async def go() -> None:
            body = {"order_no": order.order_no, "out_refund_no": f"rf-{next(_numbers)}", "amount": amount}
            r = await self.pay.client.request("POST", "/v1/refunds", body)
            assert r.status_code == 201, r.text
            path = f"/v1/refunds/{r.json()['refund_no']}"
            await _until(lambda: self._is(path, "SUCCEEDED"), f"{path} SUCCEEDED")
            await self._book()

        self.run(go())
        before = order.fee_returned
        order.refunded += amount
        order.refunds.append(amount)
        order.fee_returned = refund_fee_total(order.amount, order.fee, order.refunded)
        owed = amount - (order.fee_returned - before)
        from_pending = min(self.pending, owed)
        self.pending -= from_pending
        self.available -= owed - from_pending

    @rule(amount=st.integers(min_value=1, max_value=1_000_000), kind=st.sampled_from(["second_payment", "note"]))
    def anomaly(self, amount: int, kind: str) -> None:
        """Money a channel reports for no order goes to suspense; kinds that moved no money book nothing."""
        facts = {
            "anomaly_id": f"AN{next(_numbers)}", "kind": kind, "order_no": None, "refund_no": None,
            "app_id": self.pay.client.app_id, "mch_no": self.mch_no, "channel": "alipay",
            "channel_account_id": self.pay.accounts["alipay"], "channel_trade_no": None, "amount": amount,
            "source": "notify", "note": "model", "business_date": self.today,
        }  # fmt: skip

        async def go() -> None:
            await write_event(self.pay.c.db, self.pay.c.ids, "pay.anomaly", facts, aggregate_id=facts["anomaly_id"])
            await self._book()

        self.run(go())

    @rule(due=st.booleans())
    def settle(self, due: bool) -> None:
        """T+1: a run for today settles nothing; a run ten days ahead settles everything pending."""
        day = self.pay.clock.now().date() + timedelta(days=10) if due else None

        async def go() -> None:
            await self.pay.c.settlement.run(day or date.fromisoformat(self.today))

        self.run(go())
        if due and self.pending > 0:
            self.available += self.pending
            self.pending = 0

    @rule(percent=st.integers(min_value=1, max_value=150), rejected=st.booleans())
    def payout(self, percent: int, rejected: bool) -> None:
        amount = max(1, max(self.available, 1) * percent // 100)

        async def go() -> int:
            await self.pay.faults(channel="bank", reject_payouts=rejected)
            body = {"out_payout_no": f"po-{next(_numbers)}", "amount": amount, "bank_account": BANK_ACCOUNT}
            r = await self.pay.client.request("POST", "/v1/payouts", body)
            if r.status_code == 409:
                assert r.json()["error"]["code"] == "INSUFFICIENT_BALANCE", r.text
                return 409
            assert r.status_code == 201, r.text
            path = f"/v1/payouts/{r.json()['payout_no']}"
            final = "FAILED" if rejected else "SUCCEEDED"
            await _until(lambda: self._is(path, final), f"{path} {final}")
            return 201

        status = self.run(go())
        if amount > self.available:
            assert status == 409, f"a payout of {amount} over available {self.available} was accepted"
            return
        assert status == 201, f"a payout of {amount} within available {self.available} was refused"
        if not rejected:
            self.available -= amount

    # --- invariants -------------------------------------------------------------------------------------------

    @invariant()
    def balances_are_the_models(self) -> None:
        async def read() -> dict[str, int]:
            await self._book()
            async with self.pay.c.db.uow() as uow:
                return await balances(
                    uow.session,
                    [
                        acct.merchant_pending(self.mch_no),
                        acct.merchant_available(self.mch_no),
                        acct.payout_in_transit(self.mch_no),
                    ],
                )

        got = self.run(read())
        assert got == {
            acct.merchant_pending(self.mch_no): self.pending,
            acct.merchant_available(self.mch_no): self.available,
            acct.payout_in_transit(self.mch_no): 0,
        }
        r = self.run(self.pay.client.request("GET", "/v1/balance"))
        assert r.json() == {"currency": "CNY", "pending": self.pending, "available": self.available,
                            "mode": "direct", "service_provider": {"collected": 0, "fee_receivable": 0}}  # fmt: skip

    @invariant()
    def fee_shares_add_up(self) -> None:
        for order in self.paid:
            assert 0 <= order.fee_returned <= order.fee
            if order.refunded == order.amount:
                assert order.fee_returned == order.fee

        async def booked_fees() -> dict[str, int]:
            async with self.pay.c.db.engine.connect() as conn:
                rows = await conn.execute(
                    text("SELECT order_no, sum(fee) FROM ledger_journals WHERE mch_no = :m GROUP BY order_no"),
                    {"m": self.mch_no},
                )
                return {r[0]: int(r[1]) for r in rows if r[0] is not None}

        booked = self.run(booked_fees())
        for order in self.paid:  # payment fee F minus the refunds' shares, as booked
            assert booked.get(order.order_no) == order.fee - order.fee_returned, order

    @invariant()
    def the_ledger_checks_out(self) -> None:
        async def check() -> Any:
            c = self.pay.c
            return await check_ledger(
                c.db, c.pay.succeeded_orders, self.pay.clock.now(), pending_payouts=c.payouts.pending_by_merchant
            )

        report = self.run(check())
        assert report.ok, report.violations

        async def trial() -> int:
            async with self.pay.c.db.engine.connect() as conn:
                total = await conn.execute(text("SELECT coalesce(sum(balance), 0) FROM ledger_balances"))
                return int(total.scalar_one())

        assert self.run(trial()) == 0


def test_the_ledger_follows_the_model(pg_url: str, tmp_path: Path) -> None:
    LedgerMachine.pg_url, LedgerMachine.tmp_path = pg_url, tmp_path
    LedgerMachine.TestCase.settings = settings(
        max_examples=12,
        stateful_step_count=12,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    LedgerMachine.TestCase().runTest()
