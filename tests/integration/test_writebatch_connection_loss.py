"""Found by the chaos run's PostgreSQL restart: a WriteBatch whose pooled connection died answered the merchant
`500` with an "unhandled error" traceback (asyncpg's own error escaped). It is raised as SQLAlchemy reports a dead
connection — `DBAPIError` with `connection_invalidated` — which the API answers `503 SERVICE_UNAVAILABLE`; the pool
then heals without help."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from sqlalchemy.exc import DBAPIError

from tests.fixtures.tcp_proxy import TcpProxy
from tests.integration.test_writebatch import insert, new_order
from tomato.core.db import Database, create_engine

pytestmark = pytest.mark.services


async def test_a_dead_connection_is_reported_as_invalidated_and_the_pool_heals(pg_url: str) -> None:
    parts = urlsplit(pg_url)
    proxy = TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5432)
    await proxy.start()
    db = Database(create_engine(parts._replace(netloc=f"postgres@127.0.0.1:{proxy.port}").geturl(), pool_size=1))
    try:
        await insert(db, new_order("PX1", "TX1"))  # the pool now holds one live connection
        await proxy.cut()  # PostgreSQL "restarts": that connection dies
        await proxy.restore()
        with pytest.raises(DBAPIError) as caught:
            await insert(db, new_order("PX2", "TX2"))
        assert caught.value.connection_invalidated
        await insert(db, new_order("PX3", "TX3"))  # a new connection: served again
    finally:
        await db.dispose()
        await proxy.cut()
        direct = Database(create_engine(pg_url))
        try:
            async with direct.engine.begin() as conn:
                await conn.exec_driver_sql("DELETE FROM pay_orders WHERE order_no IN ('PX1', 'PX2', 'PX3')")
        finally:
            await direct.dispose()
