"""Every query of the notice context. Batch-shaped (one statement per batch), Core-level where it is hot; never
commits. Compare-and-set everywhere a worker takes or releases a delivery.

Lists of ids are matched with `core.db.one_of` (`= ANY($1)` on PostgreSQL)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, NamedTuple, cast

from sqlalchemy import CursorResult, Table, and_, bindparam, exists, func, or_, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from tomato.core.db import one_of
from tomato.core.outbox import OutboxEvent
from tomato.core.rawpg import transaction
from tomato.notice.events import EXCLUDED_TYPES
from tomato.notice.models import Delivery, DeliveryAttempt

EVENT_PREFIXES = ("pay.", "refund.", "payout.", "split.")  # merchant-facing event types (docs/webhooks.md)
PENDING, SUCCEEDED, FAILED, SKIPPED = "PENDING", "SUCCEEDED", "FAILED", "SKIPPED"
STATUSES = (PENDING, SUCCEEDED, FAILED, SKIPPED)

_D = cast(Table, Delivery.__table__)
_A = cast(Table, DeliveryAttempt.__table__)


def _merchant_facing() -> Any:
    return and_(
        or_(*(OutboxEvent.event_type.startswith(p) for p in EVENT_PREFIXES)),
        OutboxEvent.event_type.not_in(EXCLUDED_TYPES),
    )


CUSTOM_PLANS = "SET LOCAL plan_cache_mode = force_custom_plan"  # see plan_for_current_sizes


async def plan_for_current_sizes(s: AsyncSession) -> None:
    """Plans the rest of this transaction's statements for their parameters and the tables as they are now.

    With one statement text per query (`_one_of`), PostgreSQL may switch a prepared statement to a generic plan
    after five executions and keep it until the next ANALYZE of its tables. `notice_deliveries` grows from empty,
    so a generic plan made while it was small (a hash of the whole table for the consumer's dedupe, a sequential
    scan for a claim) stayed in use after it had grown 100-fold: 20-160 ms per batch in the webhook bench.
    """
    if s.bind is not None and s.bind.dialect.name == "postgresql":
        await s.execute(text("SET LOCAL plan_cache_mode = force_custom_plan"))


# --- consuming events ----------------------------------------------------------------------------------------


async def outbox_rows(s: AsyncSession, event_ids: Sequence[str]) -> Sequence[Any]:
    """The outbox rows of `event_ids`, each with `seen`: it already has a delivery row (the consumer's dedupe by
    event id)."""
    seen = exists().where(Delivery.event_id == OutboxEvent.id).label("seen")
    stmt = select(
        OutboxEvent.id, OutboxEvent.event_type, OutboxEvent.app_id, OutboxEvent.aggregate_type,
        OutboxEvent.aggregate_id, OutboxEvent.payload, OutboxEvent.created_at, seen,
    ).where(one_of(s, OutboxEvent.id, event_ids))  # fmt: skip
    return (await s.execute(stmt)).all()


async def insert_deliveries(s: AsyncSession, dialect: str, rows: Sequence[dict[str, Any]]) -> list[str]:
    """INSERT … ON CONFLICT (event_id, url) DO NOTHING; returns the ids actually inserted."""
    if not rows:
        return []
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert(_D).on_conflict_do_nothing(index_elements=["event_id", "url"]).returning(_D.c.id)
    # executemany form: one cached compiled statement whatever the batch size ("insertmanyvalues")
    return list((await s.execute(stmt, list(rows))).scalars())


class OutboxRow(NamedTuple):
    id: str
    event_type: str
    app_id: str | None
    aggregate_type: str
    aggregate_id: str
    payload: str
    created_at: datetime
    seen: bool


_OUTBOX_ROWS_PG = (
    f"SELECT o.id, o.event_type, o.app_id, o.aggregate_type, o.aggregate_id, o.payload, o.created_at, "
    f"EXISTS (SELECT 1 FROM {_D.name} d WHERE d.event_id = o.id) AS seen "
    "FROM outbox_events o WHERE o.id = ANY($1::varchar[])"
)


async def outbox_rows_pg(raw: Any, event_ids: Sequence[str]) -> list[OutboxRow]:
    """`outbox_rows` on an asyncpg connection (`core.rawpg`): planned for its parameters as
    `plan_for_current_sizes` asks, with BEGIN and the SET LOCAL in one round trip and no ORM around it."""
    async with transaction(raw, CUSTOM_PLANS):
        records = await raw.fetch(_OUTBOX_ROWS_PG, list(event_ids))
    return [OutboxRow(*r) for r in records]


_DELIVERY_COLUMNS = (
    ("id", "varchar"), ("seq", "bigint"), ("event_id", "varchar"), ("event_type", "varchar"), ("app_id", "varchar"),
    ("mch_no", "varchar"), ("url", "varchar"), ("status", "varchar"), ("attempts", "int"), ("round_start", "int"),
    ("next_attempt_at", "timestamptz"), ("event_created_at", "timestamptz"), ("created_at", "timestamptz"),
    ("updated_at", "timestamptz"), ("finished_at", "timestamptz"), ("lease_until", "timestamptz"),
    ("claim_token", "varchar"),
)  # fmt: skip
_INSERT_DELIVERIES_PG = (
    f"INSERT INTO {_D.name} ({', '.join(c for c, _ in _DELIVERY_COLUMNS)}) SELECT * FROM unnest("
    + ", ".join(f"${i}::{kind}[]" for i, (_, kind) in enumerate(_DELIVERY_COLUMNS, 1))
    + ") ON CONFLICT (event_id, url) DO NOTHING RETURNING id"
)


async def insert_deliveries_pg(raw: Any, rows: Sequence[dict[str, Any]]) -> list[str]:
    """`insert_deliveries` in one statement over arrays on an asyncpg connection (`core.rawpg`): atomic, no
    BEGIN/COMMIT round trips."""
    if not rows:
        return []
    records = await raw.fetch(_INSERT_DELIVERIES_PG, *([r[c] for r in rows] for c, _ in _DELIVERY_COLUMNS))
    return [r["id"] for r in records]


async def unconsumed_events(
    s: AsyncSession, after: tuple[datetime, int], published_before: datetime, limit: int
) -> Sequence[Any]:
    """Merchant-facing events relayed after the keyset `after` = (published_at, seq) that have no delivery row:
    their bus message was lost. Returns (id, published_at, seq) in keyset order."""
    at, seq = after
    stmt = (
        select(OutboxEvent.id, OutboxEvent.published_at, OutboxEvent.seq)
        .where(
            or_(OutboxEvent.published_at > at, and_(OutboxEvent.published_at == at, OutboxEvent.seq > seq)),
            OutboxEvent.published_at <= published_before,
            OutboxEvent.app_id.is_not(None),
            _merchant_facing(),
            ~exists().where(Delivery.event_id == OutboxEvent.id),
        )
        .order_by(OutboxEvent.published_at, OutboxEvent.seq)
        .limit(limit)
    )
    return (await s.execute(stmt)).all()


# --- attempting ----------------------------------------------------------------------------------------------


async def claim(
    s: AsyncSession, ids: Sequence[str], now: datetime, due_by: datetime, lease_until: datetime, token: str
) -> Sequence[Any]:
    """Takes the PENDING deliveries among `ids` that are due by `due_by` and not leased (compare-and-set)."""
    stmt = (
        update(_D)
        .where(
            one_of(s, _D.c.id, ids),
            _D.c.status == PENDING,
            _D.c.next_attempt_at <= due_by,
            or_(_D.c.lease_until.is_(None), _D.c.lease_until < now),
        )
        .values(lease_until=lease_until, claim_token=token, requested_at=None, updated_at=now)
        .returning(_D.c.id, _D.c.event_id, _D.c.app_id, _D.c.url, _D.c.attempts, _D.c.round_start, _D.c.next_attempt_at)
    )
    return (await s.execute(stmt)).all()


class ClaimedRow(NamedTuple):
    id: str
    event_id: str
    app_id: str
    url: str
    attempts: int
    round_start: int
    next_attempt_at: datetime
    payload: str | None


class StateRow(NamedTuple):
    id: str
    status: str
    next_attempt_at: datetime | None
    lease_until: datetime | None


_CLAIM_PG = (
    f"WITH c AS (UPDATE {_D.name} SET lease_until = $4, claim_token = $5, requested_at = NULL, updated_at = $2 "
    "WHERE id = ANY($1::varchar[]) AND status = 'PENDING' AND next_attempt_at <= $3 "
    "AND (lease_until IS NULL OR lease_until < $2) "
    "RETURNING id, event_id, app_id, url, attempts, round_start, next_attempt_at) "
    "SELECT c.*, o.payload FROM c LEFT JOIN outbox_events o ON o.id = c.event_id"
)
_STATES_PG = f"SELECT id, status, next_attempt_at, lease_until FROM {_D.name} WHERE id = ANY($1::varchar[])"


async def claim_pg(
    raw: Any, ids: Sequence[str], now: datetime, due_by: datetime, lease_until: datetime, token: str
) -> tuple[list[ClaimedRow], list[StateRow]]:
    """`claim` + `payloads` + `states` of the unclaimed in one transaction on an asyncpg connection (`core.rawpg`):
    the same compare-and-set, its rows with their event's payload, and the state of the ones it did not take."""
    async with transaction(raw, CUSTOM_PLANS):
        claimed = [ClaimedRow(*r) for r in await raw.fetch(_CLAIM_PG, list(ids), now, due_by, lease_until, token)]
        taken = {r.id for r in claimed}
        missing = [i for i in ids if i not in taken]
        others = [StateRow(*r) for r in await raw.fetch(_STATES_PG, missing)] if missing else []
    return claimed, others


