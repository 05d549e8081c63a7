"""Issue 15 item 7: a channel account's daily limit is reserved atomically at routing and freed by what closes unpaid.

Each order holds its amount on the account's business-day usage by one guarded upsert before the channel is
called; concurrent orders therefore never pass the limit. The hold is given back when the attempt definitely
failed (no trade exists) and when the order closes unpaid or fails; a paid or still-open order keeps it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

from tests.conftest import truncate_all
from tests.fixtures.pay_stack import PayStack, pay_stack
from tests.fixtures.stack import admin
from tomato.channel.sandbox import SandboxState, alipay_simulator, create_sandbox_app
from tomato.core.crypto import generate_rsa_key, private_key_pem, public_key_pem

CAPPED_HOST = "capped-sandbox.test"
AMOUNT = 1_000
N = 50


async def capped_account(pay: PayStack, sandbox: SandboxState, limit: int, *, registered: bool = True) -> str:
    """An Alipay account on its own simulator (calls to it are counted apart) with a daily limit. Unregistered:
    the simulator refuses every call with a signed invalid-app-id answer (a definite rejection)."""
    sim = alipay_simulator(sandbox)
    key = generate_rsa_key()
    if registered:
        sim.register_app("2021000000000888", public_key_pem(key))
    pay.to_sandbox.apps_by_host[CAPPED_HOST] = create_sandbox_app(sandbox)
    config = {
        "app_id": "2021000000000888",
        "private_key_pem": private_key_pem(key),
        "alipay_public_key_pem": sim.public_key_pem,
        "gateway_url": f"http://{CAPPED_HOST}/alipay/gateway.do",
    }
    r = await pay.http.post(
        "/admin/channel-accounts",
        headers=admin(),
        json={"channel": "alipay", "name": "capped", "config": config, "daily_limit": limit},
    )
    assert r.status_code == 201, r.text  # fmt: skip
    return str(r.json()["id"])


async def rule(pay: PayStack, *account_ids: str) -> None:
    candidates = [{"channel_account_id": a, "priority": i + 1, "weight": 1} for i, a in enumerate(account_ids)]
    body = {"rank": 10, "pay_methods": ["ALIPAY_QR"], "candidates": candidates}
    r = await pay.http.post("/admin/routing-rules", json=body, headers=admin())
    assert r.status_code == 201, r.text


async def usage(pay: PayStack, account_id: str) -> int:
    async with pay.c.db.engine.connect() as conn:
        q = text("SELECT COALESCE(SUM(amount), 0) FROM channel_account_usage WHERE account_id = :a")
        return int((await conn.execute(q, {"a": account_id})).scalar_one())


async def orders_on(pay: PayStack, account_id: str) -> list[str]:
    async with pay.c.db.engine.connect() as conn:
        q = text("SELECT order_no FROM pay_orders WHERE channel_account_id = :a ORDER BY order_no")
        return [str(o) for o in (await conn.execute(q, {"a": account_id})).scalars()]


@pytest.fixture
async def capped(db_url: str, tmp_path: Path) -> AsyncIterator[tuple[PayStack, SandboxState]]:
    async with pay_stack(db_url, tmp_path) as pay:
        sandbox = SandboxState(clock=pay.clock)
        yield pay, sandbox
        await sandbox.aclose()
        if pay.c.db.dialect == "postgresql":
            await truncate_all(pay.c.db)


async def test_fifty_concurrent_orders_fill_a_limit_of_ten_and_fall_over(capped) -> None:  # type: ignore[no-untyped-def]
    pay, sandbox = capped
    limited = await capped_account(pay, sandbox, 10 * AMOUNT)
    await rule(pay, limited, pay.accounts["alipay"])
    responses = await asyncio.gather(*(pay.client.create_order(amount=AMOUNT) for _ in range(N)))
    assert [r.status_code for r in responses] == [201] * N
    assert pay.to_sandbox.calls.get(CAPPED_HOST, 0) == 10  # exactly the limit's worth reached the account
    assert len(await orders_on(pay, limited)) == 10
    assert len(await orders_on(pay, pay.accounts["alipay"])) == N - 10
    assert await usage(pay, limited) == 10 * AMOUNT

    # three QR codes nobody paid are closed: their room is free again, and taken by the next orders
    for order_no in (await orders_on(pay, limited))[:3]:
        r = await pay.client.request("POST", f"/v1/pay/orders/{order_no}/close", {})
        assert r.status_code == 200 and r.json()["status"] == "CLOSED"
    assert await usage(pay, limited) == 7 * AMOUNT
    for _ in range(5):
        assert (await pay.client.create_order(amount=AMOUNT)).status_code == 201
    assert len(await orders_on(pay, limited)) == 13
    assert await usage(pay, limited) == 10 * AMOUNT


async def test_fifty_concurrent_orders_on_one_limited_account_answer_503_past_the_limit(capped) -> None:  # type: ignore[no-untyped-def]
    pay, sandbox = capped
    limited = await capped_account(pay, sandbox, 10 * AMOUNT)
    await rule(pay, limited)
    responses = await asyncio.gather(*(pay.client.create_order(amount=AMOUNT) for _ in range(N)))
    codes = sorted(r.status_code for r in responses)
    assert codes == [201] * 10 + [503] * (N - 10)
    assert all(r.json()["error"]["code"] == "NO_CHANNEL_AVAILABLE" for r in responses if r.status_code == 503)
    assert pay.to_sandbox.calls.get(CAPPED_HOST, 0) == 10
    async with pay.c.db.engine.connect() as conn:  # a 503 wrote no order
        assert (await conn.execute(text("SELECT count(*) FROM pay_orders"))).scalar_one() == 10
    assert await usage(pay, limited) == 10 * AMOUNT


async def test_a_definite_rejection_gives_the_hold_back(capped) -> None:  # type: ignore[no-untyped-def]
    pay, sandbox = capped
    refusing = await capped_account(pay, sandbox, AMOUNT, registered=False)
    await rule(pay, refusing, pay.accounts["alipay"])
    for _ in range(3):  # each is held on the refusing account, refused there, and served by the next one
        r = await pay.client.create_order(amount=AMOUNT)
        assert r.status_code == 201 and r.json()["status"] == "PAYING"
    assert pay.to_sandbox.calls.get(CAPPED_HOST, 0) == 3
    assert await usage(pay, refusing) == 0


async def test_an_unknown_outcome_keeps_the_hold_until_the_order_closes(capped) -> None:  # type: ignore[no-untyped-def]
    pay, sandbox = capped
    limited = await capped_account(pay, sandbox, AMOUNT)
    await rule(pay, limited, pay.accounts["alipay"])
    sandbox.faults["alipay"].error_rate = 1.0  # a 5xx: the trade may exist, so the room stays taken
    r = await pay.client.create_order(amount=AMOUNT)
    assert r.status_code == 502
    assert await usage(pay, limited) == AMOUNT
    sandbox.faults["alipay"].error_rate = 0.0
    assert (await pay.client.create_order(amount=AMOUNT)).status_code == 201  # no room: the fallback serves it
    assert len(await orders_on(pay, pay.accounts["alipay"])) == 1
    pay.clock.advance(timedelta(minutes=31))
    pay.client.clock_offset += 31 * 60
    assert await pay.c.pay.close_expired_orders() == 2
    assert await usage(pay, limited) == 0
    r = await pay.client.create_order(amount=AMOUNT)
    assert r.status_code == 201
    assert len(await orders_on(pay, limited)) == 1
    assert await usage(pay, limited) == AMOUNT


async def test_a_hold_is_released_once_and_on_its_own_business_date(capped) -> None:  # type: ignore[no-untyped-def]
    pay, sandbox = capped
    limited = await capped_account(pay, sandbox, 3 * AMOUNT)
    await rule(pay, limited)
    channels = pay.c.channels
    assert await channels.hold_daily_limit("H-1", limited, AMOUNT)
    assert await channels.hold_daily_limit("H-2", limited, 2 * AMOUNT)
    assert not await channels.hold_daily_limit("H-3", limited, 1)  # full
    pay.clock.advance(timedelta(days=1))  # a new business date: a fresh day's room, yesterday's holds still stand
    assert await channels.hold_daily_limit("H-4", limited, 3 * AMOUNT)
    freed = await asyncio.gather(*(channels.release_daily_limit(["H-1", "H-2"]) for _ in range(10)))
    assert sorted(freed) == [0] * 9 + [3 * AMOUNT]  # however often asked, given back once
    async with pay.c.db.engine.connect() as conn:
        q = text("SELECT business_date, amount FROM channel_account_usage WHERE account_id = :a ORDER BY 1")
        rows = [tuple(r) for r in await conn.execute(q, {"a": limited})]
    assert [amount for _, amount in rows] == [0, 3 * AMOUNT] and rows[0][0] < rows[1][0]
