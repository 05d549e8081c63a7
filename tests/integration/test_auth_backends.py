"""Issue 15 item 11: replay protection and rate limiting fail closed when Redis cannot be reached (503, nothing
written), while a Redis failure after an order or refund committed still answers the merchant its 201.

Redis is made unreachable for the platform alone: a port nobody listens on, or a proxy in front of the real Redis
that the test cuts — the shared Redis keeps running for everyone else.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from starlette.types import Receive, Scope, Send

from tests.conftest import REDIS_URL, truncate_all
from tests.e2e.conftest import free_port
from tests.fixtures.merchant_client import nonce
from tests.fixtures.pay_stack import PayStack, pay_stack
from tests.fixtures.tcp_proxy import TcpProxy
from tomato.core.cache import MemoryCache, NonceStore, RedisCache

ORDER = {"out_trade_no": "A-001", "amount": 1234, "subject": "Coffee", "pay_method": "ALIPAY_QR"}


async def scalar(pay: PayStack, sql: str) -> Any:
    async with pay.c.db.engine.connect() as conn:
        return (await conn.execute(text(sql))).scalar_one()


def code(r) -> str:  # type: ignore[no-untyped-def]
    return str(r.json()["error"]["code"])


@pytest.fixture
async def dead_redis_pay(db_url: str, tmp_path: Path) -> AsyncIterator[PayStack]:
    """The platform configured with a Redis URL on a port where nothing listens."""
    async with pay_stack(db_url, tmp_path, redis_url=f"redis://127.0.0.1:{free_port()}/0") as stack:
        yield stack
        if stack.c.db.dialect == "postgresql":
            await truncate_all(stack.c.db)


async def test_replay_is_refused_when_the_nonce_store_is_unreachable(dead_redis_pay: PayStack) -> None:
    pay = dead_redis_pay
    body = json.dumps(ORDER).encode()
    headers = pay.client.headers("POST", "/v1/pay/orders", body, n=nonce())
    first = await pay.http.post("/v1/pay/orders", content=body, headers=headers)
    replay = await pay.http.post("/v1/pay/orders", content=body, headers=headers)  # byte-identical
    for r in (first, replay):
        assert r.status_code == 503 and code(r) == "SERVICE_UNAVAILABLE", r.text
        assert int(r.headers["Retry-After"]) >= 1
        pay.client.verify(r)  # the app is known: signed like every other answer
    assert await scalar(pay, "SELECT count(*) FROM pay_orders") == 0


async def test_rate_limiter_unreachable_fails_closed(dead_redis_pay: PayStack) -> None:
    pay = dead_redis_pay
    pay.c.nonces = NonceStore(MemoryCache(), 900)  # replay protection up, the limiter's Redis down
    r = await pay.client.request("POST", "/v1/pay/orders", ORDER)
    assert r.status_code == 503 and code(r) == "SERVICE_UNAVAILABLE", r.text
    assert await scalar(pay, "SELECT count(*) FROM pay_orders") == 0


class CutOnChannelCall:
    """Wraps the simulator app: when armed, the next channel call first cuts the platform's Redis proxy — the
    order (or refund) row is already committed, and the idempotent answer cannot be stored afterwards."""

    def __init__(self, app: Any, proxy: TcpProxy) -> None:
        self.app, self.proxy, self.armed = app, proxy, False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.armed and not scope["path"].startswith("/sandbox/"):
            self.armed = False
            await self.proxy.cut()
        await self.app(scope, receive, send)


async def test_redis_failing_after_commit_still_answers_201(
    db_url: str, tmp_path: Path, redis_cache: RedisCache
) -> None:
    host, port = REDIS_URL.split("//", 1)[1].split("/", 1)[0].split(":")
    proxy = TcpProxy(host, int(port))
    await proxy.start()
    db = REDIS_URL.rsplit("/", 1)[1]
    url = f"redis://127.0.0.1:{proxy.port}/{db}"
    try:
        async with pay_stack(db_url, tmp_path, redis_url=url, redis_prefix=redis_cache.prefix) as pay:
            cutter = CutOnChannelCall(pay.to_sandbox.app, proxy)
            pay.to_sandbox.app = cutter  # type: ignore[assignment]

            cutter.armed = True
            created = await pay.client.request("POST", "/v1/pay/orders", ORDER, extra={"Idempotency-Key": "c-1"})
            assert created.status_code == 201, created.text
            assert created.json()["status"] == "PAYING"
            assert not proxy.up and not cutter.armed  # Redis really went away mid-request
            order_no = created.json()["order_no"]
            assert await scalar(pay, f"SELECT status FROM pay_orders WHERE order_no = '{order_no}'") == "PAYING"

            await proxy.restore()
            assert (await pay.scan(order_no=order_no, result="paid")).status_code == 200
            async with asyncio.timeout(10):
                while await scalar(pay, f"SELECT status FROM pay_orders WHERE order_no = '{order_no}'") != "SUCCEEDED":
                    await asyncio.sleep(0.02)  # the simulator's notify is applied by the gateway app

            cutter.armed = True
            refund = {"order_no": order_no, "out_refund_no": "RF-1", "amount": 100}
            refunded = await pay.client.request("POST", "/v1/refunds", refund, extra={"Idempotency-Key": "r-1"})
            assert refunded.status_code == 201, refunded.text
            assert not proxy.up
            assert await scalar(pay, "SELECT count(*) FROM refunds") == 1
            if pay.c.db.dialect == "postgresql":
                await truncate_all(pay.c.db)
    finally:
        await proxy.cut()
