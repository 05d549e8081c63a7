"""Issue 15 item 4: one submission of a CREATED order reaches a channel at a time.

A retried create (same out_trade_no) and a second opening of the cashier page both submit a CREATED order. Each
submission first claims the order with a guarded update that carries a lease; a submission that finds the claim
held answers the order as it stands, and a claim whose holder died expires with its lease.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import text

from tests.fixtures.pay_stack import SANDBOX_URL, PayStack
from tomato.pay import repository as repo

SANDBOX_HOST = urlsplit(SANDBOX_URL).hostname or ""
N = 10


def channel_calls(pay: PayStack) -> int:
    return pay.to_sandbox.calls.get(SANDBOX_HOST, 0)


async def attempts(pay: PayStack, order_no: str) -> int:
    async with pay.c.db.engine.connect() as conn:
        q = text("SELECT count(*) FROM pay_attempts WHERE order_no = :o")
        return int((await conn.execute(q, {"o": order_no})).scalar_one())


async def created_order(pay: PayStack, **fields: Any) -> dict[str, Any]:
    """An order left CREATED by a create the channel answered with a 5xx (outcome unknown: not moved elsewhere)."""
    await pay.faults(channel="alipay", error_rate=1.0)
    r = await pay.client.create_order(**fields)
    await pay.faults(channel="alipay", error_rate=0.0)
    assert r.status_code == 502 and r.json()["error"]["code"] == "CHANNEL_ERROR", r.text
    found = await pay.client.request("GET", f"/v1/pay/orders?out_trade_no={fields['out_trade_no']}")
    assert found.json()["status"] == "CREATED"
    return found.json()  # type: ignore[no-any-return]


async def test_concurrent_retries_of_a_created_order_reach_the_channel_once(pay: PayStack) -> None:
    body = {"out_trade_no": "retry-1", "amount": 1500}
    order = await created_order(pay, **body)
    await pay.faults(channel="alipay", latency_ms=300)  # the submission is in flight while the others arrive
    before = channel_calls(pay)
    responses = await asyncio.gather(*(pay.client.create_order(**body) for _ in range(N)))
    assert channel_calls(pay) - before == 1
    assert [r.status_code for r in responses] == [200] * N
    assert {r.json()["order_no"] for r in responses} == {order["order_no"]}
    statuses = sorted(r.json()["status"] for r in responses)
    assert statuses.count("PAYING") >= 1 and set(statuses) <= {"CREATED", "PAYING"}
    assert await attempts(pay, order["order_no"]) == 2  # the 5xx one and the one that was accepted
    # once the claim is released a retry answers the PAYING order without calling again
    again = await pay.client.create_order(**body)
    assert again.status_code == 200 and again.json()["status"] == "PAYING"
    assert channel_calls(pay) - before == 1


async def test_concurrent_duplicate_creates_make_one_trade(pay: PayStack) -> None:
    await pay.faults(channel="alipay", latency_ms=300)
    body = {"out_trade_no": "dup-1", "amount": 2500}
    before = channel_calls(pay)
    responses = await asyncio.gather(*(pay.client.create_order(**body) for _ in range(N)))
    assert channel_calls(pay) - before == 1
    assert sorted(r.status_code for r in responses) == [200] * (N - 1) + [201]
    assert len({r.json()["order_no"] for r in responses}) == 1
    assert await attempts(pay, responses[0].json()["order_no"]) == 1


async def test_concurrent_cashier_openings_submit_once(pay: PayStack) -> None:
    order = (await pay.client.create_order(pay_method="CASHIER")).json()
    token = urlsplit(order["pay_data"]["value"]).path.rsplit("/", 1)[-1]
    await pay.faults(channel="wechat", latency_ms=300)
    before = channel_calls(pay)
    started = await asyncio.gather(*(pay.c.pay.start_cashier(token, "wechat", "o-payer-1") for _ in range(N)))
    assert channel_calls(pay) - before == 1
    assert await attempts(pay, order["order_no"]) == 1
    with_data = [s for s in started if s.wallet_pay_data is not None]
    assert len(with_data) >= 1 and all(s.wallet_pay_data["type"] == "jsapi" for s in with_data)  # type: ignore[index]
    assert {s.order.status for s in started} <= {"CREATED", "PAYING"}


async def test_an_abandoned_claim_expires_with_its_lease(pay: PayStack) -> None:
    body = {"out_trade_no": "dead-1", "amount": 700}
    order = await created_order(pay, **body)
    now = pay.clock.now()
    async with pay.c.db.uow() as uow:  # a process claimed it, then died before calling the channel
        claimed = await repo.claim_submission(
            uow.session, order["order_no"], "dead-process", now, now + timedelta(seconds=pay.c.pay.deps.submit_lease_s)
        )
        await uow.commit()
    assert claimed
    before = channel_calls(pay)
    held = await pay.client.create_order(**body)
    assert held.status_code == 200 and held.json()["status"] == "CREATED"
    assert channel_calls(pay) == before  # the claim stands: nothing sent
    pay.clock.advance(timedelta(seconds=pay.c.pay.deps.submit_lease_s + 1))
    pay.client.clock_offset += int(pay.c.pay.deps.submit_lease_s) + 1
    resumed = await pay.client.create_order(**body)
    assert resumed.status_code == 200 and resumed.json()["status"] == "PAYING"
    assert channel_calls(pay) - before == 1
