"""The booking consumer: reads the outbox itself — the durable source — in commit order and books each event.

Rows are read by `outbox_events.position` (core.positions: numbered in commit order, with no gap a later commit
could fill), after the consumer's cursor (`ledger_cursors`). Events are booked in chunks of up to 50 per unit of
work, each with its inbox row, and the cursor moves in the same unit of work (`booking.book`), so a crash at any
point loses nothing and doubles nothing: what committed is recorded and skipped when read again, what did not is
read again. An event that fails on its own (bad facts, a conflict) sends its chunk back to be booked one by one.
Rows of other types are passed over and the cursor moved past them.

One consumer at a time: the loop holds a database lease (core.leases) and every unit of work it opens is fenced by
it, so a consumer that lost its lease (paused, partitioned) stops at its next write and commits nothing after the
takeover. Other processes wait for the lease. Latency: a poll every `poll_s` (0.25 s), which also numbers newly
committed outbox rows (the relay does so too, but only on its own poll when pay runs in another process).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError

from tomato.account.booking import BOOKED_EVENTS, BadFacts, Booked, Event, book, ensure_cursor, move_cursor, reject
from tomato.account.errors import InsufficientBalance, LedgerConflict
from tomato.account.ledger import retryable
from tomato.account.models import BookingCursor
from tomato.core.clock import Clock
from tomato.core.db import Database, sqlstate
from tomato.core.ids import Snowflake
from tomato.core.leases import HeldLease, LeaseLost, release, try_acquire
from tomato.core.outbox import OutboxEvent
from tomato.core.positions import assign_positions

log = logging.getLogger(__name__)

CURSOR = "ledger.booking"
LEASE = "ledger.booking"
ATTEMPTS = 5  # per event: deadlocks, serialization failures, a pending balance lowered by a concurrent settlement

Fault = Callable[[str, Event], Awaitable[None]]


def _refused_values(exc: DBAPIError) -> bool:
    """A data exception (SQLSTATE class 22: a value too long, out of range) or an integrity violation (23): the
    event's own values, refused the same way on every attempt."""
    if isinstance(exc, (DataError, IntegrityError)):
        return True
    code = sqlstate(exc)
    return code is not None and code[:2] in ("22", "23")


@dataclass
class BookingStats:
    booked: int = 0
    duplicate: int = 0
    skipped: int = 0  # no facts, or a kind that moves no money
    rejected: int = 0  # facts that make no journal, or a journal that contradicts one booked before
    failed_rounds: int = 0
    position: int = 0  # the cursor as last read or moved
    outcomes: dict[str, int] = field(default_factory=dict)

    def count(self, outcome: str) -> None:
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1
        if outcome in ("booked", "duplicate", "skipped", "rejected"):
            setattr(self, outcome, getattr(self, outcome) + 1)


