"""The sweepers: what makes a lost message a delay rather than a loss.

* Both treat a message as lost only when it is overdue by `sweep_grace_s` or 3 × the lag their queue has shown
  lately (`lag.LagGauge`), whichever is longer: under a backlog they wait instead of adding copies to it.
* Deliveries: a PENDING delivery overdue by the grace period, not held by a live lease and not swept within the
  grace period, or one a resend asked for, is re-enqueued. Marking `swept_at` in a compare-and-set keeps
  several sweeping processes from enqueueing the same row twice (a duplicate would only be a no-op claim).
* Events: merchant-facing outbox rows relayed more than the grace period ago that have no delivery row (their
  bus message was dropped: an in-process bus that died, a queue not yet bound, a message dead-lettered while
  the database was down) go through the consumer again. Each process scans a moving window of `published_at`
  (from `catchup_window_s` back at start-up), overlapping by the grace period, so each sweep is small.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import datetime, timedelta

from tomato.core.clock import utcnow
from tomato.core.db import Database
from tomato.notice import repository as repo
from tomato.notice.consumers import EventConsumer
from tomato.notice.lag import LagGauge
from tomato.notice.queues import DeliveryQueue
from tomato.notice.schedule import NoticeConfig

log = logging.getLogger(__name__)

SWEEP_LIMIT = 500


class Sweeper:
    def __init__(
        self,
        db: Database,
        queue: DeliveryQueue,
        consumer: EventConsumer,
        config: NoticeConfig,
        delivery_lag: LagGauge | None = None,
    ) -> None:
        self._db = db
        self._delivery_lag = delivery_lag or LagGauge()
        self._queue = queue
        self._consumer = consumer
        self._config = config
        self._events_checked_until: datetime | None = None
        self.requeued = 0
        self.recovered_events = 0

    async def sweep_once(self) -> int:
        """One pass over both; returns how many deliveries and events it put back on the way."""
        return await self.sweep_deliveries() + await self.sweep_events()

    def grace_s(self, lag: LagGauge) -> float:
        """Overdue by more than this means lost: the configured grace, or 3 × the queue's recent lag."""
        return max(self._config.sweep_grace_s, 3 * lag.value())

    async def sweep_deliveries(self) -> int:
        total = 0
        grace = timedelta(seconds=self.grace_s(self._delivery_lag))
        while True:
            now = utcnow()
            async with self._db.uow() as uow:
                await repo.plan_for_current_sizes(uow.session)
                ids = await repo.sweep(uow.session, now, now - grace, SWEEP_LIMIT)
                await uow.commit()
            if ids:
                log.info("sweeper: re-enqueueing %d deliveries", len(ids))
                try:
                    await self._queue.enqueue(ids)
                except Exception:  # swept_at is set: they come round again after the grace period
                    log.warning("sweeper could not enqueue %d deliveries", len(ids), exc_info=True)
                    return total
            total += len(ids)
            self.requeued += len(ids)
            if len(ids) < SWEEP_LIMIT:
                return total

    async def sweep_events(self) -> int:
        grace = timedelta(seconds=self.grace_s(self._consumer.lag))
        until = utcnow() - grace
        since = self._events_checked_until
        since = until - timedelta(seconds=self._config.catchup_window_s) if since is None else since - grace
        after: tuple[datetime, int] = (since, -1)
        total = 0
        while True:
            async with self._db.uow() as uow:
                await repo.plan_for_current_sizes(uow.session)
                rows = await repo.unconsumed_events(uow.session, after, until, SWEEP_LIMIT)
            if rows:
                log.warning("sweeper: %d relayed events have no delivery; consuming them again", len(rows))
                await self._consumer.process([r.id for r in rows])
                total += len(rows)
                after = (rows[-1].published_at, rows[-1].seq)
            if len(rows) < SWEEP_LIMIT:
                break
        self._events_checked_until = until
        self.recovered_events += total
        return total

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.sweep_once()
            except Exception:
                log.warning("notice sweep failed; retrying next round", exc_info=True)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self._config.sweep_interval_s)
