"""Walks the whole transition table against the database: allowed moves happen once, all others never."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from tomato.channel.http import guarded_client
from tomato.core.db import Database
from tomato.core.errors import HttpInsideTransaction
from tomato.pay import repository as repo
from tomato.pay.models import PayOrder
from tomato.pay.service.compensation import next_query_at
from tomato.pay.states import TRANSITIONS, OrderEvent, OrderStatus, target


def _order(order_no: str, status: OrderStatus) -> PayOrder:
    now = datetime.now(UTC)
    return PayOrder(
        order_no=order_no, app_id="A1", mch_no="M1", out_trade_no=order_no, request_hash="h", status=status.value,
        paid_after_close=False, amount=100, currency="CNY", subject="s", pay_method="ALIPAY_QR",
        metadata_json="{}", refunded_amount=0, refund_status="NONE", expire_at=now, query_count=0, version=1,
        created_at=now, updated_at=now,
    )  # fmt: skip


async def test_every_pair_of_state_and_event(db: Database) -> None:
    pairs = list(itertools.product(OrderStatus, OrderEvent))
    async with db.uow() as uow:
        for i, (status, _) in enumerate(pairs):
            uow.session.add(_order(f"P{i}", status))
        await uow.commit()
    for i, (status, event) in enumerate(pairs):
        expected = target(status, event)
        async with db.uow() as uow:
            moved = await repo.transition(uow.session, f"P{i}", event, {"status": (expected or status).value})
            again = await repo.transition(uow.session, f"P{i}", event, {"status": (expected or status).value})
            await uow.commit()
        assert moved is (expected is not None), (status, event)
        # a repeated event never moves twice (no self-loops in the table)
        assert again is (expected is not None and (expected, event) in TRANSITIONS), (status, event)


def test_final_states_have_no_way_out_but_paid_after_close() -> None:
    assert not [k for k in TRANSITIONS if k[0] in (OrderStatus.SUCCEEDED, OrderStatus.FAILED)]
    assert TRANSITIONS[(OrderStatus.CLOSED, OrderEvent.PAID)] is OrderStatus.SUCCEEDED


async def test_http_inside_a_unit_of_work_fails(db: Database) -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(200))
    async with guarded_client(1.0, transport) as client:
        assert (await client.get("http://channel.test/")).status_code == 200
        async with db.uow():
            with pytest.raises(HttpInsideTransaction):
                await client.get("http://channel.test/")


def test_compensation_backoff_tiers() -> None:
    created = datetime(2026, 1, 1, tzinfo=UTC)
    expire = created + timedelta(minutes=30)
    offsets = [(next_query_at(created, expire, n, 1.0) - created).total_seconds() for n in range(7)]  # type: ignore[operator]
    assert offsets == [30, 90, 210, 510, 1110, 2910, 4710]
    assert next_query_at(created, expire, 60, 1.0) is None  # past expiry + 1 day: stop asking
    assert (next_query_at(created, expire, 0, 6.0) - created).total_seconds() == 5  # type: ignore[operator]
