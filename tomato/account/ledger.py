"""Posting journal entries: balanced, immutable, booked exactly once per source key.

`post` runs inside the caller's unit of work, so an entry lands together with the state change it explains (a
payout row, an inbox mark) or not at all. Its steps:

1. Insert the journal keyed by `(source_type, source_id, leg)`, doing nothing on conflict. A concurrent twin
   waits on the unique index until the first commits, then finds the row: the same lines (by hash) answer as a
   replay, other lines raise `LedgerConflict`, so history is never contradicted and nothing is written twice.
2. Insert the lines.
3. Move the balances in one global order — (account, bucket) — so two postings never wait on each other in a
   cycle. Hot accounts spread over buckets chosen by the journal's sequence number; merchant accounts have one
   bucket, so a guarded line is a single conditional UPDATE that refuses to go below zero.

On PostgreSQL an entry without guarded lines (payments, anomalies: most of them) does all three in ONE statement
of data-modifying CTEs (`_one_statement_sql`): the lines and balance upserts only happen if the journal row was
inserted, and the upserts run in (account, bucket) order. Entries with a guarded line take the step-by-step path.
`post_committed` (a unit of work of its own) sends such an entry as that one statement alone, autocommitted on a
pooled connection: one round trip and no session machinery, which took 16 writers from about 0.3 × to about
1 × pgbench's TPC-B TPS on the development box (bench/ledger.py).
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import re
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
from sqlalchemy import func, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from tomato.account.accounts import account_type, buckets, credit_normal, normal_balance
from tomato.account.errors import InsufficientBalance, LedgerConflict
from tomato.account.models import Balance, Journal
from tomato.account.models import Line as LineRow
from tomato.core.clock import Clock
from tomato.core.db import Database, current_fence, sqlstate
from tomato.core.ids import Snowflake

RETRYABLE_SQLSTATES = frozenset({"40P01", "40001"})  # deadlock detected, serialization failure


@dataclass(frozen=True)
class Line:
    account: str
    amount: int  # fen: debit > 0, credit < 0, never 0
    guard: bool = False  # refuse if this line takes the account's normal-side balance below zero


@dataclass(frozen=True)
class EntryRequest:
    source_type: str
    source_id: str
    leg: str
    kind: str
    lines: tuple[Line, ...]
    business_date: str
    mch_no: str | None = None
    order_no: str | None = None
    refund_no: str | None = None
    payout_no: str | None = None
    amount: int | None = None
    fee: int | None = None

    def validate(self) -> None:
        """A programming error, not bad input: every caller builds its lines from integers it computed."""
        if not self.lines:
            raise ValueError("an entry needs lines")
        for line in self.lines:
            if isinstance(line.amount, bool) or not isinstance(line.amount, int) or line.amount == 0:
                raise ValueError(f"line amount must be a non-zero int fen: {line!r}")
            account_type(line.account)  # a code outside the chart raises
            if line.guard and buckets(line.account) != 1:
                raise ValueError(f"a guarded line needs a single-bucket account: {line.account}")
        if sum(line.amount for line in self.lines) != 0:
            raise ValueError(f"unbalanced entry {self.source_type}/{self.source_id}/{self.leg}")

    def lines_hash(self) -> str:
        """Order-independent: the same lines in another order are the same entry."""
        canonical = "\n".join(sorted(f"{line.account}|{line.amount}|{int(line.guard)}" for line in self.lines))
        return hashlib.sha256(f"{self.kind}\n{canonical}".encode()).hexdigest()


@dataclass(frozen=True)
class Posted:
    journal_id: str
    replayed: bool  # the key was booked before with the same lines; nothing new was written


def _insert(session: AsyncSession, table: Any) -> Any:
    return postgresql.insert(table) if _dialect(session) == "postgresql" else sqlite.insert(table)


def _dialect(session: AsyncSession) -> str:
    return session.bind.dialect.name if session.bind is not None else "sqlite"


@dataclass
class _Plan:
    seq: int
    journal_id: str
    digest: str
    rows: list[dict[str, Any]]
    moves: dict[tuple[str, int], int]
    guarded: set[tuple[str, int]]


def _plan(ids: Snowflake, now: datetime, req: EntryRequest, spread: int | None = None) -> _Plan:
    """Validates `req` and lays out what posting it writes: the journal id, its lines with their buckets, and the
    balance moves by (account, bucket). `spread` steers the hot accounts' bucket: on PostgreSQL the server process
    id of the connection posting (`_spread`), so concurrent postings — each on its own connection — use different
    buckets and do not wait on each other's hot rows; else a hash of the journal id alone."""
    req.validate()
    seq = ids.next_int()
    journal_id = f"J{seq}"
    moves: dict[tuple[str, int], int] = {}
    guarded: set[tuple[str, int]] = set()
    rows = []
    hashed = zlib.crc32(journal_id.encode())  # the snowflake's low bits are mostly 0: hash it
    # a connection's own group of 8 buckets (of 256), one of them by the journal: concurrent connections whose process
    # ids differ mod 32 never share a hot row, and one connection still spreads its postings over 8 rows
    spread = hashed if spread is None else (spread % 32) * 8 + hashed % 8
    for line in req.lines:
        bucket = spread % buckets(line.account)
        key = (line.account, bucket)
        moves[key] = moves.get(key, 0) + line.amount
        if line.guard:
            guarded.add(key)
        rows.append(
            {
                "id": ids.next_int(),
                "journal_id": journal_id,
                "account": line.account,
                "bucket": bucket,
                "amount": line.amount,
                "business_date": req.business_date,
                "created_at": now,
            }
        )
    return _Plan(seq, journal_id, req.lines_hash(), rows, moves, guarded)


