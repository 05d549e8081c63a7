"""Database leases: at most one holder of a named job at a time, across any number of processes.

A holder renews its lease while it works; another process takes over only after the lease expired. Each grant
increments `fencing`, so work guarded by a lease can carry the token and storage can reject a stale holder.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import BigInteger, DateTime, String, insert, or_, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column

from tomato.core.clock import utcnow
from tomato.core.db import Base, Database


class JobLease(Base):
    __tablename__ = "job_leases"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    owner: Mapped[str] = mapped_column(String(100))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    fencing: Mapped[int] = mapped_column(BigInteger, default=1)


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
                fencing=JobLease.fencing + 1,
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


async def release(db: Database, name: str, owner: str) -> None:
    async with db.engine.begin() as conn:
        await conn.execute(
            update(JobLease).where(JobLease.name == name, JobLease.owner == owner).values(expires_at=utcnow())
        )