async def payloads(s: AsyncSession, event_ids: Sequence[str]) -> dict[str, str]:
    rows = await s.execute(select(OutboxEvent.id, OutboxEvent.payload).where(one_of(s, OutboxEvent.id, event_ids)))
    return {r.id: r.payload for r in rows}


async def states(s: AsyncSession, ids: Sequence[str]) -> Sequence[Any]:
    stmt = select(_D.c.id, _D.c.status, _D.c.next_attempt_at, _D.c.lease_until).where(one_of(s, _D.c.id, ids))
    return (await s.execute(stmt)).all()


async def record(s: AsyncSession, attempts: Sequence[dict[str, Any]], updates: Sequence[dict[str, Any]]) -> None:
    """Appends the attempts and moves each delivery on — only if it still holds the claim token."""
    if attempts:
        await s.execute(_A.insert(), list(attempts))
    if updates:
        stmt = (
            _D.update()
            .where(_D.c.id == bindparam("b_id"), _D.c.claim_token == bindparam("b_token"))
            .values(
                status=bindparam("status"),
                attempts=bindparam("attempts"),
                next_attempt_at=bindparam("next_attempt_at"),
                last_status=bindparam("last_status"),
                last_error=bindparam("last_error"),
                finished_at=bindparam("finished_at"),
                updated_at=bindparam("updated_at"),
                lease_until=None,
                claim_token=None,
            )
        )
        await s.execute(stmt, list(updates))