async def post(session: AsyncSession, ids: Snowflake, now: datetime, req: EntryRequest) -> Posted:
    """Books `req` in the caller's unit of work (never commits); see the module docstring."""
    plan = _plan(ids, now, req, await _spread(session))
    seq, journal_id, digest, rows, moves, guarded = (
        plan.seq, plan.journal_id, plan.digest, plan.rows, plan.moves, plan.guarded,
    )  # fmt: skip
    one_statement = _dialect(session) == "postgresql" and not guarded
    if one_statement:  # the common case (payments, anomalies): one round trip for the whole entry
        inserted = await _post_in_one_statement(session, seq, journal_id, digest, req, now, rows, moves)
    else:
        inserted = await _insert_journal(session, seq, journal_id, digest, req, now)
    if not inserted:
        return await _replay(session, req, digest)
    if not one_statement:
        await session.execute(_insert(session, LineRow), rows)
        for key in sorted(moves):  # one global lock order
            await _move(session, key, moves[key], guarded=key in guarded, now=now)
    return Posted(journal_id=journal_id, replayed=False)


async def _replay(session: AsyncSession, req: EntryRequest, digest: str) -> Posted:
    """The key was booked before: a replay when the lines match, else a conflict."""
    existing = (
        await session.execute(
            select(Journal.id, Journal.lines_hash).where(
                Journal.source_type == req.source_type,
                Journal.source_id == req.source_id,
                Journal.leg == req.leg,
            )
        )
    ).one()
    if existing.lines_hash != digest:
        raise LedgerConflict(
            f"{req.source_type} {req.source_id} ({req.leg}) is already booked with other lines",
            details=[{"journal_id": existing.id}],
        )
    return Posted(journal_id=existing.id, replayed=True)


async def post_memo(session: AsyncSession, ids: Snowflake, now: datetime, req: EntryRequest) -> Posted:
    """A journal WITHOUT lines, in the caller's unit of work: a movement the ledger must record (so it is keyed,
    booked once and found by `tomato ledger check`) although it moves no balance — a service-provider payment or
    refund whose fee is 0 (account.booking_provider). Replayed and conflicting like `post`."""
    if req.lines:
        raise ValueError("a memo journal has no lines; post it with `post`")
    seq = ids.next_int()
    digest = req.lines_hash()
    if await _insert_journal(session, seq, f"J{seq}", digest, req, now):
        return Posted(journal_id=f"J{seq}", replayed=False)
    return await _replay(session, req, digest)


async def _spread(session: AsyncSession) -> int | None:
    """PostgreSQL: the server process id of the session's connection (see `_plan`); None elsewhere."""
    if _dialect(session) != "postgresql":
        return None
    conn = await session.connection()
    raw = (await conn.get_raw_connection()).driver_connection
    pid = raw.get_server_pid() if raw is not None else None
    return int(pid) if pid is not None else None


def _journal_values(seq: int, journal_id: str, digest: str, req: EntryRequest, now: datetime) -> dict[str, Any]:
    return {
        "id": journal_id,
        "seq": seq,
        "source_type": req.source_type,
        "source_id": req.source_id,
        "leg": req.leg,
        "lines_hash": digest,
        "kind": req.kind,
        "mch_no": req.mch_no,
        "order_no": req.order_no,
        "refund_no": req.refund_no,
        "payout_no": req.payout_no,
        "amount": req.amount,
        "fee": req.fee,
        "business_date": req.business_date,
        "created_at": now,
    }


async def _insert_journal(
    session: AsyncSession, seq: int, journal_id: str, digest: str, req: EntryRequest, now: datetime
) -> bool:
    inserted = await session.execute(
        _insert(session, Journal)
        .values(**_journal_values(seq, journal_id, digest, req, now))
        .on_conflict_do_nothing(index_elements=["source_type", "source_id", "leg"])
        .returning(Journal.id)
    )
    return inserted.scalar_one_or_none() is not None


