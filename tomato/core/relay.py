"""The outbox relay: moves committed outbox rows to the event bus and marks them sent after the broker confirmed.

Each round first numbers newly committed rows for the events feed (`tomato.core.positions`, its own short
transaction, independent of the broker), then publishes. A row is marked sent only once a queue took its message:
`bus.publish` returns the ids nobody took (no matching subscription, a returned mandatory message), and those rows
stay unsent, left out of the selection for a doubling while so that a type nobody consumes never blocks the rows
behind it; a round in which nothing was taken pauses publishing the same way.

It is also the sweeper: rows are selected only by `published_at IS NULL` (never by an id/seq watermark, which
would skip a row whose transaction committed after a higher seq was already sent), so anything left unsent by a
failed round, a crash or a broker outage goes out on a later round. Delivery is at least once; consumers dedupe
on the event id.

PostgreSQL: `SELECT … FOR UPDATE SKIP LOCKED` → publish → `UPDATE published_at` → commit, all in one short
transaction, so several relays can run side by side without publishing the same row twice in the normal case.
The select must walk `ix_outbox_unpublished` as a plain index scan in (published_at, seq) order: every published
row leaves a dead `published_at IS NULL` entry there until vacuum, and only a plain index scan marks those dead
on its first visit and skips them afterwards. The planner prefers a bitmap scan when few rows are unsent, which
visits the heap for every dead entry, every round: 5-20 ms per round at 30-90k rows since the last vacuum, and
growing with the table. Each statement of the relay has one right plan, so its transaction pins it: the select
runs with bitmap scans off; the update finds the rows it marks by primary key alone (they are locked by the select,
so still unsent) and runs with sequential scans off (for a few hundred ids of a table the cost model still thinks
small, the planner chose a sequential scan: 15-40 ms per round); and both are planned for the table as it is, no
generic plan kept from when it was small.
SQLite (embedded, one process): the selection is read in its own short transaction and marked in another,
because a SQLite transaction holds the database-wide write lock and must not span a broker round-trip.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable

from sqlalchemy import String, all_, and_, any_, bindparam, func, select, update
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncConnection

from tomato.core.bus import EventBus
from tomato.core.clock import as_utc, utcnow
from tomato.core.db import Database
from tomato.core.outbox import BusMessage, OutboxEvent
from tomato.core.positions import assign_positions

log = logging.getLogger(__name__)

# settings for the rest of the relay's transaction (see the module docstring), one round trip each
_PLAN_FOR_SELECT = select(
    func.set_config("enable_bitmapscan", "off", True), func.set_config("plan_cache_mode", "force_custom_plan", True)
)
_PLAN_FOR_UPDATE = select(
    func.set_config("enable_bitmapscan", "on", True), func.set_config("enable_seqscan", "off", True)
)


class OutboxRelay:
    """Polling publisher with an early wake-up (`notify`) and back-off on errors."""

    def __init__(
        self,
        db: Database,
        bus: EventBus,
        batch_size: int = 500,
        *,
        number_batch: int = 1000,
        unroutable_retry_s: float = 1.0,
        unroutable_retry_max_s: float = 60.0,
        backoff_initial_s: float = 0.5,
        backoff_max_s: float = 30.0,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be positive")
        self._db = db
        self._bus = bus
        self.batch_size = batch_size
        self.number_batch = number_batch
        self._backoff_initial_s = backoff_initial_s
        self._backoff_max_s = backoff_max_s
        self._wake = asyncio.Event()
        self.published_total = 0
        self.numbered_total = 0
        self.unroutable_total = 0
        self._unroutable = _Unroutable(unroutable_retry_s, unroutable_retry_max_s)
        self._publish_pause_s = 0.0
        self._idle_rounds = 0  # rounds in a row in which no queue took anything
        self.failed_rounds = 0

    def notify(self) -> None:
        """Called after committing an outbox row so it goes out now rather than on the next poll."""
        self._wake.set()

    async def run_once(self) -> int:
        """Numbers newly committed rows for the events feed, then publishes one batch; returns how many were sent."""
        await self.number_once()
        return await self.publish_once()

    async def number_once(self) -> int:
        """One numbering step (core.positions), apart from publishing: the feed goes on while the broker is down."""
        numbered = await assign_positions(self._db, self.number_batch)
        self.numbered_total += numbered
        return numbered

    async def publish_once(self) -> int:
        """Publishes one batch of unsent rows (oldest seq first) and returns how many were marked sent.

        If `bus.publish` raises, nothing is marked and the exception propagates: the rows go again next round.
        Messages no queue took stay unsent and are left out of the selection for a while (`_Unroutable`).
        """
        if self._db.dialect == "postgresql":
            async with self._db.engine.connect() as conn, conn.begin():
                await conn.execute(_PLAN_FOR_SELECT)
                messages = await self._select(conn, lock=True)
                if not messages:
                    return 0
                routed = self._routed(messages, await self._bus.publish(messages))
                if not routed:
                    return 0
                await conn.execute(_PLAN_FOR_UPDATE)
                marked = await self._mark(conn, routed)
        else:
            async with self._db.engine.connect() as conn:
                async with conn.begin():
                    messages = await self._select(conn, lock=False)
                if not messages:
                    return 0
                routed = self._routed(messages, await self._bus.publish(messages))
                if not routed:
                    return 0
                async with conn.begin():
                    marked = await self._mark(conn, routed)
        self.published_total += marked
        return marked

    def _routed(self, messages: list[BusMessage], unroutable: set[str]) -> list[BusMessage]:
        """The messages a queue took; the others are remembered as unroutable and logged."""
        routed = [m for m in messages if m.id not in unroutable]
        self._unroutable.forget(m.id for m in routed)
        self._idle_rounds = 0 if routed else self._idle_rounds + 1
        if unroutable:
            self.unroutable_total += len(unroutable)
            delay = self._unroutable.defer(unroutable)
            if not routed:  # nothing is listening (e.g. no consumer declared its queue yet): publishing pauses
                delay = self._publish_pause_s = self._unroutable.delay(self._idle_rounds)
            types = sorted({m.type for m in messages if m.id in unroutable})
            log.warning(
                "%d events reached no queue (types %s): left unsent, tried again in %.1fs",
                len(unroutable), ", ".join(types), delay,
            )  # fmt: skip
        return routed

    async def _select(self, conn: AsyncConnection, *, lock: bool) -> list[BusMessage]:
        stmt = (
            select(OutboxEvent.id, OutboxEvent.event_type, OutboxEvent.payload)
            .where(OutboxEvent.published_at.is_(None))
            .order_by(OutboxEvent.published_at, OutboxEvent.seq)  # = seq order, and the index's: no sort, LIMIT stops
            .limit(self.batch_size)
        )
        if waiting := self._unroutable.waiting():
            if self._db.dialect == "postgresql":  # one statement text whatever the number of ids
                stmt = stmt.where(OutboxEvent.id != all_(bindparam("waiting", waiting, type_=postgresql.ARRAY(String))))
            else:
                stmt = stmt.where(OutboxEvent.id.not_in(waiting))
        if lock:
            stmt = stmt.with_for_update(skip_locked=True)
        rows = (await conn.execute(stmt)).all()
        return [BusMessage(id=r.id, type=r.event_type, body=r.payload.encode()) for r in rows]

    async def _mark(self, conn: AsyncConnection, messages: list[BusMessage]) -> int:
        ids = [m.id for m in messages]
        if self._db.dialect == "postgresql":
            # locked by this transaction's select, so unsent; by primary key only, one statement for any batch size
            sent = OutboxEvent.id == any_(bindparam("ids", ids, type_=postgresql.ARRAY(String)))
        else:  # marked in a transaction of its own: only what nobody marked meanwhile
            sent = and_(OutboxEvent.id.in_(ids), OutboxEvent.published_at.is_(None))
        result = await conn.execute(update(OutboxEvent).where(sent).values(published_at=utcnow()))
        return int(result.rowcount)

    async def run_forever(self, stop: asyncio.Event, poll_interval_s: float = 1.0) -> None:
        """Relays until `stop` is set. A failing round is logged and retried with exponential back-off; while
        publishing backs off, numbering goes on every `poll_interval_s` (unless numbering itself fails)."""
        loop = asyncio.get_running_loop()
        failures, publish_at = 0, 0.0
        while not stop.is_set():
            self._wake.clear()
            stage = "numbering"
            try:
                numbered = await self.number_once()
                if loop.time() < publish_at:
                    await self._pause(stop, min(poll_interval_s, publish_at - loop.time()), wake_early=False)
                    continue
                stage = "publishing"
                sent = await self.publish_once()
                if self._publish_pause_s:
                    publish_at, self._publish_pause_s = loop.time() + self._publish_pause_s, 0.0
            except Exception:
                failures += 1
                self.failed_rounds += 1
                delay = min(self._backoff_max_s, self._backoff_initial_s * 2 ** min(failures - 1, 30))
                publish_at = loop.time() + delay
                log.warning(
                    "outbox relay round failed %s (%d in a row); retrying in %.2fs",
                    stage, failures, delay, exc_info=True,
                )  # fmt: skip
                # notify() does not cut the back-off short: with the broker down it would turn into a busy loop.
                pause = min(delay, poll_interval_s) if stage == "publishing" else delay
                await self._pause(stop, pause, wake_early=False)
                continue
            failures = 0
            if sent >= self.batch_size or numbered >= self.number_batch:
                continue  # a full batch: more rows are probably waiting
            await self._pause(stop, poll_interval_s, wake_early=True)

    async def _pause(self, stop: asyncio.Event, timeout_s: float, *, wake_early: bool) -> None:
        waiters = [asyncio.create_task(stop.wait())]
        if wake_early:
            waiters.append(asyncio.create_task(self._wake.wait()))
        try:
            await asyncio.wait(waiters, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
            await asyncio.gather(*waiters, return_exceptions=True)

    async def oldest_unpublished_age_s(self) -> float:
        """Age of the oldest unsent row in seconds (0.0 when none), for the outbox-age alert."""
        async with self._db.engine.connect() as conn:
            oldest = (
                await conn.execute(
                    select(func.min(OutboxEvent.created_at)).where(OutboxEvent.published_at.is_(None))
                )
            ).scalar_one_or_none()
        if oldest is None:
            return 0.0
        return max(0.0, (utcnow() - as_utc(oldest)).total_seconds())

    async def backlog(self) -> tuple[int, float]:
        """How many rows are not yet sent to the bus, and the age in seconds of the oldest (0.0 when none): the
        outbox-lag figures of `/metrics`. One read over the `ix_outbox_unpublished` index."""
        async with self._db.engine.connect() as conn:
            count, oldest = (
                await conn.execute(
                    select(func.count(), func.min(OutboxEvent.created_at)).where(OutboxEvent.published_at.is_(None))
                )
            ).one()
        age = 0.0 if oldest is None else max(0.0, (utcnow() - as_utc(oldest)).total_seconds())
        return int(count), age


class _Unroutable:
    """Ids of events no queue took, each left out of the relay's selection until its retry time (doubling per
    return, up to `max_s`), so a type nobody consumes never blocks the rows behind it. Bounded: beyond `limit` ids
    the oldest entries are forgotten and simply tried again."""

    def __init__(self, initial_s: float, max_s: float, limit: int = 1000) -> None:
        self._initial_s, self._max_s, self._limit = initial_s, max_s, limit
        self._entries: dict[str, tuple[int, float]] = {}  # id → (times returned, retry at, monotonic)

    def defer(self, ids: Iterable[str]) -> float:
        """Records a return of each id; returns the shortest delay given."""
        now, shortest = time.monotonic(), self._max_s
        for event_id in ids:
            times = self._entries.pop(event_id, (0, 0.0))[0] + 1
            delay = self.delay(times)
            self._entries[event_id] = (times, now + delay)
            shortest = min(shortest, delay)
        while len(self._entries) > self._limit:
            del self._entries[next(iter(self._entries))]
        return shortest

    def delay(self, times: int) -> float:
        """The wait after the `times`-th return in a row: doubling from `initial_s`, at most `max_s`."""
        return min(self._max_s, self._initial_s * 2.0 ** min(max(times, 1) - 1, 30))

    def forget(self, ids: Iterable[str]) -> None:
        for event_id in ids:
            self._entries.pop(event_id, None)

    def waiting(self) -> list[str]:
        now = time.monotonic()
        return [event_id for event_id, (_, at) in self._entries.items() if at > now]
