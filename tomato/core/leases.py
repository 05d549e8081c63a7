"""Database leases: at most one holder of a named job at a time, across any number of processes.

A holder renews its lease while it works (`HeldLease.kept`, every TTL/3); another process takes over only after
the lease expired. Each grant to a new holder increments `fencing` (a renewal keeps it), and the work a lease
guards is fenced by it: every unit of work the job opens checks that the lease was not lost, and its commit first
re-reads the lease row in the same transaction (PostgreSQL: `FOR SHARE`, so a takeover waits for that commit;
SQLite: the transaction holds the database write lock from BEGIN). A job whose lease went to another holder
therefore stops at its next write, and nothing it writes after the takeover commits.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta

from sqlalchemy import BigInteger, DateTime, String, case, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from tomato.core.clock import utcnow
from tomato.core.db import Base, Database, fenced

log = logging.getLogger(__name__)


class JobLease(Base):
    __tablename__ = "job_leases"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    owner: Mapped[str] = mapped_column(String(100))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    fencing: Mapped[int] = mapped_column(BigInteger, default=1)


class LeaseLost(BaseException):
    """The lease went to another holder: the job must stop. A BaseException, like `CancelledError`, so that a
    job's per-item `except Exception` does not swallow it and go on to its next item."""


async def try_acquire(db: Database, name: str, owner: str, ttl: timedelta) -> int | None:
    """Returns the fencing token when `owner` now holds `name` (new grant or renewal), else None."""
    now = utcnow()
    async with db.engine.begin() as conn:
        res = await conn.execute(
            update(JobLease)
            .where(JobLease.name == name, or_(JobLease.owner == owner, JobLease.expires_at <= now))
            .values(
                owner=owner,
                expires_at=now + ttl,
                fencing=case((JobLease.owner == owner, JobLease.fencing), else_=JobLease.fencing + 1),
            )
            .returning(JobLease.fencing)
        )
        row = res.first()
        if row is not None:
            return int(row[0])
    try:
        async with db.engine.begin() as conn:
            await conn.execute(insert(JobLease).values(name=name, owner=owner, expires_at=now + ttl, fencing=1))
        return 1
    except IntegrityError:
        return None


async def renew(db: Database, name: str, owner: str, fencing: int, ttl: timedelta) -> bool:
    """Extends the grant `fencing` of `owner`; False when the lease has gone to another holder since."""
    async with db.engine.begin() as conn:
        res = await conn.execute(
            update(JobLease)
            .where(JobLease.name == name, JobLease.owner == owner, JobLease.fencing == fencing)
            .values(expires_at=utcnow() + ttl)
        )
        return int(res.rowcount) == 1


async def release(db: Database, name: str, owner: str) -> None:
    async with db.engine.begin() as conn:
        await conn.execute(
            update(JobLease).where(JobLease.name == name, JobLease.owner == owner).values(expires_at=utcnow())
        )


class HeldLease:
    """A granted lease: renewed while `kept()` runs, and the write fence (core.db.WriteFence) of the work in it."""

    def __init__(self, db: Database, name: str, owner: str, fencing: int, ttl: timedelta) -> None:
        self._db, self.name, self.owner, self.fencing, self._ttl = db, name, owner, fencing, ttl
        self.lost = False
        self.renewals = 0
        self._done = asyncio.Event()

    @asynccontextmanager
    async def kept(self) -> AsyncIterator[None]:
        """Renews every TTL/3 in the background; units of work opened inside are fenced by this lease. The renewal
        task is stopped between statements, never cancelled inside one (SQLite would keep its write lock)."""
        renewing = asyncio.create_task(self._renew_until_done(), name=f"lease:{self.name}")
        try:
            with fenced(self):
                yield
        finally:
            self._done.set()
            await renewing

    async def _renew_until_done(self) -> None:
        interval = self._ttl.total_seconds() / 3
        while not self._done.is_set():
            try:
                await asyncio.wait_for(self._done.wait(), interval)
                return
            except TimeoutError:
                pass
            try:
                if not await renew(self._db, self.name, self.owner, self.fencing, self._ttl):
                    self.lost = True
                    log.warning("lease %s went to another holder; its job stops at its next write", self.name)
                    return
                self.renewals += 1
            except Exception:
                log.warning("could not renew lease %s; trying again in %.1fs", self.name, interval, exc_info=True)

    def check(self) -> None:
        if self.lost:
            raise LeaseLost(self.name)

    async def confirm(self, session: AsyncSession) -> None:
        stmt = select(JobLease.fencing).where(
            JobLease.name == self.name, JobLease.owner == self.owner, JobLease.fencing == self.fencing
        )
        if session.bind is not None and session.bind.dialect.name == "postgresql":
            stmt = stmt.with_for_update(read=True)  # a takeover now waits until this transaction has committed
        if (await session.execute(stmt)).first() is None:
            self.lost = True
            raise LeaseLost(self.name)