_ONE_STATEMENT: dict[tuple[int, int], Any] = {}


def _one_statement_sql(n_lines: int, n_moves: int) -> Any:
    """PostgreSQL: the journal, its lines and the balance upserts as data-modifying CTEs of one statement. The lines
    and balances are written only if the journal row was (a twin waits on the unique key, then writes nothing), and
    the balances are upserted in (account, bucket) order — the global lock order."""
    key = (n_lines, n_moves)
    if key not in _ONE_STATEMENT:
        cols = ", ".join(c.name for c in Journal.__table__.columns)
        casts = {
            "seq": "BIGINT", "amount": "BIGINT", "fee": "BIGINT", "created_at": "TIMESTAMPTZ",
        }  # fmt: skip
        journal_values = ", ".join(
            f"CAST(:j_{c.name} AS {casts.get(c.name, 'VARCHAR')})" for c in Journal.__table__.columns
        )
        lines = ", ".join(
            f"(CAST(:l{i}_id AS BIGINT), CAST(:l{i}_account AS VARCHAR), CAST(:l{i}_bucket AS INTEGER), "
            f"CAST(:l{i}_amount AS BIGINT))"
            for i in range(n_lines)
        )
        moves = ", ".join(
            f"(CAST(:m{i}_account AS VARCHAR), CAST(:m{i}_bucket AS INTEGER), CAST(:m{i}_type AS VARCHAR), "
            f"CAST(:m{i}_amount AS BIGINT), {i})"
            for i in range(n_moves)
        )
        _ONE_STATEMENT[key] = text(
            f"WITH j AS (INSERT INTO ledger_journals ({cols}) VALUES ({journal_values}) "
            "ON CONFLICT (source_type, source_id, leg) DO NOTHING RETURNING id), "
            "l AS (INSERT INTO ledger_lines (id, journal_id, account, bucket, amount, business_date, created_at) "
            f"SELECT v.id, j.id, v.account, v.bucket, v.amount, CAST(:j_business_date AS VARCHAR), "
            f"CAST(:j_created_at AS TIMESTAMPTZ) FROM j "
            f"CROSS JOIN (VALUES {lines}) AS v(id, account, bucket, amount)), "
            "b AS (INSERT INTO ledger_balances (account, bucket, account_type, balance, updated_at) "
            "SELECT v.account, v.bucket, v.account_type, v.amount, CAST(:j_created_at AS TIMESTAMPTZ) "
            f"FROM j CROSS JOIN (VALUES {moves}) AS v(account, bucket, account_type, amount, n) ORDER BY v.n "
            "ON CONFLICT (account, bucket) DO UPDATE SET balance = ledger_balances.balance + EXCLUDED.balance, "
            "updated_at = EXCLUDED.updated_at) "
            "SELECT id FROM j"
        )
    return _ONE_STATEMENT[key]


def _one_statement_params(plan: _Plan, req: EntryRequest, now: datetime) -> dict[str, Any]:
    params: dict[str, Any] = {
        f"j_{k}": v for k, v in _journal_values(plan.seq, plan.journal_id, plan.digest, req, now).items()
    }
    for i, row in enumerate(plan.rows):
        params.update({f"l{i}_id": row["id"], f"l{i}_account": row["account"], f"l{i}_bucket": row["bucket"],
                       f"l{i}_amount": row["amount"]})  # fmt: skip
    for i, (account, bucket) in enumerate(sorted(plan.moves)):
        kind, amount = account_type(account).value, plan.moves[(account, bucket)]
        params.update({f"m{i}_account": account, f"m{i}_bucket": bucket, f"m{i}_type": kind,
                       f"m{i}_amount": amount})  # fmt: skip
    return params


async def _post_in_one_statement(
    session: AsyncSession,
    seq: int,
    journal_id: str,
    digest: str,
    req: EntryRequest,
    now: datetime,
    rows: list[dict[str, Any]],
    moves: dict[tuple[str, int], int],
) -> bool:
    params = _one_statement_params(_Plan(seq, journal_id, digest, rows, moves, set()), req, now)
    conn = await session.connection()  # Core execution: the ORM adds nothing to a text statement but CPU
    result = await conn.execute(_one_statement_sql(len(rows), len(moves)), params)
    return result.scalar_one_or_none() is not None


