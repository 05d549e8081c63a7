"""Issue 15: closing survives a sick channel account, and a refused channel report does not loop.

- An order that failed over (its first account refused the connection) is closed where it went, not at the account
  that never saw it.
- An order the expiry job cannot close (its account is down) is tried again on a backoff, so it never holds up
  the expiry of the others.
- A query or close answered "paid, with another amount" is refused once, recorded once, and asked again later.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from tests.conftest import truncate_all
from tests.fixtures.pay_stack import PayStack, pay_stack
from tests.integration.test_routing_breakers import _rule, _wechat_account
from tomato.channel.sandbox import SandboxState, alipay_simulator

SICK_HOST = "down-sandbox.test"


async def refuse_connection(scope: Any, receive: Any, send: Any) -> None:
    """An account whose endpoint refuses connections: the request never leaves us."""
    raise httpx.ConnectError("connection refused")


@pytest.fixture
async def two_accounts(db_url: str, tmp_path: Path) -> AsyncIterator[tuple[PayStack, str, Any]]:
    """WECHAT_NATIVE routed to a second account first (priority 1), the seeded one second; the breaker never opens
    here, so every call really goes to the account and fails as the account does."""
    async with pay_stack(db_url, tmp_path, breaker_fail_max=1000) as pay:
        sandbox = SandboxState(clock=pay.clock)
        first = await _wechat_account(pay, SICK_HOST, sandbox)
        await _rule(pay, [{"channel_account_id": first, "priority": 1, "weight": 100},
                          {"channel_account_id": pay.accounts["wechat"], "priority": 2, "weight": 100}],
                    method="WECHAT_NATIVE")  # fmt: skip
        yield pay, first, pay.to_sandbox.apps_by_host[SICK_HOST]
        await sandbox.aclose()
        if pay.c.db.dialect == "postgresql":
            await truncate_all(pay.c.db)


async def attempts(pay: PayStack, order_no: str) -> list[tuple[str, str, str | None]]:
    async with pay.c.db.engine.connect() as conn:
        rows = await conn.execute(
            text("SELECT channel_account_id, status, error_class FROM pay_attempts WHERE order_no = :o "
                 "ORDER BY created_at, id"), {"o": order_no},
        )  # fmt: skip
        return [(r.channel_account_id, r.status, r.error_class) for r in rows]


async def status(pay: PayStack, order_no: str) -> str:
    return str((await pay.client.request("GET", f"/v1/pay/orders/{order_no}")).json()["status"])


async def test_a_failed_over_order_closes_where_it_went(two_accounts: tuple[PayStack, str, Any]) -> None:
    pay, first, _ = two_accounts
    pay.to_sandbox.apps_by_host[SICK_HOST] = refuse_connection
    order = (await pay.client.create_order(pay_method="WECHAT_NATIVE")).json()
    assert order["status"] == "PAYING" and order["channel"] == "wechat"
    assert await attempts(pay, order["order_no"]) == [
        (first, "UNKNOWN", "CONNECT"), (pay.accounts["wechat"], "SUCCESS", None),
    ]  # fmt: skip
    calls = pay.to_sandbox.calls[SICK_HOST]
    closed = await pay.client.request("POST", f"/v1/pay/orders/{order['order_no']}/close", {})
    assert closed.status_code == 200, closed.text
    assert closed.json()["status"] == "CLOSED"
    assert pay.to_sandbox.calls[SICK_HOST] == calls  # the account that never saw the order is not asked


async def test_expiry_backs_off_an_order_it_cannot_close(two_accounts: tuple[PayStack, str, Any]) -> None:
    pay, first, healthy_app = two_accounts
    stuck = (await pay.client.create_order(pay_method="WECHAT_NATIVE", expire_minutes=1)).json()
    assert stuck["status"] == "PAYING"  # on the first account, which then goes down
    pay.to_sandbox.apps_by_host[SICK_HOST] = refuse_connection
    failed_over = (await pay.client.create_order(pay_method="WECHAT_NATIVE", expire_minutes=1)).json()
    later = (await pay.client.create_order(pay_method="WECHAT_NATIVE", expire_minutes=2)).json()
    pay.clock.advance(timedelta(seconds=61))
    assert await pay.c.pay.close_expired_orders() == 2
    assert await status(pay, stuck["order_no"]) == "PAYING"  # its account is down: cannot close it yet
    assert await status(pay, failed_over["order_no"]) == "CLOSED"
    assert await pay.c.pay.close_expired_orders() == 0  # the stuck one waits for its backoff
    pay.clock.advance(timedelta(seconds=61))
    assert await pay.c.pay.close_expired_orders() == 2  # the stuck one's retry, and the one now expired
    assert await status(pay, later["order_no"]) == "CLOSED"
    assert await status(pay, stuck["order_no"]) == "PAYING"
    assert await pay.c.pay.close_expired_orders() == 0  # a longer wait after the second failure
    pay.clock.advance(timedelta(seconds=61))
    assert await pay.c.pay.close_expired_orders() == 0
    pay.to_sandbox.apps_by_host[SICK_HOST] = healthy_app  # the account is back
    pay.clock.advance(timedelta(seconds=60))
    assert await pay.c.pay.close_expired_orders() == 1
    assert await status(pay, stuck["order_no"]) == "CLOSED"


async def anomalies(pay: PayStack) -> tuple[list[str], int]:
    async with pay.c.db.engine.connect() as conn:
        kinds = list((await conn.execute(text("SELECT kind FROM pay_anomalies"))).scalars())
        events = await conn.execute(text("SELECT count(*) FROM outbox_events WHERE event_type = 'pay.anomaly'"))
        return kinds, int(events.scalar_one())


async def paid_with_another_amount(pay: PayStack, **fields: Any) -> dict[str, Any]:
    """An order whose trade the payer paid, and which the channel now reports with another amount."""
    await pay.faults(channel="alipay", drop_notify=True)
    order: dict[str, Any] = (await pay.client.create_order(amount=1234, **fields)).json()
    assert (await pay.scan(order_no=order["order_no"], result="paid")).status_code == 200
    trade = alipay_simulator(pay.sandbox).book.find_by_order_no(order["order_no"])
    assert trade is not None
    trade.amount = 1
    return order


async def test_a_refused_query_answer_is_asked_again_later_and_recorded_once(pay: PayStack) -> None:
    order = await paid_with_another_amount(pay)
    pay.clock.advance(timedelta(seconds=31))
    assert await pay.c.pay.query_stuck_orders() == 1
    assert await pay.c.pay.query_stuck_orders() == 0  # rescheduled on the normal backoff, not asked every round
    pay.clock.advance(timedelta(seconds=61))
    assert await pay.c.pay.query_stuck_orders() == 1
    assert await status(pay, order["order_no"]) == "PAYING"
    assert await anomalies(pay) == (["amount_mismatch"], 1)


async def test_a_close_refused_for_a_report_with_another_amount_backs_off(pay: PayStack) -> None:
    order = await paid_with_another_amount(pay, expire_minutes=1)
    pay.clock.advance(timedelta(seconds=61))
    assert await pay.c.pay.close_expired_orders() == 1
    assert await status(pay, order["order_no"]) == "PAYING"
    assert await pay.c.pay.close_expired_orders() == 0
    pay.clock.advance(timedelta(seconds=61))
    assert await pay.c.pay.close_expired_orders() == 1
    assert await anomalies(pay) == (["amount_mismatch"], 1)
