"""Writes that go to the database together, atomically, in one round trip: the order hot path's unit of work.

SQLAlchemy's per-statement machinery (session, compile-cache lookup, the asyncpg adapter's cursor emulation)
costs about three times the driver's own CPU per statement here, and BEGIN/COMMIT are round trips of their own.
Create-order writes twice (order + first attempt; attempt result + PAYING transition), so each is a `WriteBatch`:

* PostgreSQL: the writes become one statement — data-modifying CTEs ahead of the last write — sent straight to
  the pooled asyncpg connection (SQLAlchemy's pool still owns it). One statement is atomic without BEGIN/COMMIT.
  Identical statements of concurrent batches share a round trip and a commit (core.groupcommit).
* SQLite (embedded): the equivalent Core statements, in order, in one transaction.

`fetch_row` is the matching keyed read (create's repeat, the query-order API). Only keyed inserts and keyed,
optionally status-guarded updates are offered; the last write may ask for the
updated row back. A unique violation is raised as SQLAlchemy's `IntegrityError` on both backends, and then
nothing of the batch is written; a connection that died under the batch as `DBAPIError` with
`connection_invalidated` (whether a statement that was sent landed is then unknown, as for any lost commit).
Table and column names come from our code, never from a request.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Table, Update, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from tomato.core.groupcommit import group_statement
from tomato.core.rawpg import pg_statement

Row = dict[str, Any]


@dataclass(frozen=True)
class _Write:
    table: Table
    kind: str  # "insert" | "update"
    columns: tuple[str, ...]  # inserted or SET columns
    values: tuple[Any, ...]
    key: tuple[str, Any] | None = None
    status_in: tuple[str, ...] | None = None
    increment: str | None = None

    @property
    def shape(self) -> tuple[Any, ...]:
        return (self.table.name, self.kind, self.columns, self.key and self.key[0], self.status_in is not None,
                self.increment)  # fmt: skip

    @property
    def args(self) -> list[Any]:
        if self.kind == "insert":
            return list(self.values)
        assert self.key is not None
        tail = [list(self.status_in)] if self.status_in is not None else []
        return [self.key[1], *self.values, *tail]


class WriteBatch:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._writes: list[_Write] = []
        self._returning = False

    def insert(self, table: Table, values: Mapping[str, Any]) -> None:
        self._add(_Write(table, "insert", tuple(values), tuple(values.values())))

    def update(
        self,
        table: Table,
        key: tuple[str, Any],
        values: Mapping[str, Any],
        *,
        status_in: Sequence[str] | None = None,
        increment: str | None = None,
        returning: bool = False,
    ) -> None:
        """UPDATE … SET values [, increment = increment + 1] WHERE key [AND status IN status_in]; with `returning`
        (last write only) `commit` answers the updated row, or None when no row matched."""
        self._add(_Write(table, "update", tuple(values), tuple(values.values()), key,
                         tuple(status_in) if status_in is not None else None, increment))  # fmt: skip
        self._returning = returning

    def _add(self, write: _Write) -> None:
        if self._returning:
            raise ValueError("the write answering a row must be the batch's last")
        self._writes.append(write)

    async def commit(self) -> Row | None:
        if not self._writes:
            return None
        if self._engine.dialect.name == "postgresql":
            return await self._commit_pg()
        return await self._commit_core()

    async def _commit_pg(self) -> Row | None:
        sql = _combined_sql(tuple(w.shape for w in self._writes), self._returning)
        args = [a for w in self._writes for a in w.args]
        return await group_statement(self._engine, sql, args, key=self._writes[-1].key if self._returning else None)

    async def _commit_core(self) -> Row | None:
        row: Row | None = None
        async with self._engine.begin() as conn:
            for i, w in enumerate(self._writes):
                if w.kind == "insert":
                    await conn.execute(insert(w.table).values(dict(zip(w.columns, w.values, strict=True))))
                    continue
                stmt = _core_update(w)
                if self._returning and i == len(self._writes) - 1:
                    found = (await conn.execute(stmt.returning(*w.table.c))).first()
                    row = None if found is None else dict(found._mapping)
                else:
                    await conn.execute(stmt)
        return row


async def fetch_row(engine: AsyncEngine, table: Table, where: Mapping[str, Any]) -> Row | None:
    """The row of `table` whose columns equal `where` (keyed: at most one), as a dict, or None; no ORM object and
    no session. PostgreSQL: one statement on the pooled asyncpg connection; SQLite: the Core select."""
    if engine.dialect.name == "postgresql":
        return await pg_statement(engine, _select_sql(table.name, tuple(where)), list(where.values()), fetch=True)
    stmt = select(table).where(*(table.c[k] == v for k, v in where.items()))
    async with engine.connect() as conn:
        found = (await conn.execute(stmt)).first()
    return None if found is None else dict(found._mapping)


@functools.lru_cache(maxsize=64)
def _select_sql(table: str, columns: tuple[str, ...]) -> str:
    return f"SELECT * FROM {table} WHERE " + " AND ".join(f"{c} = ${i}" for i, c in enumerate(columns, start=1))


def _core_update(w: _Write) -> Update:
    assert w.key is not None
    stmt = update(w.table).where(w.table.c[w.key[0]] == w.key[1]).values(dict(zip(w.columns, w.values, strict=True)))
    if w.status_in is not None:
        stmt = stmt.where(w.table.c.status.in_(list(w.status_in)))
    if w.increment is not None:
        stmt = stmt.values({w.increment: w.table.c[w.increment] + 1})
    return stmt


@functools.lru_cache(maxsize=256)
def _combined_sql(shapes: tuple[tuple[Any, ...], ...], returning: bool) -> str:
    parts: list[str] = []
    n = 0  # placeholders used so far
    for table, kind, columns, key, guarded, increment in shapes:
        if kind == "insert":
            marks = ", ".join(f"${n + i}" for i in range(1, len(columns) + 1))
            parts.append(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})")
            n += len(columns)
            continue
        sets = [f"{col} = ${n + i}" for i, col in enumerate(columns, start=2)]
        if increment is not None:
            sets.append(f"{increment} = {increment} + 1")
        sql = f"UPDATE {table} SET {', '.join(sets)} WHERE {key} = ${n + 1}"
        n += 1 + len(columns)
        if guarded:
            n += 1
            sql += f" AND status = ANY(${n})"
        parts.append(sql)
    if returning:
        parts[-1] += " RETURNING *"
    if len(parts) == 1:
        return parts[0]
    ctes = ", ".join(f"w{i} AS ({sql})" for i, sql in enumerate(parts[:-1]))
    return f"WITH {ctes} {parts[-1]}"
