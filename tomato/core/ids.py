"""Snowflake ids (41 bits of milliseconds, 10 bits of worker id, 12 bits of sequence) with leased worker ids.

A process leases its worker id in the database (`worker_leases`) with a compare-and-set and renews it in the
background; two live processes therefore never generate with the same worker id. If renewal fails, the
generator stops issuing ids rather than risk a duplicate.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import socket
import threading
import time
import uuid
from datetime import datetime, timedelta

from sqlalchemy import DateTime, Integer, String, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column

from tomato.core.clock import as_utc, utcnow
from tomato.core.db import Base, Database

log = logging.getLogger(__name__)

EPOCH_MS = 1_704_067_200_000  # 2024-01-01T00:00:00Z
WORKER_BITS = 10
SEQUENCE_BITS = 12
MAX_WORKER = (1 << WORKER_BITS) - 1
MAX_SEQUENCE = (1 << SEQUENCE_BITS) - 1
LEASE_TTL = timedelta(seconds=60)


class WorkerLease(Base):
    __tablename__ = "worker_leases"

    worker_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    owner: Mapped[str] = mapped_column(String(100))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class LeaseLost(RuntimeError):
    """The worker-id lease expired or was taken over; issuing more ids could repeat one."""


class Snowflake:
    def __init__(self, worker_id: int) -> None:
        if not 0 <= worker_id <= MAX_WORKER:
            raise ValueError("worker id out of range")
        self.worker_id = worker_id
        self._last_ms = -1
        self._sequence = 0
        self._lock = threading.Lock()
        self.valid = True

    def next_int(self) -> int:
        if not self.valid:
            raise LeaseLost(f"worker id {self.worker_id} is no longer leased")
        with self._lock:
            now = int(time.time() * 1000)
            if now < self._last_ms:  # clock went back: never reuse a past millisecond
                now = self._last_ms
            if now == self._last_ms:
                self._sequence = (self._sequence + 1) & MAX_SEQUENCE
                if self._sequence == 0:
                    while now <= self._last_ms:
                        now = int(time.time() * 1000)
            else:
                self._sequence = 0
            self._last_ms = now
            elapsed = now - EPOCH_MS
            return (elapsed << (WORKER_BITS + SEQUENCE_BITS)) | (self.worker_id << SEQUENCE_BITS) | self._sequence

    def next_id(self, prefix: str) -> str:
        """`P…`, `R…`, `E…`, `W…`: a type letter followed by the decimal snowflake."""
        return f"{prefix}{self.next_int()}"


class WorkerIdLease:
    """Leases one worker id from the database and keeps it alive."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.worker_id: int | None = None
        self._task: asyncio.Task[None] | None = None
        self.snowflake: Snowflake | None = None

    async def acquire(self) -> Snowflake:
        for _ in range(20):
            worker_id = await self._try_acquire()
            if worker_id is not None:
                self.worker_id = worker_id
                self.snowflake = Snowflake(worker_id)
                self._task = asyncio.create_task(self._renew_forever(), name="worker-id-lease")
                return self.snowflake
        raise RuntimeError("no free snowflake worker id")

    async def _try_acquire(self) -> int | None:
        now = utcnow()
        async with self._db.engine.begin() as conn:
            rows = (await conn.execute(select(WorkerLease.worker_id, WorkerLease.expires_at))).all()
        taken = {r.worker_id for r in rows if as_utc(r.expires_at) > now}
        stale = [r.worker_id for r in rows if as_utc(r.expires_at) <= now]
        free = [w for w in range(MAX_WORKER + 1) if w not in taken and w not in stale]
        candidates = random.sample(free, min(len(free), 5)) + stale[:5]
        for worker_id in candidates:
            try:
                async with self._db.engine.begin() as conn:
                    if worker_id in stale:
                        res = await conn.execute(
                            update(WorkerLease)
                            .where(WorkerLease.worker_id == worker_id, WorkerLease.expires_at <= now)
                            .values(owner=self.owner, expires_at=now + LEASE_TTL)
                        )
                        if res.rowcount != 1:
                            continue
                    else:
                        await conn.execute(
                            insert(WorkerLease).values(
                                worker_id=worker_id, owner=self.owner, expires_at=now + LEASE_TTL
                            )
                        )
                return int(worker_id)
            except IntegrityError:
                continue
        return None

    async def renew(self) -> None:
        now = utcnow()
        async with self._db.engine.begin() as conn:
            res = await conn.execute(
                update(WorkerLease)
                .where(WorkerLease.worker_id == self.worker_id, WorkerLease.owner == self.owner)
                .values(expires_at=now + LEASE_TTL)
            )
        if res.rowcount != 1 and self.snowflake is not None:
            self.snowflake.valid = False
            raise LeaseLost(f"worker id {self.worker_id} lease lost")

    async def _renew_forever(self) -> None:
        while True:
            await asyncio.sleep(LEASE_TTL.total_seconds() / 3)
            try:
                await self.renew()
            except LeaseLost:
                log.error("snowflake worker lease lost; id generation stopped")
                return
            except Exception:  # database blip: try again next round; the lease still has time left
                log.warning("snowflake worker lease renewal failed", exc_info=True)

    async def release(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None
        if self.worker_id is None:
            return
        try:
            async with self._db.engine.begin() as conn:
                await conn.execute(
                    update(WorkerLease)
                    .where(WorkerLease.worker_id == self.worker_id, WorkerLease.owner == self.owner)
                    .values(expires_at=utcnow() + timedelta(seconds=1))  # outlive our last millisecond
                )
        except Exception:
            log.warning("could not release snowflake worker lease", exc_info=True)