_ATTEMPT_COLUMNS = (
    ("id", "bigint"), ("delivery_id", "varchar"), ("attempt_no", "int"), ("started_at", "timestamptz"),
    ("latency_ms", "int"), ("http_status", "int"), ("response_body", "text"), ("error_class", "varchar"),
    ("error_message", "varchar"), ("succeeded", "bool"),
)  # fmt: skip
_UPDATE_COLUMNS = (
    ("b_id", "varchar"), ("b_token", "varchar"), ("status", "varchar"), ("attempts", "int"),
    ("next_attempt_at", "timestamptz"), ("last_status", "int"), ("last_error", "varchar"),
    ("finished_at", "timestamptz"), ("updated_at", "timestamptz"),
)  # fmt: skip


def _unnest(columns: Sequence[tuple[str, str]], first: int) -> str:
    return ", ".join(f"${first + i}::{kind}[]" for i, (_, kind) in enumerate(columns))


# `record` as one statement on PostgreSQL: the attempts appended and the deliveries moved on (each only if it still
# holds its claim token) by a data-modifying CTE over arrays
_RECORD_PG = (
    f"WITH appended AS (INSERT INTO {_A.name} ({', '.join(c for c, _ in _ATTEMPT_COLUMNS)}) "
    f"SELECT * FROM unnest({_unnest(_ATTEMPT_COLUMNS, 1)})) "
    f"UPDATE {_D.name} AS d SET status = u.status, attempts = u.attempts, next_attempt_at = u.next_attempt_at, "
    "last_status = u.last_status, last_error = u.last_error, finished_at = u.finished_at, updated_at = u.updated_at, "
    f"lease_until = NULL, claim_token = NULL FROM unnest({_unnest(_UPDATE_COLUMNS, len(_ATTEMPT_COLUMNS) + 1)}) "
    f"AS u({', '.join(c for c, _ in _UPDATE_COLUMNS)}) WHERE d.id = u.b_id AND d.claim_token = u.b_token"
)


