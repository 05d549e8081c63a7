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
"""

from __future__ import annotations

import asyncio
import hashlib
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from tomato.account.accounts import account_type, buckets, credit_normal, normal_balance
from tomato.account.errors import InsufficientBalance, LedgerConflict
from tomato.account.models import Balance, Journal
from tomato.account.models import Line as LineRow
from tomato.core.clock import Clock
from tomato.core.db import Database
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
    dialect = session.bind.dialect.name if session.bind is not None else "sqlite"
    return postgresql.insert(table) if dialect == "postgresql" else sqlite.insert(table)


async def post(session: AsyncSession, ids: Snowflake, now: datetime, req: EntryRequest) -> Posted:
    """Books `req` in the caller's unit of work (never commits); see the module docstring."""
    req.validate()
    digest = req.lines_hash()
    seq = ids.next_int()
    journal_id = f"J{seq}"
    inserted = await session.execute(
        _insert(session, Journal)
        .values(
            id=journal_id,
            seq=seq,
            source_type=req.source_type,
            source_id=req.source_id,
            leg=req.leg,
            lines_hash=digest,
            kind=req.kind,
            mch_no=req.mch_no,
            order_no=req.order_no,
            refund_no=req.refund_no,
            payout_no=req.payout_no,
            amount=req.amount,
            fee=req.fee,
            business_date=req.business_date,
            created_at=now,
        )
        .on_conflict_do_nothing(index_elements=["source_type", "source_id", "leg"])
        .returning(Journal.id)
    )
    if inserted.scalar_one_or_none() is None:
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

    moves: dict[tuple[str, int], int] = {}
    guarded: set[tuple[str, int]] = set()
    rows = []
    spread = zlib.crc32(journal_id.encode())  # the snowflake's low bits are mostly 0: hash it to pick buckets
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
    await session.execute(_insert(session, LineRow), rows)
    for key in sorted(moves):  # one global lock order
        await _move(session, key, moves[key], guarded=key in guarded, now=now)
    return Posted(journal_id=journal_id, replayed=False)


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


def _retryable(exc: DBAPIError) -> bool:
    orig = getattr(exc, "orig", None)
    code = getattr(orig, "sqlstate", None) or getattr(getattr(orig, "__cause__", None), "sqlstate", None)
    return code in RETRYABLE_SQLSTATES


async def post_committed(db: Database, ids: Snowflake, clock: Clock, req: EntryRequest, *, attempts: int = 4) -> Posted:
    """Posts `req` in a unit of work of its own and commits; deadlocks and serialization failures are retried."""
    for attempt in range(1, attempts + 1):
        try:
            async with db.uow() as uow:
                posted = await post(uow.session, ids, clock.now(), req)
                await uow.commit()
                return posted
        except DBAPIError as exc:
            if attempt == attempts or not _retryable(exc):
                raise
            await asyncio.sleep(0.005 * attempt)
    raise AssertionError("unreachable")


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
