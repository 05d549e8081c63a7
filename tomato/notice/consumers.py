"""The outbox-event consumer: one delivery row per merchant-facing event and target URL, then a wake-up.

Per batch (group commit, `batching.Batcher`): read the outbox rows and which events already have a delivery
(dedupe by event id) → resolve targets with no transaction open → insert the rows (`ON CONFLICT DO NOTHING` on
event id + URL) and commit → start the first attempts → the bus acks. An event with no URL gets a SKIPPED row,
so it is deduplicated too and operators can see why nothing was sent.

First attempts: as many rows as this process's worker has free slots for are inserted already claimed (lease +
token, in the same INSERT) and handed over in-process, saving a publish, a consume, an ack and a claim per
delivery; the rest are woken through the work queue, where any worker process can take them. Either way the row
is committed first, so a crash only delays: the lease runs out, or the wake-up is missing, and the sweeper
re-enqueues it.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Protocol

from tomato.core.clock import as_utc, utcnow
from tomato.core.db import Database
from tomato.core.ids import Snowflake
from tomato.core.outbox import BusMessage
from tomato.core.rawpg import raw_connection
from tomato.merchant.errors import UnknownApp
from tomato.merchant.schemas import AppAuth
from tomato.merchant.service import MerchantService
from tomato.notice import repository as repo
from tomato.notice.batching import Batcher
from tomato.notice.events import CONSUMED_PATTERNS, merchant_facing
from tomato.notice.lag import LagGauge
from tomato.notice.queues import DeliveryQueue, PoisonMessage
from tomato.notice.schedule import NoticeConfig
from tomato.notice.targets import EventRef, TargetLookup
from tomato.notice.worker import Claim

log = logging.getLogger(__name__)

PATTERNS = list(CONSUMED_PATTERNS)  # what the consumer subscribes to on the event bus


class LocalAttempts(Protocol):
    """This process's delivery worker, taking first attempts without a queue round trip."""

    def reserve(self, wanted: int) -> int: ...
    def release(self, n: int) -> None: ...
    def dispatch(self, claims: Sequence[Claim]) -> None: ...


@dataclass(frozen=True)
class _Target:
    url: str
    mch_no: str