class BookingConsumer:
    def __init__(
        self,
        db: Database,
        ids: Snowflake,
        clock: Clock,
        *,
        batch_size: int = 200,
        chunk_size: int = 50,
        poll_s: float = 0.25,
        lease_ttl_s: float = 30.0,
        fault: Fault | None = None,
    ) -> None:
        self._db, self._ids, self._clock = db, ids, clock
        self.batch_size, self.chunk_size, self.poll_s = batch_size, chunk_size, poll_s
        self._ttl = timedelta(seconds=lease_ttl_s)
        self._owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._fault = fault  # tests: called between the entry and the cursor move, inside the unit of work
        self._wake = asyncio.Event()
        self.stats = BookingStats()

    def wake(self) -> None:
        """A hint that events were committed: the next round starts now instead of after the poll interval."""
        self._wake.set()

    # --- one round -------------------------------------------------------------------------------------------

    async def cursor(self) -> int:
        async with self._db.engine.connect() as conn:
            found = (
                await conn.execute(select(BookingCursor.position).where(BookingCursor.name == CURSOR))
            ).scalar_one_or_none()
        if found is None:
            async with self._db.uow() as uow:
                found = await ensure_cursor(uow.session, CURSOR, self._clock.now())
                await uow.commit()
        self.stats.position = int(found)
        return self.stats.position

    async def run_once(self) -> int:
        """Numbers newly committed outbox rows, then books the next batch after the cursor; returns how many
        outbox rows it read (booked or passed over)."""
        await assign_positions(self._db)
        after = await self.cursor()
        async with self._db.engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(
                        OutboxEvent.id,
                        OutboxEvent.event_type,
                        OutboxEvent.aggregate_id,
                        OutboxEvent.position,
                        OutboxEvent.facts,
                    )
                    .where(OutboxEvent.position > after)
                    .order_by(OutboxEvent.position)
                    .limit(self.batch_size)
                )
            ).all()
        if not rows:
            return 0
        events = [
            Event(row.id, row.event_type, row.aggregate_id, row.position, row.facts)
            for row in rows
            if row.event_type in BOOKED_EVENTS
        ]
        for start in range(0, len(events), self.chunk_size):
            await self.book_chunk(events[start : start + self.chunk_size])
        last = int(rows[-1].position)
        if self.stats.position < last:  # the batch ended with rows of other types: move past them
            async with self._db.uow() as uow:
                await move_cursor(uow.session, CURSOR, last, self._clock.now())
                await uow.commit()
            self.stats.position = last
        return len(rows)

    async def book_chunk(self, events: list[Event]) -> None:
        """Several events in one unit of work (one commit, one cursor move): what a busy outbox needs, since one
        process books. Anything a single event can cause (bad facts, a conflict, a lowered pending, a deadlock)
        rolls the chunk back and books its events one by one instead; anything else (a crash) propagates."""
        if len(events) == 1:
            await self.book_one(events[0])
            return
        try:
            results = []
            async with self._db.uow() as uow:
                for event in events:
                    results.append(await book(uow.session, self._ids, self._clock.now(), event))
                    if self._fault is not None:
                        await self._fault("after_entry", event)
                positions = [e.position for e in events if e.position is not None]
                if positions:
                    await move_cursor(uow.session, CURSOR, max(positions), self._clock.now())
                await uow.commit()
        except (BadFacts, LedgerConflict, ValueError, InsufficientBalance, DBAPIError) as exc:
            if isinstance(exc, DBAPIError) and not (retryable(exc) or _refused_values(exc)):
                raise  # the database is unreachable or the like: the round fails and is retried as a whole
            for event in events:
                await self.book_one(event)
            return
        for event, result in zip(events, results, strict=True):
            self._after(event, result)

    async def book_one(self, event: Event) -> Booked:
        """Books one event with its inbox row and the cursor move in one unit of work, retrying what a retry can
        cure; an event that can never be booked is recorded as rejected and the cursor moves past it."""
        for attempt in range(1, ATTEMPTS + 1):
            try:
                async with self._db.uow() as uow:
                    result = await book(uow.session, self._ids, self._clock.now(), event)
                    if self._fault is not None:
                        await self._fault("after_entry", event)
                    if event.position is not None:
                        await move_cursor(uow.session, CURSOR, event.position, self._clock.now())
                    await uow.commit()
            except (BadFacts, LedgerConflict, ValueError) as exc:
                result = await self._reject(event, f"{type(exc).__name__}: {exc}")
            except InsufficientBalance:
                if attempt == ATTEMPTS:
                    raise
                continue  # pending went down between the read and the guarded line: read it again
            except DBAPIError as exc:
                if _refused_values(exc):  # the same every time: never let one event stall booking
                    result = await self._reject(event, f"the database refused its values: {str(exc.orig)[:300]}")
                    self._after(event, result)
                    return result
                if attempt == ATTEMPTS or not retryable(exc):
                    raise
                await asyncio.sleep(0.01 * attempt)
                continue
            self._after(event, result)
            return result
        raise AssertionError("unreachable")

    async def _reject(self, event: Event, note: str) -> Booked:
        log.error("ledger: event %s (%s) cannot be booked: %s", event.id, event.type, note)
        async with self._db.uow() as uow:
            await reject(uow.session, event, self._clock.now(), note)
            if event.position is not None:
                await move_cursor(uow.session, CURSOR, event.position, self._clock.now())
            await uow.commit()
        return Booked("rejected", note=note)

    def _after(self, event: Event, result: Booked) -> None:
        self.stats.count(result.outcome)
        if event.position is not None:
            self.stats.position = max(self.stats.position, event.position)
        if result.outcome == "skipped":
            log.warning("ledger: event %s (%s) skipped: %s", event.id, event.type, result.note)

    # --- the loop ------------------------------------------------------------------------------------------

    async def run_forever(self, stop: asyncio.Event) -> None:
        """Books until `stop` is set, holding the booking lease while it does; waits for the lease otherwise."""
        try:
            while not stop.is_set():
                fencing = await self._acquire()
                if fencing is None:
                    await self._pause(stop, self._ttl.total_seconds() / 3)
                    continue
                try:
                    async with HeldLease(self._db, LEASE, self._owner, fencing, self._ttl).kept():
                        await self._rounds(stop)
                except LeaseLost:
                    log.warning("ledger booking lost its lease to another process; waiting to take it back")
        finally:
            with contextlib.suppress(Exception):
                await release(self._db, LEASE, self._owner)

    async def _acquire(self) -> int | None:
        try:
            return await try_acquire(self._db, LEASE, self._owner, self._ttl)
        except Exception:
            log.warning("ledger booking could not ask for its lease", exc_info=True)
            return None

    async def _rounds(self, stop: asyncio.Event) -> None:
        failures = 0
        while not stop.is_set():
            self._wake.clear()
            try:
                read = await self.run_once()
                failures = 0
            except (LeaseLost, asyncio.CancelledError):
                raise
            except Exception:
                failures += 1
                self.stats.failed_rounds += 1
                delay = min(30.0, 0.5 * 2 ** min(failures - 1, 10))
                log.warning("ledger booking round failed (%d in a row); retrying in %.1fs", failures, delay,
                            exc_info=True)  # fmt: skip
                await self._pause(stop, delay)
                continue
            if read < self.batch_size:
                await self._pause(stop, self.poll_s, wake_early=True)

    async def _pause(self, stop: asyncio.Event, timeout_s: float, *, wake_early: bool = False) -> None:
        waiters = [asyncio.create_task(stop.wait())]
        if wake_early:
            waiters.append(asyncio.create_task(self._wake.wait()))
        try:
            await asyncio.wait(waiters, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
            await asyncio.gather(*waiters, return_exceptions=True)
