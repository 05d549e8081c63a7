"""FastTx (core/fasttx.py) behaves the same on SQLite (Core) and PostgreSQL (raw asyncpg): atomic, guarded,
unique violations as IntegrityError, connections back in the pool, and the "no HTTP inside" flag set."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from tomato.core.clock import as_utc
from tomato.core.db import Database, in_transaction
from tomato.core.fasttx import FastTx
from tomato.pay import repository as repo
from tomato.pay.models import PayOrder
from tomato.pay.states import OrderEvent, OrderStatus

NOW = datetime(2026, 11, 29, 12, 0, 0, 123456, tzinfo=UTC)


def new_order(order_no: str, out_trade_no: str = "T1") -> PayOrder:
    return PayOrder(
        order_no=order_no, app_id="A1", mch_no="M1", out_trade_no=out_trade_no, request_hash="h",
        status=OrderStatus.CREATED.value, paid_after_close=False, amount=1234, currency="CNY", subject="coffee",
        body=None, pay_method="ALIPAY_QR", metadata_json='{"k":"中"}', refunded_amount=0, refund_status="NONE",
        expire_at=NOW + timedelta(minutes=30), query_count=0, version=1, created_at=NOW, updated_at=NOW,
    )  # fmt: skip


async def count_orders(db: Database) -> int:
    async with db.uow() as uow:
        return int((await uow.session.scalar(select(func.count()).select_from(PayOrder))) or 0)


async def test_insert_then_guarded_transition_returns_the_moved_row(db: Database) -> None:
    async with FastTx(db.engine) as tx:
        assert in_transaction()
        await repo.insert_order(tx, new_order("P1"), None)
        await tx.commit()
    assert not in_transaction()

    values = {"status": OrderStatus.PAYING.value, "channel": "alipay", "updated_at": NOW + timedelta(seconds=1)}
    async with FastTx(db.engine) as tx:
        moved = await repo.transition_returning(tx, "P1", OrderEvent.CHANNEL_ACCEPTED, values)
        again = await repo.transition_returning(tx, "P1", OrderEvent.CHANNEL_ACCEPTED, values)
        await tx.commit()
    assert moved is not None and again is None  # PAYING does not accept CHANNEL_ACCEPTED twice
    assert (moved.status, moved.channel, moved.version, moved.amount) == ("PAYING", "alipay", 2, 1234)
    assert moved.metadata_json == '{"k":"中"}'
    assert as_utc(moved.expire_at) == NOW + timedelta(minutes=30)  # microseconds kept (SQLite answers naive UTC)
    assert moved.refund_reserved == 0  # an unset column took its default

    async with db.uow() as uow:
        stored = await repo.get(uow.session, "P1")
    assert stored is not None and (stored.status, stored.version) == ("PAYING", 2)


async def test_unique_violation_is_an_integrity_error_and_rolls_back_everything(db: Database) -> None:
    async with FastTx(db.engine) as tx:
        await repo.insert_order(tx, new_order("P1", "T1"), None)
        await tx.commit()
    with pytest.raises(IntegrityError):
        async with FastTx(db.engine) as tx:
            await repo.insert_order(tx, new_order("P2", "T2"), None)
            await repo.insert_order(tx, new_order("P3", "T1"), None)  # same (app_id, out_trade_no) as P1
            await tx.commit()
    assert await count_orders(db) == 1  # P2 went with the failed transaction


async def test_leaving_without_commit_rolls_back(db: Database) -> None:
    async with FastTx(db.engine) as tx:
        await repo.insert_order(tx, new_order("P1"), None)
    assert await count_orders(db) == 0


async def test_update_reports_whether_a_row_matched_and_connections_return_to_the_pool(db: Database) -> None:
    async with FastTx(db.engine) as tx:
        await repo.insert_order(tx, new_order("P1"), None)
        await tx.commit()
    for _ in range(60):  # more than the pool holds: each FastTx must give its connection back
        async with FastTx(db.engine) as tx:
            hit = await tx.update(repo.ORDERS, ("order_no", "P1"), {"query_count": 1}, status_in=["CREATED"])
            miss = await tx.update(repo.ORDERS, ("order_no", "P1"), {"query_count": 2}, status_in=["PAYING"])
            await tx.commit()
        assert (hit, miss) == (True, False)
    async with db.uow() as uow:
        stored = await repo.get(uow.session, "P1")
    assert stored is not None and stored.query_count == 1