class EventConsumer:
    def __init__(
        self,
        db: Database,
        ids: Snowflake,
        merchants: MerchantService,
        targets: TargetLookup,
        queue: DeliveryQueue,
        config: NoticeConfig,
        local: LocalAttempts | None = None,
    ) -> None:
        self._db = db
        self._local = local
        self._lease = timedelta(seconds=config.lease_s)
        self._ids = ids
        self._merchants = merchants
        self._targets = targets
        self._queue = queue
        self._batcher: Batcher[str, Exception | None] = Batcher(
            self._process, name="notice-consume", max_size=config.batch_size
        )
        self.created = 0  # deliveries this process created (metrics, tests)
        self.handled = 0  # event messages it handled, duplicates included
        self.lag = LagGauge()  # how long after their commit events reach the consumer

    def start(self) -> None:
        self._batcher.start()

    async def close(self) -> None:
        await self._batcher.close()

    async def handle(self, message: BusMessage) -> None:
        """Bus handler: returns once the event's delivery is committed (the bus acks after that)."""
        failure = await self._batcher.submit(message.id)
        if failure is not None:
            raise failure

    async def process(self, event_ids: Sequence[str]) -> None:
        """For the catch-up sweeper: the same path as bus messages."""
        for failure in await self._process(event_ids):
            if failure is not None:
                log.warning("catch-up could not take event: %s", failure)

    async def _process(self, event_ids: Sequence[str]) -> list[Exception | None]:
        unique = list(dict.fromkeys(event_ids))
        rows: Sequence[Any]
        if self._db.dialect == "postgresql":
            async with raw_connection(self._db.engine, "reading outbox events") as raw:
                rows = await repo.outbox_rows_pg(raw, unique)
        else:
            async with self._db.uow() as uow:
                await repo.plan_for_current_sizes(uow.session)
                rows = await repo.outbox_rows(uow.session, unique)
        found = {r.id for r in rows}
        now = utcnow()
        for r in rows:
            self.lag.observe((now - as_utc(r.created_at)).total_seconds())
        todo = [r for r in rows if not r.seen and r.app_id and merchant_facing(r.event_type)]
        targets = await self._resolve(todo)
        now = utcnow()
        values: list[dict[str, Any]] = []
        for row, target in zip(todo, targets, strict=True):
            seq = self._ids.next_int()
            values.append(
                {
                    "id": f"D{seq}", "seq": seq, "event_id": row.id, "event_type": row.event_type,
                    "app_id": row.app_id, "mch_no": target.mch_no, "url": target.url,
                    "status": repo.PENDING if target.url else repo.SKIPPED, "attempts": 0, "round_start": 0,
                    "next_attempt_at": now if target.url else None, "event_created_at": row.created_at,
                    "created_at": now, "updated_at": now, "finished_at": None if target.url else now,
                }
            )  # fmt: skip
        # what this process can attempt at once is inserted already claimed and handed over in-process; the rest
        # (and everything when the local worker is busy) is woken through the queue
        pending = [v for v in values if v["status"] == repo.PENDING]
        local_n = self._local.reserve(len(pending)) if self._local is not None else 0
        token = uuid.uuid4().hex
        for n, v in enumerate(pending):
            mine = n < local_n
            v["lease_until"], v["claim_token"] = (now + self._lease, token) if mine else (None, None)
        for v in values:
            v.setdefault("lease_until", None)
            v.setdefault("claim_token", None)
        inserted: set[str] = set()
        try:
            if values and self._db.dialect == "postgresql":  # one statement, no BEGIN/COMMIT round trips
                async with raw_connection(self._db.engine, "inserting webhook deliveries") as raw:
                    inserted = set(await repo.insert_deliveries_pg(raw, values))
            elif values:
                async with self._db.uow() as uow:
                    inserted = set(await repo.insert_deliveries(uow.session, self._db.dialect, values))
                    await uow.commit()
        except BaseException:
            if self._local is not None:
                self._local.release(local_n)
            raise
        bodies = {r.id: r.payload for r in todo}
        claims = [
            Claim(v["id"], v["event_id"], v["app_id"], v["url"], 1, 1, token, bodies[v["event_id"]].encode(), now)
            for v in pending[:local_n]
            if v["id"] in inserted
        ]
        queued = [v["id"] for v in pending[local_n:] if v["id"] in inserted]
        self.created += len(claims) + len(queued)
        self.handled += len(event_ids)
        if self._local is not None:
            self._local.release(local_n - len(claims))
            self._local.dispatch(claims)
        if queued:
            try:
                await self._queue.enqueue(queued)
            except Exception:  # committed: the sweeper re-enqueues them once they are overdue
                log.warning("could not enqueue %d new deliveries; the sweeper will", len(queued), exc_info=True)
        return [None if e in found else PoisonMessage(f"event {e} is not in the outbox") for e in event_ids]

    async def _resolve(self, rows: Sequence[Any]) -> list[_Target]:
        if not rows:
            return []
        refs = []
        for r in rows:
            data = json.loads(r.payload).get("data")
            refs.append(
                EventRef(r.id, r.event_type, r.aggregate_type, r.aggregate_id, data if isinstance(data, dict) else {})
            )
        object_urls = await self._targets.object_urls(refs)
        apps: dict[str, AppAuth | None] = {}
        for app_id in {r.app_id for r in rows}:
            try:
                apps[app_id] = await self._merchants.app_auth(app_id)
            except UnknownApp:
                apps[app_id] = None
        targets = []
        for r, own in zip(rows, object_urls, strict=True):
            app = apps[r.app_id]
            url = own or (app.notify_url if app is not None else None) or ""
            targets.append(_Target(url=url, mch_no=app.mch_no if app is not None else ""))
        return targets