async def record_pg(raw: Any, attempts: Sequence[dict[str, Any]], updates: Sequence[dict[str, Any]]) -> None:
    """`record` in one statement on an asyncpg connection (`core.rawpg`), planned for the tables as they are now
    (`plan_for_current_sizes`: a generic plan made while `notice_deliveries` was empty scans all of it)."""
    args = [[a[c] for a in attempts] for c, _ in _ATTEMPT_COLUMNS]
    args += [[u[c] for u in updates] for c, _ in _UPDATE_COLUMNS]
    async with transaction(raw, CUSTOM_PLANS):
        await raw.execute(_RECORD_PG, *args)


# --- sweeping ------------------------------------------------------------------------------------------------


async def sweep(s: AsyncSession, now: datetime, overdue_before: datetime, limit: int) -> list[str]:
    """Marks and returns PENDING deliveries whose wake-up went missing: overdue by the grace period and not
    swept within it, or asked for by a resend; never one a live worker holds."""
    free = or_(_D.c.lease_until.is_(None), _D.c.lease_until < now)
    lost = and_(_D.c.next_attempt_at <= overdue_before, or_(_D.c.swept_at.is_(None), _D.c.swept_at <= overdue_before))
    due = select(_D.c.id).where(_D.c.status == PENDING, free, or_(lost, _D.c.requested_at.is_not(None)))
    ids = list((await s.execute(due.order_by(_D.c.next_attempt_at).limit(limit))).scalars())
    if not ids:
        return []
    stmt = (
        update(_D)
        .where(one_of(s, _D.c.id, ids), _D.c.status == PENDING, free, or_(lost, _D.c.requested_at.is_not(None)))
        .values(swept_at=now, requested_at=None)
        .returning(_D.c.id)
    )
    return list((await s.execute(stmt)).scalars())


# --- reading and resending -----------------------------------------------------------------------------------


async def app_events(
    s: AsyncSession,
    app_id: str,
    after_position: int | None,
    limit: int,
    *,
    event_type: str | None = None,
    created_from: datetime | None = None,
    created_to: datetime | None = None,
) -> Sequence[Any]:
    """The app's merchant-facing events in commit order (`position`, see core.positions); rows not yet numbered
    are left out, so a cursor never passes one that is still to come. Optionally of one type and created in
    [created_from, created_to)."""
    stmt = select(OutboxEvent.position, OutboxEvent.payload).where(
        OutboxEvent.app_id == app_id, OutboxEvent.position.is_not(None), _merchant_facing()
    )
    if event_type is not None:
        stmt = stmt.where(OutboxEvent.event_type == event_type)
    if created_from is not None:
        stmt = stmt.where(OutboxEvent.created_at >= created_from)
    if created_to is not None:
        stmt = stmt.where(OutboxEvent.created_at < created_to)
    if after_position is not None:
        stmt = stmt.where(OutboxEvent.position > after_position)
    return (await s.execute(stmt.order_by(OutboxEvent.position).limit(limit))).all()


async def app_event(s: AsyncSession, app_id: str, event_id: str) -> str | None:
    """One merchant-facing event of the app: its stored webhook body, None when there is none by that id."""
    stmt = select(OutboxEvent.payload).where(
        OutboxEvent.id == event_id, OutboxEvent.app_id == app_id, _merchant_facing()
    )
    payload: str | None = (await s.execute(stmt)).scalar_one_or_none()
    return payload


