"""Group commit (core/groupcommit.py) on PostgreSQL: identical WriteBatch statements that arrive while one is in
flight wait in the process, not as backends of their own, and then go in one round trip — and every caller still
gets its own outcome: its row, None when its guard did not match, its own unique violation, nothing written when
it was cancelled before the batch went out, or the lost connection when the batch's connection died under it."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import pytest
from sqlalchemy.exc import DBAPIError, IntegrityError

from tests.fixtures.tcp_proxy import TcpProxy
from tests.integration.test_writebatch import NOW, insert, new_attempt, new_order
from tomato.core import groupcommit
from tomato.core.db import Database, create_engine
from tomato.core.writebatch import WriteBatch
from tomato.pay import repository as repo
from tomato.pay.states import OrderEvent, OrderStatus

pytestmark = pytest.mark.services


@pytest.fixture
def db_url(pg_url: str) -> str:
    """PostgreSQL only (conftest's `db` then runs on it alone): on SQLite a WriteBatch is one Core transaction."""
    return pg_url


async def until(condition: Callable[[], Awaitable[bool]]) -> None:
    for _ in range(2000):
        if await condition():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("condition never held")


class OrdersLocked:
    """Holds a lock on pay_orders that every write to it waits for, from a connection of its own."""

    def __init__(self, pg_url: str) -> None:
        self._dsn = pg_url.replace("+asyncpg", "")
        self._conn: Any = None

    async def __aenter__(self) -> OrdersLocked:
        self._conn = await asyncpg.connect(self._dsn)
        await self._conn.execute("BEGIN; LOCK TABLE pay_orders IN EXCLUSIVE MODE")
        return self

    async def waiting_backends(self) -> int:
        return int(await self._conn.fetchval(
            "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
            "WHERE c.relname = 'pay_orders' AND NOT l.granted"
        ))  # fmt: skip

    async def __aexit__(self, *exc: object) -> None:
        await self._conn.execute("COMMIT")
        await self._conn.close()


def transition(db: Database, order_no: str) -> Awaitable[dict[str, Any] | None]:
    batch = WriteBatch(db.engine)
    repo.finish_attempt(batch, f"A{order_no}", {"status": "SUCCESS"})
    values = {"status": OrderStatus.PAYING.value, "channel": "alipay", "updated_at": NOW + timedelta(seconds=1)}
    repo.transition_returning(batch, order_no, OrderEvent.CHANNEL_ACCEPTED, values)
    return batch.commit()


async def test_inserts_arriving_while_one_is_in_flight_go_together_and_only_the_duplicate_fails(
    db: Database, pg_url: str
) -> None:
    await insert(db, new_order("P0", "T0"), new_attempt("AP0", "P0"))
    async with OrdersLocked(pg_url) as lock:
        first = asyncio.create_task(insert(db, new_order("P1", "T1"), new_attempt("AP1", "P1")))
        await until(lambda: _equals(lock.waiting_backends(), 1))
        rest = [asyncio.create_task(insert(db, new_order(f"P{n}", f"T{n}"), new_attempt(f"AP{n}", f"P{n}")))
                for n in (2, 3, 4)]  # fmt: skip
        duplicate = asyncio.create_task(insert(db, new_order("P5", "T0"), new_attempt("AP5", "P5")))
        await until(lambda: _ready(groupcommit.queued(db.engine) == 4))
        assert await lock.waiting_backends() == 1  # four statements queued in the process, one in PostgreSQL
    await asyncio.gather(first, *rest)
    with pytest.raises(IntegrityError):
        await duplicate
    assert await _order_nos(db) == ["P0", "P1", "P2", "P3", "P4"]
    assert await _attempt_ids(db) == ["AP0", "AP1", "AP2", "AP3", "AP4"]


async def test_each_caller_of_a_batch_gets_its_own_row_or_none(db: Database, pg_url: str) -> None:
    for n in (1, 2, 3):
        await insert(db, new_order(f"P{n}", f"T{n}"), new_attempt(f"AP{n}", f"P{n}"))
    async with OrdersLocked(pg_url) as lock:
        first = asyncio.create_task(transition(db, "P1"))
        await until(lambda: _equals(lock.waiting_backends(), 1))
        second, third = asyncio.create_task(transition(db, "P2")), asyncio.create_task(transition(db, "P3"))
        again = asyncio.create_task(transition(db, "P2"))  # same key as `second`: the batch after
        await until(lambda: _ready(groupcommit.queued(db.engine) == 3))
    rows = await asyncio.gather(first, second, third, again)
    assert [row and (row["order_no"], row["status"], row["version"]) for row in rows] == [
        ("P1", "PAYING", 2), ("P2", "PAYING", 2), ("P3", "PAYING", 2), None  # P2 was PAYING by then
    ]  # fmt: skip


async def test_a_caller_whose_values_the_driver_refuses_fails_alone(db: Database, pg_url: str) -> None:
    async with OrdersLocked(pg_url) as lock:
        first = asyncio.create_task(insert(db, new_order("P1", "T1")))
        await until(lambda: _equals(lock.waiting_backends(), 1))
        bad_order = new_order("P2", "T2")
        bad_order.amount = [12]  # type: ignore[assignment]  # not an integer: asyncpg refuses to encode it
        bad = asyncio.create_task(insert(db, bad_order))
        good = asyncio.create_task(insert(db, new_order("P3", "T3")))
        await until(lambda: _ready(groupcommit.queued(db.engine) == 2))
    await asyncio.gather(first, good)
    with pytest.raises(asyncpg.DataError, match="invalid input for query argument"):  # refused before it was sent
        await bad
    assert await _order_nos(db) == ["P1", "P3"]


async def test_a_caller_cancelled_before_its_batch_goes_out_writes_nothing(db: Database, pg_url: str) -> None:
    async with OrdersLocked(pg_url) as lock:
        first = asyncio.create_task(insert(db, new_order("P1", "T1")))
        await until(lambda: _equals(lock.waiting_backends(), 1))
        cancelled = asyncio.create_task(insert(db, new_order("P2", "T2")))
        kept = [asyncio.create_task(insert(db, new_order(f"P{n}", f"T{n}"))) for n in (3, 4)]
        await until(lambda: _ready(groupcommit.queued(db.engine) == 3))
        cancelled.cancel()
    await asyncio.gather(first, *kept)
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    assert await _order_nos(db) == ["P1", "P3", "P4"]


WAITS_ON = "SELECT $1::text AS k, pg_advisory_xact_lock_shared($2::bigint) IS NULL AS waited"


async def test_a_connection_lost_under_a_batch_fails_every_caller_in_it_and_the_next_one_connects_again(
    pg_url: str,
) -> None:
    parts = urlsplit(pg_url)
    proxy = TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5432)
    await proxy.start()
    db = Database(create_engine(parts._replace(netloc=f"postgres@127.0.0.1:{proxy.port}").geturl(), pool_size=2))
    holders = [await asyncpg.connect(pg_url.replace("+asyncpg", "")) for _ in range(2)]
    try:
        for lock_id, holder in enumerate(holders, start=1):
            await holder.execute(f"BEGIN; SELECT pg_advisory_xact_lock({lock_id})")

        async def waiting_on(lock_id: int) -> bool:
            return bool(await holders[0].fetchval(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = $1 AND NOT granted", lock_id
            ))  # fmt: skip

        alone = asyncio.create_task(groupcommit.group_statement(db.engine, WAITS_ON, ["a", 1], key=("k", "a")))
        await until(lambda: waiting_on(1))
        batch = [asyncio.create_task(groupcommit.group_statement(db.engine, WAITS_ON, [k, 2], key=("k", k)))
                 for k in ("b", "c")]  # fmt: skip
        await until(lambda: _ready(groupcommit.queued(db.engine) == 2))
        await holders[0].execute("COMMIT")  # the first goes through; the batch of two then waits on lock 2
        assert await alone == {"k": "a", "waited": False}
        await until(lambda: waiting_on(2))
        await proxy.cut()
        for task in batch:
            with pytest.raises(DBAPIError) as caught:
                await task
            assert caught.value.connection_invalidated
        await proxy.restore()
        await holders[1].execute("COMMIT")
        assert await groupcommit.group_statement(db.engine, WAITS_ON, ["d", 2], key=("k", "d")) == {
            "k": "d", "waited": False
        }  # fmt: skip
    finally:
        for holder in holders:
            await holder.close()
        await db.dispose()
        await proxy.cut()


async def _equals(value: Awaitable[int], expected: int) -> bool:
    return await value == expected


async def _ready(value: bool) -> bool:
    return value


async def _order_nos(db: Database) -> list[str]:
    async with db.engine.connect() as conn:
        return list((await conn.exec_driver_sql("SELECT order_no FROM pay_orders ORDER BY order_no")).scalars())


async def _attempt_ids(db: Database) -> list[str]:
    async with db.engine.connect() as conn:
        return list((await conn.exec_driver_sql("SELECT id FROM pay_attempts ORDER BY id")).scalars())
