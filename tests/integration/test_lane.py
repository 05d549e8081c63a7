"""core.lane: the hot path's one-statement work borrows a few pooled PostgreSQL connections held checked out. They
are reused, a duplicate key leaves the connection in the lane, a dead one is reported as SQLAlchemy reports it and
replaced, a cancelled use gives its connection back to the pool, and `dispose` returns every one of them."""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

import pytest
from sqlalchemy.exc import DBAPIError, IntegrityError

from tests.fixtures.tcp_proxy import TcpProxy
from tests.integration.test_writebatch import insert, new_order
from tomato.core.db import Database, create_engine
from tomato.core.lane import lane_of
from tomato.core.writebatch import fetch_row, pg_statement
from tomato.pay.repository import ORDERS

pytestmark = pytest.mark.services
NUMBERS = ("PL1", "PL2", "PL3", "PL4")


async def cleanup(pg_url: str) -> None:
    direct = Database(create_engine(pg_url, pool_size=1))
    try:
        async with direct.engine.begin() as conn:
            await conn.exec_driver_sql("DELETE FROM pay_orders WHERE order_no IN ('PL1', 'PL2', 'PL3', 'PL4')")
    finally:
        await direct.dispose()


async def test_statements_reuse_the_lane_and_dispose_gives_every_connection_back(pg_url: str) -> None:
    db = Database(create_engine(pg_url, pool_size=16))
    pool = db.engine.sync_engine.pool
    lane = lane_of(db.engine)
    try:
        assert lane is not None
        await insert(db, new_order("PL1", "TL1"))
        pids = {(await pg_statement(db.engine, "SELECT pg_backend_pid() AS pid", [], fetch=True) or {})["pid"]
                for _ in range(5)}  # fmt: skip
        assert len(pids) == 1  # one lane connection served every statement, one after the other
        assert pool.checkedout() == 1  # held by the lane, between uses too
        with pytest.raises(IntegrityError):
            await insert(db, new_order("PL2", "TL1"))  # the same out_trade_no: nothing written
        assert pool.checkedout() == 1
        row = await fetch_row(db.engine, ORDERS, {"order_no": "PL1", "app_id": "A1"})
        assert row is not None and row["out_trade_no"] == "TL1" and row["metadata_json"] == '{"k":"中"}'
        assert await fetch_row(db.engine, ORDERS, {"order_no": "PL2", "app_id": "A1"}) is None
        assert await fetch_row(db.engine, ORDERS, {"order_no": "PL1", "app_id": "A2"}) is None  # another app's

        # concurrent statements: the lane opens up to its size, the rest take the ordinary path
        async def sleeper() -> None:
            await pg_statement(db.engine, "SELECT pg_sleep(0.05)", [], fetch=False)

        await asyncio.gather(*(sleeper() for _ in range(6)))
        assert pool.checkedout() == 4  # min(16, 16 // 4): the lane's four, idle again
    finally:
        await db.dispose()
        await cleanup(pg_url)
    assert pool.checkedout() == 0


async def test_a_cancelled_statement_gives_its_connection_back_to_the_pool(pg_url: str) -> None:
    db = Database(create_engine(pg_url, pool_size=8))
    pool = db.engine.sync_engine.pool
    try:
        task = asyncio.create_task(pg_statement(db.engine, "SELECT pg_sleep(30)", [], fetch=False))
        async with asyncio.timeout(10):
            while pool.checkedout() == 0:  # the statement is under way on the lane's connection
                await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert pool.checkedout() == 0
        await insert(db, new_order("PL3", "TL3"))  # and the lane serves again
        assert pool.checkedout() == 1
    finally:
        await db.dispose()
        await cleanup(pg_url)


async def test_a_dead_lane_connection_is_reported_as_invalidated_and_replaced(pg_url: str) -> None:
    parts = urlsplit(pg_url)
    proxy = TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5432)
    await proxy.start()
    db = Database(create_engine(parts._replace(netloc=f"postgres@127.0.0.1:{proxy.port}").geturl(), pool_size=8))
    try:
        assert lane_of(db.engine) is not None
        await insert(db, new_order("PL1", "TL1"))  # the lane now holds one live connection
        await proxy.cut()  # PostgreSQL "restarts": that connection dies
        await proxy.restore()
        with pytest.raises(DBAPIError) as caught:
            await insert(db, new_order("PL2", "TL2"))
        assert caught.value.connection_invalidated
        assert db.engine.sync_engine.pool.checkedout() == 0  # not kept in the lane
        await insert(db, new_order("PL4", "TL4"))  # a new connection: served again
    finally:
        await db.dispose()
        await proxy.cut()
        await cleanup(pg_url)