async def cursor_position(s: AsyncSession, app_id: str, key: int) -> int | None:
    """The position a cursor stands for: one of the app's event positions, or an event `seq` (cursors handed out
    before the feed paged by position); None when it is neither."""
    stmt = select(OutboxEvent.position).where(
        OutboxEvent.app_id == app_id,
        OutboxEvent.position.is_not(None),
        or_(OutboxEvent.position == key, OutboxEvent.seq == key),
    )
    return (await s.execute(stmt.limit(1))).scalar_one_or_none()


async def list_deliveries(
    s: AsyncSession, filters: dict[str, str], before_seq: int | None, limit: int
) -> Sequence[Delivery]:
    stmt = select(Delivery).where(*(getattr(Delivery, k) == v for k, v in filters.items()))
    if before_seq is not None:
        stmt = stmt.where(Delivery.seq < before_seq)
    return (await s.execute(stmt.order_by(Delivery.seq.desc()).limit(limit))).scalars().all()


async def delivery_exists_seq(s: AsyncSession, seq: int, mch_no: str | None = None) -> bool:
    stmt = select(Delivery.id).where(Delivery.seq == seq)
    if mch_no is not None:
        stmt = stmt.where(Delivery.mch_no == mch_no)
    return (await s.execute(stmt)).first() is not None


async def get(s: AsyncSession, delivery_id: str) -> Delivery | None:
    return await s.get(Delivery, delivery_id)


async def attempts_of(s: AsyncSession, delivery_id: str) -> Sequence[DeliveryAttempt]:
    stmt = select(DeliveryAttempt).where(DeliveryAttempt.delivery_id == delivery_id)
    return (await s.execute(stmt.order_by(DeliveryAttempt.attempt_no, DeliveryAttempt.id))).scalars().all()


def _resend_values(now: datetime) -> dict[str, Any]:
    """A new schedule round starting now; the sweeper (or an in-process queue) picks it up."""
    return {
        "status": PENDING,
        "round_start": _D.c.attempts,
        "next_attempt_at": now,
        "requested_at": now,
        "finished_at": None,
        "updated_at": now,
    }


def _event_kept() -> Any:
    """The delivery's event is still in the outbox: one past its retention window has no body left to send."""
    return exists().where(OutboxEvent.id == _D.c.event_id)


async def request_resend(s: AsyncSession, delivery_id: str, now: datetime) -> bool:
    """Compare-and-set: refused while a worker holds the delivery, when it has no URL or its event is gone."""
    stmt = (
        update(_D)
        .where(
            _D.c.id == delivery_id,
            _D.c.status != SKIPPED,
            or_(_D.c.lease_until.is_(None), _D.c.lease_until < now),
            _event_kept(),
        )
        .values(**_resend_values(now))
    )
    return bool(cast(CursorResult[Any], await s.execute(stmt)).rowcount)


async def request_resend_failed(s: AsyncSession, mch_no: str, start: datetime, end: datetime, now: datetime) -> int:
    stmt = (
        update(_D)
        .where(
            _D.c.mch_no == mch_no, _D.c.status == FAILED, _D.c.created_at >= start, _D.c.created_at < end, _event_kept()
        )
        .values(**_resend_values(now))
    )
    return int(cast(CursorResult[Any], await s.execute(stmt)).rowcount)


async def count_by_status(s: AsyncSession) -> dict[str, int]:
    rows = await s.execute(select(Delivery.status, func.count()).group_by(Delivery.status))
    return {status: int(n) for status, n in rows.all()}


async def count_statuses(s: AsyncSession, statuses: Sequence[str]) -> dict[str, int]:
    """Counts of the given statuses only (over `ix_notice_deliveries_due`), each present even when 0."""
    rows = await s.execute(
        select(Delivery.status, func.count()).where(Delivery.status.in_(statuses)).group_by(Delivery.status)
    )
    found = {status: int(n) for status, n in rows.all()}
    return {status: found.get(status, 0) for status in statuses}
