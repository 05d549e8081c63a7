"""WriteBatch (core/writebatch.py) behaves the same on SQLite (Core, one transaction) and PostgreSQL (one
statement of data-modifying CTEs on the raw asyncpg connection): all or nothing, guarded, the last write's row
answered, unique violations as IntegrityError, and connections back in the pool."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from tomato.core.clock import as_utc
from tomato.core.db import Database
from tomato.core.writebatch import WriteBatch
from tomato.pay import repository as repo
from tomato.pay.models import PayAttempt, PayOrder
from tomato.pay.states import OrderEvent, OrderStatus

NOW = datetime(2026, 11, 29, 12, 0, 0, 123456, tzinfo=UTC)


def new_order(order_no: str, out_trade_no: str = "T1") -> PayOrder:
    return PayOrder(
        order_no=order_no, app_id="A1", mch_no="M1", out_trade_no=out_trade_no, request_hash="h",
        status=OrderStatus.CREATED.value, paid_after_close=False, amount=1234, currency="CNY", subject="coffee",
        body=None, pay_method="ALIPAY_QR", metadata_json='{"k":"中"}', refunded_amount=0, refund_status="NONE",
        expire_at=NOW + timedelta(minutes=30), query_count=0, version=1, created_at=NOW, updated_at=NOW,
    )  # fmt: skip


def new_attempt(attempt_id: str, order_no: str) -> PayAttempt:
    return PayAttempt(id=attempt_id, order_no=order_no, channel="alipay", channel_account_id="CA1",
                      status="CALLING", created_at=NOW)  # fmt: skip


async def count(db: Database, model: type[PayOrder] | type[PayAttempt]) -> int:
    async with db.uow() as uow:
        return int((await uow.session.scalar(select(func.count()).select_from(model))) or 0)


async def insert(db: Database, order: PayOrder, attempt: PayAttempt | None = None) -> None:
    batch = WriteBatch(db.engine)
    repo.insert_order(batch, order, attempt)
    assert await batch.commit() is None


async def test_finish_attempt_and_guarded_transition_answer_the_moved_row(db: Database) -> None:
    await insert(db, new_order("P1"), new_attempt("PA1", "P1"))
    values = {"status": OrderStatus.PAYING.value, "channel": "alipay", "updated_at": NOW + timedelta(seconds=1)}

    batch = WriteBatch(db.engine)
    repo.finish_attempt(batch, "PA1", {"status": "SUCCESS", "pay_data": '{"type":"qr_code"}'})
    repo.transition_returning(batch, "P1", OrderEvent.CHANNEL_ACCEPTED, values)
    row = await batch.commit()
    assert row is not None
    moved = repo.detached(row)
    assert (moved.status, moved.channel, moved.version, moved.amount) == ("PAYING", "alipay", 2, 1234)
    assert moved.metadata_json == '{"k":"中"}'
    assert as_utc(moved.expire_at) == NOW + timedelta(minutes=30)  # microseconds kept (SQLite answers naive UTC)
    assert moved.refund_reserved == 0  # an unset column took its default

    again = WriteBatch(db.engine)  # PAYING does not accept CHANNEL_ACCEPTED twice; the attempt write still lands
    repo.finish_attempt(again, "PA1", {"error_code": "late"})
    repo.transition_returning(again, "P1", OrderEvent.CHANNEL_ACCEPTED, values)
    assert await again.commit() is None

    async with db.uow() as uow:
        stored = await repo.get(uow.session, "P1")
        attempts = await repo.attempts_of(uow.session, "P1")
    assert stored is not None and (stored.status, stored.version) == ("PAYING", 2)
    assert [(a.status, a.pay_data, a.error_code) for a in attempts] == [("SUCCESS", '{"type":"qr_code"}', "late")]


async def test_unique_violation_is_an_integrity_error_and_writes_nothing_of_the_batch(db: Database) -> None:
    await insert(db, new_order("P1", "T1"))
    batch = WriteBatch(db.engine)
    repo.insert_order(batch, new_order("P2", "T2"), new_attempt("PA2", "P2"))
    repo.insert_order(batch, new_order("P3", "T1"), None)  # same (app_id, out_trade_no) as P1
    with pytest.raises(IntegrityError):
        await batch.commit()
    assert (await count(db, PayOrder), await count(db, PayAttempt)) == (1, 0)  # P2 and PA2 went with it


async def test_only_the_last_write_may_answer_a_row(db: Database) -> None:
    batch = WriteBatch(db.engine)
    repo.transition_returning(batch, "P1", OrderEvent.CHANNEL_ACCEPTED, {"status": "PAYING"})
    with pytest.raises(ValueError, match="last"):
        repo.finish_attempt(batch, "PA1", {"status": "SUCCESS"})


async def test_many_batches_reuse_pooled_connections(db: Database) -> None:
    await insert(db, new_order("P1"))
    for i in range(60):  # more than the pool holds: each commit must give its connection back
        batch = WriteBatch(db.engine)
        batch.update(repo.ORDERS, ("order_no", "P1"), {"query_count": i}, status_in=["CREATED"])
        await batch.commit()
    async with db.uow() as uow:
        stored = await repo.get(uow.session, "P1")
    assert stored is not None and stored.query_count == 59
