"""Notice use cases for the edge: the merchant's event feed and the operator's deliveries, attempts and resends.

The background work (consuming, attempting, sweeping) lives in `consumers`, `worker` and `sweeper`. A resend
only moves the delivery row (new schedule round, due now, `requested_at` set); the sweeper of any worker
process picks it up within a sweep interval, or at once when this service was given the process's queue.
"""

from __future__ import annotations

import logging
from datetime import datetime

from tomato.core.clock import as_utc, utcnow
from tomato.core.db import Database
from tomato.core.errors import InvalidRequest
from tomato.notice import repository as repo
from tomato.notice.errors import DeliveryNotFound, DeliveryNotResendable, EventNotFound
from tomato.notice.models import Delivery, DeliveryAttempt
from tomato.notice.queues import DeliveryQueue
from tomato.notice.schemas import AttemptView, DeliveryDetail, DeliveryView, EventFilter, EventPage, ResendRange

log = logging.getLogger(__name__)

DELIVERY_FILTERS = ("mch_no", "app_id", "event_id", "event_type", "status")


class NoticeService:
    def __init__(self, db: Database, queue: DeliveryQueue | None = None) -> None:
        self._db = db
        self._queue = queue

    # --- merchants: GET /v1/events -----------------------------------------------------------------------

    async def list_events(
        self, app_id: str, after: int | None, limit: int, filters: EventFilter | None = None
    ) -> EventPage:
        """The app's merchant-facing events oldest first, in commit order; `after` is a key from an earlier page
        (else 422)."""
        f = filters or EventFilter()
        async with self._db.uow() as uow:
            position = None
            if after is not None and (position := await repo.cursor_position(uow.session, app_id, after)) is None:
                raise InvalidRequest.field("cursor", "unknown cursor")
            rows = await repo.app_events(
                uow.session, app_id, position, limit + 1,
                event_type=f.event_type, created_from=f.created_from, created_to=f.created_to,
            )  # fmt: skip
        shown = rows[:limit]
        return EventPage(
            payloads=[r.payload for r in shown],
            last_position=shown[-1].position if shown else None,
            more=len(rows) > limit,
        )

    async def get_event(self, app_id: str, event_id: str) -> str:
        """One of the app's events: the webhook body exactly as stored (and as POSTed)."""
        async with self._db.uow() as uow:
            payload = await repo.app_event(uow.session, app_id, event_id)
        if payload is None:
            raise EventNotFound(f"event {event_id} not found")
        return payload

    # --- operators ---------------------------------------------------------------------------------------

    async def list_deliveries(self, filters: dict[str, str], before_seq: int | None, limit: int) -> list[DeliveryView]:
        """Newest first; `limit` rows (the caller asks for one more to know whether a next page exists). With a
        `mch_no` filter (the portal's scope) a cursor must be one of that merchant's deliveries too."""
        unknown = set(filters) - set(DELIVERY_FILTERS)
        if unknown:
            raise InvalidRequest.field(sorted(unknown)[0], "unknown filter")
        if "status" in filters and filters["status"] not in repo.STATUSES:
            raise InvalidRequest.field("status", f"must be one of {', '.join(repo.STATUSES)}")
        async with self._db.uow() as uow:
            scope = filters.get("mch_no")
            if before_seq is not None and not await repo.delivery_exists_seq(uow.session, before_seq, scope):
                raise InvalidRequest.field("cursor", "unknown cursor")
            rows = await repo.list_deliveries(uow.session, filters, before_seq, limit)
        return [delivery_view(d) for d in rows]

    async def get_delivery(self, delivery_id: str, *, mch_no: str | None = None) -> DeliveryDetail:
        """`mch_no` scopes the read to one merchant (the portal): another merchant's delivery is not found."""
        async with self._db.uow() as uow:
            delivery = _scoped(await repo.get(uow.session, delivery_id), delivery_id, mch_no)
            attempts = await repo.attempts_of(uow.session, delivery_id)
        view = delivery_view(delivery)
        return DeliveryDetail(**view.model_dump(), attempt_log=[attempt_view(a) for a in attempts])

    async def resend(self, delivery_id: str, *, mch_no: str | None = None) -> DeliveryDetail:
        """A new schedule round starting now, whatever the status (not for SKIPPED or while being attempted);
        `mch_no` scopes it as in `get_delivery`."""
        async with self._db.uow() as uow:
            delivery = _scoped(await repo.get(uow.session, delivery_id), delivery_id, mch_no)
            if not await repo.request_resend(uow.session, delivery_id, utcnow()):
                why = "it has no URL" if delivery.status == repo.SKIPPED else "a worker is attempting it right now"
                if delivery.status != repo.SKIPPED and not await repo.payloads(uow.session, [delivery.event_id]):
                    why = "its event is past the retention window (TOMATO_RETENTION_EVENT_DAYS)"
                raise DeliveryNotResendable(f"delivery {delivery_id} cannot be resent: {why}")
            await uow.commit()
        await self._wake([delivery_id])
        return await self.get_delivery(delivery_id, mch_no=mch_no)

    async def resend_failed(self, cmd: ResendRange) -> int:
        async with self._db.uow() as uow:
            start, end = as_utc(cmd.from_), as_utc(cmd.to)  # stored times are UTC (naive on SQLite)
            n = await repo.request_resend_failed(uow.session, cmd.mch_no, start, end, utcnow())
            await uow.commit()
        log.info("resend of %d FAILED deliveries of %s requested", n, cmd.mch_no)
        return n

    async def counts(self) -> dict[str, int]:
        async with self._db.uow() as uow:
            return await repo.count_by_status(uow.session)

    async def backlog(self) -> dict[str, int]:
        """Deliveries still to be made (`PENDING`, retries included) and given up (`FAILED`), for `/metrics`."""
        async with self._db.uow() as uow:
            return await repo.count_statuses(uow.session, ("PENDING", "FAILED"))

    async def _wake(self, ids: list[str]) -> None:
        if self._queue is None:
            return
        try:
            await self._queue.enqueue(ids)
        except Exception:
            log.warning("could not enqueue resent deliveries; the sweeper will", exc_info=True)


def _scoped(delivery: Delivery | None, delivery_id: str, mch_no: str | None) -> Delivery:
    """The delivery, or `DeliveryNotFound` when it does not exist or (given `mch_no`) is another merchant's: both
    answers are the same, so an id tells nothing about other merchants."""
    if delivery is None or (mch_no is not None and delivery.mch_no != mch_no):
        raise DeliveryNotFound(f"delivery {delivery_id} not found")
    return delivery


def _t(value: datetime | None) -> datetime | None:
    return None if value is None else as_utc(value)


def delivery_view(d: Delivery) -> DeliveryView:
    return DeliveryView(
        id=d.id, event_id=d.event_id, event_type=d.event_type, app_id=d.app_id, mch_no=d.mch_no, url=d.url,
        status=d.status, attempts=d.attempts, next_attempt_at=_t(d.next_attempt_at), last_status=d.last_status,
        last_error=d.last_error, event_created_at=as_utc(d.event_created_at), created_at=as_utc(d.created_at),
        updated_at=as_utc(d.updated_at), finished_at=_t(d.finished_at),
    )  # fmt: skip


def attempt_view(a: DeliveryAttempt) -> AttemptView:
    return AttemptView(
        attempt_no=a.attempt_no, started_at=as_utc(a.started_at), latency_ms=a.latency_ms,
        http_status=a.http_status, response_body=a.response_body, error_class=a.error_class,
        error_message=a.error_message, succeeded=bool(a.succeeded),
    )  # fmt: skip
