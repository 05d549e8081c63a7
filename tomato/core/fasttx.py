"""A transaction for the few statements every order runs: keyed inserts and guarded updates, nothing else.

SQLAlchemy's per-statement machinery (session, compile-cache lookup, the asyncpg adapter's cursor emulation)
costs about three times the driver's own CPU per statement on this hardware, and create-order runs four of them.
On PostgreSQL `FastTx` sends hand-shaped SQL straight to the pooled asyncpg connection (SQLAlchemy's pool still
owns it); on SQLite it runs the equivalent Core statements, so both backends keep one behaviour. A unique
violation is raised as SQLAlchemy's `IntegrityError` either way.

It is a unit of work like `UnitOfWork`: commit or it rolls back, and guarded HTTP clients refuse to run inside it.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any

import asyncpg
from sqlalchemy import Table, Update, insert, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from tomato.core.db import enter_transaction, leave_transaction

Row = dict[str, Any]


class FastTx:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._pg = engine.dialect.name == "postgresql"
        self._conn: AsyncConnection | None = None
        self._raw: asyncpg.Connection | None = None
        self._raw_tx: Any = None
        self._done = False
        self._token: Any = None

    async def __aenter__(self) -> FastTx:
        self._token = enter_transaction()
        try:
            self._conn = await self._engine.connect()
            if self._pg:
                fairy = await self._conn.get_raw_connection()
                self._raw = fairy.driver_connection
                assert self._raw is not None
                self._raw_tx = self._raw.transaction()
                await self._raw_tx.start()
            else:
                await self._conn.begin()
        except BaseException:
            await self._release(broken=True)
            raise
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        broken = False
        try:
            if not self._done:
                if self._raw_tx is not None:
                    await self._raw_tx.rollback()
                elif self._conn is not None:
                    await self._conn.rollback()
        except Exception:
            broken = True  # the connection is unusable: the pool must not hand it out again
            if exc is None:
                raise
        finally:
            await self._release(broken=broken or (self._raw is not None and self._raw.is_closed()))

    async def _release(self, *, broken: bool) -> None:
        try:
            if self._conn is not None:
                if broken:
                    await self._conn.invalidate()
                await self._conn.close()
        finally:
            self._conn = None
            if self._token is not None:
                leave_transaction(self._token)
                self._token = None

    async def commit(self) -> None:
        if self._raw_tx is not None:
            await self._raw_tx.commit()
        else:
            assert self._conn is not None
            await self._conn.commit()
        self._done = True

    async def insert(self, table: Table, values: Mapping[str, Any]) -> None:
        keys = tuple(values)
        if self._raw is not None:
            await self._pg_call(self._raw.execute, _insert_sql(table.name, keys), [values[k] for k in keys])
        else:
            assert self._conn is not None
            await self._conn.execute(insert(table).values(dict(values)))

    async def update(
        self,
        table: Table,
        key: tuple[str, Any],
        values: Mapping[str, Any],
        *,
        status_in: Sequence[str] | None = None,
        increment: str | None = None,
    ) -> bool:
        """UPDATE … SET values [, increment = increment + 1] WHERE key [AND status IN status_in]: did a row match?"""
        if self._raw is not None:
            sql, args = self._pg_update(table, key, values, status_in, increment, returning=False)
            return not str(await self._pg_call(self._raw.execute, sql, args)).endswith(" 0")
        assert self._conn is not None
        return bool((await self._conn.execute(_core_update(table, key, values, status_in, increment))).rowcount)

    async def update_returning(
        self,
        table: Table,
        key: tuple[str, Any],
        values: Mapping[str, Any],
        *,
        status_in: Sequence[str] | None = None,
        increment: str | None = None,
    ) -> Row | None:
        """`update`, answering the updated row (None when no row matched)."""
        if self._raw is not None:
            sql, args = self._pg_update(table, key, values, status_in, increment, returning=True)
            record = await self._pg_call(self._raw.fetchrow, sql, args)
            return None if record is None else dict(record)
        assert self._conn is not None
        stmt = _core_update(table, key, values, status_in, increment).returning(*table.c)
        row = (await self._conn.execute(stmt)).first()
        return None if row is None else dict(row._mapping)

    @staticmethod
    def _pg_update(
        table: Table,
        key: tuple[str, Any],
        values: Mapping[str, Any],
        status_in: Sequence[str] | None,
        increment: str | None,
        *,
        returning: bool,
    ) -> tuple[str, list[Any]]:
        sets = tuple(values)
        sql = _update_sql(table.name, key[0], sets, status_in is not None, increment, returning)
        args: list[Any] = [key[1], *(values[k] for k in sets)]
        if status_in is not None:
            args.append(list(status_in))
        return sql, args

    @staticmethod
    async def _pg_call(method: Any, sql: str, args: list[Any]) -> Any:
        try:
            return await method(sql, *args)
        except asyncpg.IntegrityConstraintViolationError as exc:
            raise IntegrityError(sql, args, exc) from exc


def _core_update(
    table: Table, key: tuple[str, Any], values: Mapping[str, Any], status_in: Sequence[str] | None,
    increment: str | None,
) -> Update:
    stmt = update(table).where(table.c[key[0]] == key[1]).values(dict(values))
    if status_in is not None:
        stmt = stmt.where(table.c.status.in_(list(status_in)))
    if increment is not None:
        stmt = stmt.values({increment: table.c[increment] + 1})
    return stmt


# Table and column names below come from our own code, never from a request.
@functools.lru_cache(maxsize=256)
def _insert_sql(table: str, keys: tuple[str, ...]) -> str:
    placeholders = ", ".join(f"${i}" for i in range(1, len(keys) + 1))
    return f"INSERT INTO {table} ({', '.join(keys)}) VALUES ({placeholders})"


@functools.lru_cache(maxsize=256)
def _update_sql(
    table: str, key: str, sets: tuple[str, ...], guarded: bool, increment: str | None, returning: bool
) -> str:
    assignments = [f"{col} = ${i}" for i, col in enumerate(sets, start=2)]
    if increment is not None:
        assignments.append(f"{increment} = {increment} + 1")
    sql = f"UPDATE {table} SET {', '.join(assignments)} WHERE {key} = $1"
    if guarded:
        sql += f" AND status = ANY(${len(sets) + 2})"
    return sql + (" RETURNING *" if returning else "")
