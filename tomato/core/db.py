"""Async engine, the declarative base every context's tables hang off, and the unit of work.

SQLite (the embedded default) runs in WAL mode with a busy timeout and takes the write lock when a
transaction begins (`BEGIN IMMEDIATE`), so concurrent writers wait instead of failing with
`database is locked` on a read→write lock upgrade.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
from collections.abc import AsyncIterator, Coroutine, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from types import TracebackType
from typing import Any, Protocol, cast

from sqlalchemy import MetaData, String, any_, bindparam, event
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.util.concurrency import await_, in_greenlet

from tomato.core.errors import HttpInsideTransaction
from tomato.core.lane import close_lane, open_lane

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


_in_transaction: contextvars.ContextVar[bool] = contextvars.ContextVar("tomato_in_transaction", default=False)


class WriteFence(Protocol):
    """A right to write that can be lost (a job's lease): checked when a unit of work opens, and confirmed inside
    its transaction just before the commit, where losing it raises and the unit of work rolls back."""

    def check(self) -> None: ...
    async def confirm(self, session: AsyncSession) -> None: ...


_fence: contextvars.ContextVar[WriteFence | None] = contextvars.ContextVar("tomato_write_fence", default=None)


@contextmanager
def fenced(fence: WriteFence) -> Iterator[None]:
    """Every unit of work opened in this context (and the tasks it starts) is guarded by `fence`."""
    token = _fence.set(fence)
    try:
        yield
    finally:
        _fence.reset(token)


def current_fence() -> WriteFence | None:
    """The fence units of work opened here are guarded by (None outside a fenced job)."""
    return _fence.get()


def in_transaction() -> bool:
    return _in_transaction.get()


def forbid_http_in_transaction(what: str) -> None:
    """Called by every outbound HTTP client before a request."""
    if _in_transaction.get():
        raise HttpInsideTransaction(f"{what}: HTTP call while a unit of work is open")


def sqlstate(exc: BaseException) -> str | None:
    """The SQLSTATE of a database error as asyncpg reports it (on the driver's exception or its cause), else None."""
    orig = getattr(exc, "orig", None)
    code = getattr(orig, "sqlstate", None) or getattr(getattr(orig, "__cause__", None), "sqlstate", None)
    return code if isinstance(code, str) else None


def create_engine(url: str, *, pool_size: int = 40) -> AsyncEngine:
    if url.startswith("sqlite"):
        engine = create_async_engine(url, connect_args={"timeout": 30})
        _configure_sqlite(engine)
        return engine
    # No pre-ping (three round trips on every checkout); connections are recycled instead, and a connection
    # that died with the server fails one unit of work, which rolls back as any error does. No overflow: the
    # pool opens connections lazily up to `pool_size` and keeps them, where overflow connections would be
    # opened and closed again on every burst above the pool size (a TLS negotiation attempt and a backend each).
    return create_async_engine(url, pool_size=pool_size, max_overflow=0, pool_recycle=1800)


def _configure_sqlite(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we emit BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    @event.listens_for(engine.sync_engine, "invalidate")
    def _on_invalidate(dbapi_connection: Any, _record: Any, _exc: BaseException | None) -> None:
        """A task cancelled inside a statement gets its connection invalidated and closed. sqlite3 closes a
        connection with an unfinished statement as a zombie that keeps its transaction — and the write lock — for as
        long as that statement lives; every later writer then waits out the busy timeout, and the connection's
        thread may still be at work when its event loop is gone. So interrupt the statement (sqlite3's interrupt is
        safe from any thread), then roll back (in the connection's thread; shielded, so a second cancel cannot stop
        it)."""
        driver = dbapi_connection.driver_connection
        with contextlib.suppress(Exception):
            driver._conn.interrupt()  # aiosqlite's own `interrupt()` is this call wrapped in a coroutine
        if not in_greenlet():
            return  # garbage collection of a lost connection: aiosqlite stops its thread, nothing to await
        with contextlib.suppress(Exception):
            await_(asyncio.shield(driver.rollback()))


def one_of(s: AsyncSession, column: Any, ids: Sequence[str]) -> ColumnElement[bool]:
    """`column` is one of `ids`. On PostgreSQL `= ANY($1)`: `IN ($1, …, $n)` is another statement text for every
    list length, so asyncpg would prepare (a round trip, a parse and a plan) nearly every batch again."""
    if s.bind is not None and s.bind.dialect.name == "postgresql":
        return cast(ColumnElement[bool], column == any_(bindparam(None, list(ids), type_=postgresql.ARRAY(String))))
    return cast(ColumnElement[bool], column.in_(ids))


class Database:
    """Owns the engine and hands out sessions and units of work."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.session_factory = async_sessionmaker(engine, expire_on_commit=False, autoflush=True)
        open_lane(engine)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def uow(self) -> UnitOfWork:
        return UnitOfWork(self.session_factory)

    @asynccontextmanager
    async def connect(self) -> AsyncIterator[AsyncConnection]:
        async with self.engine.connect() as conn:
            yield conn

    async def dispose(self) -> None:
        await close_lane(self.engine)
        await self.engine.dispose()


async def run_to_the_end(step: Coroutine[Any, Any, None]) -> None:
    """Runs `step` to its end even when the caller is cancelled meanwhile, then lets the cancellation through.

    Handing a connection back resets it (a rollback): a cancel landing there (a job stopped at shutdown) makes
    SQLAlchemy's pool log "Exception during reset or similar" with a traceback and throw the connection away.
    A second cancel stops the waiting, not the step (which then ends on its own)."""
    task = asyncio.ensure_future(step)
    try:
        await asyncio.shield(task)
    except asyncio.CancelledError:
        if task.done():
            raise
        task.add_done_callback(_retrieve)
        await asyncio.wait({task})
        raise


def _retrieve(task: asyncio.Future[None]) -> None:
    """Reads the outcome of a step its caller stopped waiting for, so asyncio does not report it at exit."""
    if not task.cancelled():
        task.exception()


class UnitOfWork:
    """`async with db.uow() as uow:` … `await uow.commit()`; leaving without commit rolls back.

    While open, the `in_transaction` flag is set so guarded HTTP clients refuse to run.
    """

    session: AsyncSession

    def __init__(self, session_factory: async_sessionmaker[AsyncSession]) -> None:
        self._factory = session_factory
        self._token: contextvars.Token[bool] | None = None
        self.committed = False

    async def __aenter__(self) -> UnitOfWork:
        fence = _fence.get()
        if fence is not None:
            fence.check()
        self.session = self._factory()
        self._token = _in_transaction.set(True)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            await run_to_the_end(self._release())
        finally:
            if self._token is not None:
                _in_transaction.reset(self._token)

    async def _release(self) -> None:
        if not self.committed:
            self.session.expunge_all()  # keep what was read usable after the (read-only) unit of work
            await self.session.rollback()
        await self.session.close()

    async def commit(self) -> None:
        fence = _fence.get()
        if fence is not None:
            await fence.confirm(self.session)
        await self.session.commit()
        self.committed = True

    async def flush(self) -> None:
        await self.session.flush()