async def _move(session: AsyncSession, key: tuple[str, int], amount: int, *, guarded: bool, now: datetime) -> None:
    account, bucket = key
    kind = account_type(account)
    # normal-side balance after the move = sign · (raw + amount); it only needs checking when the move lowers it
    lowers = amount > 0 if credit_normal(kind) else amount < 0
    if guarded and lowers:
        floor_ok = (Balance.balance + amount <= 0) if credit_normal(kind) else (Balance.balance + amount >= 0)
        moved = await session.execute(
            update(Balance)
            .where(Balance.account == account, Balance.bucket == bucket, floor_ok)
            .values(balance=Balance.balance + amount, updated_at=now)
            .returning(Balance.balance)
        )
        if moved.scalar_one_or_none() is None:
            raise InsufficientBalance(f"{account} cannot cover {abs(amount)} fen")
        return
    stmt = _insert(session, Balance).values(
        account=account, bucket=bucket, account_type=kind.value, balance=amount, updated_at=now
    )
    await session.execute(
        stmt.on_conflict_do_update(
            index_elements=["account", "bucket"],
            set_={"balance": Balance.balance + stmt.excluded.balance, "updated_at": stmt.excluded.updated_at},
        )
    )


def retryable(exc: DBAPIError) -> bool:
    """A deadlock or serialization failure: the whole unit of work may simply run again."""
    return sqlstate(exc) in RETRYABLE_SQLSTATES


async def post_committed(db: Database, ids: Snowflake, clock: Clock, req: EntryRequest, *, attempts: int = 4) -> Posted:
    """Posts `req` in a unit of work of its own and commits; deadlocks and serialization failures are retried.

    On PostgreSQL an entry without guarded lines, outside a fenced job, is that unit of work as ONE autocommitted
    statement on a pooled connection (like core.writebatch): atomic without BEGIN/COMMIT, so one round trip and
    none of the session machinery."""
    alone = db.dialect == "postgresql" and current_fence() is None and not any(line.guard for line in req.lines)
    for attempt in range(1, attempts + 1):
        try:
            if alone:
                return await _post_alone(db, ids, clock.now(), req)
            async with db.uow() as uow:
                posted = await post(uow.session, ids, clock.now(), req)
                await uow.commit()
                return posted
        except DBAPIError as exc:
            if attempt == attempts or not retryable(exc):
                raise
            await asyncio.sleep(0.005 * attempt)
        except (asyncpg.DeadlockDetectedError, asyncpg.SerializationError):
            if attempt == attempts:
                raise
            await asyncio.sleep(0.005 * attempt)
    raise AssertionError("unreachable")


@functools.lru_cache(maxsize=64)
def _positional(n_lines: int, n_moves: int) -> tuple[str, tuple[str, ...]]:
    """The one statement with asyncpg's $n placeholders, and the parameter names in their order."""
    names: list[str] = []

    def mark(match: re.Match[str]) -> str:
        if match.group(1) not in names:
            names.append(match.group(1))
        return f"${names.index(match.group(1)) + 1}"

    sql = re.sub(r"(?<![:\w]):([a-z][a-z0-9_]*)", mark, _one_statement_sql(n_lines, n_moves).text)
    return sql, tuple(names)


async def _post_alone(db: Database, ids: Snowflake, now: datetime, req: EntryRequest) -> Posted:
    async with db.engine.connect() as conn:
        raw = (await conn.get_raw_connection()).driver_connection
        assert raw is not None
        plan = _plan(ids, now, req, raw.get_server_pid())
        sql, names = _positional(len(plan.rows), len(plan.moves))
        params = _one_statement_params(plan, req, now)
        try:
            if await raw.fetchval(sql, *(params[n] for n in names)) is not None:
                return Posted(journal_id=plan.journal_id, replayed=False)
            existing = await raw.fetchrow(
                "SELECT id, lines_hash FROM ledger_journals WHERE source_type = $1 AND source_id = $2 AND leg = $3",
                req.source_type, req.source_id, req.leg,
            )  # fmt: skip
        except (asyncpg.InterfaceError, OSError, ConnectionError):
            await conn.invalidate()  # a broken connection must not go back to the pool
            raise
    assert existing is not None
    if existing["lines_hash"] != plan.digest:
        raise LedgerConflict(
            f"{req.source_type} {req.source_id} ({req.leg}) is already booked with other lines",
            details=[{"journal_id": existing["id"]}],
        )
    return Posted(journal_id=existing["id"], replayed=True)


async def balances(session: AsyncSession, accounts: Sequence[str]) -> dict[str, int]:
    """Normal-side balances (Σ over buckets) of `accounts`; an account nothing was booked to is 0."""
    result = dict.fromkeys(accounts, 0)
    if not accounts:
        return result
    rows = await session.execute(
        select(Balance.account, func.sum(Balance.balance))
        .where(Balance.account.in_(list(accounts)))
        .group_by(Balance.account)
    )
    for account, raw in rows.all():
        result[account] = normal_balance(account, int(raw or 0))
    return result
