"""The retention job keeps the outbox and the webhook attempts bounded (issue 20): with more rows than the windows
keep, one run deletes the old ones and nothing still needed — unpublished rows, rows the ledger has not booked, the
top position, events a delivery still has to POST, attempts of unfinished deliveries, delivery rows — and a second
run deletes nothing more. Two schedulers running it at once purge once (the job's lease). SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from tests.conftest import truncate_all
from tests.fixtures.stack import test_settings as settings_for
from tomato.account.consumer import CURSOR
from tomato.account.models import BookingCursor
from tomato.bootstrap import Container, bootstrap
from tomato.core.clock import FrozenClock
from tomato.core.outbox import OutboxEvent
from tomato.notice.errors import DeliveryNotResendable
from tomato.notice.models import Delivery, DeliveryAttempt
from tomato.notice.service import NoticeService
from tomato.runtime.retention import run_retention
from tomato.runtime.scheduler import JOBS, JobRunner

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)


@pytest.fixture
async def c(db_url: str, tmp_path: Path) -> AsyncIterator[Container]:
    """A container whose clock stands at NOW; batches of 7 rows, so every purge takes several statements."""
    settings = settings_for(
        db_url, tmp_path,
        retention_event_days=90, retention_outbox_days=7, retention_attempt_days=30, retention_batch=7,
    )  # fmt: skip
    container = await bootstrap(settings, clock=FrozenClock(NOW))
    try:
        yield container
    finally:
        if container.db.dialect == "postgresql":
            await truncate_all(container.db)
        await container.aclose()


def event(
    position: int | None,
    age: timedelta,
    *,
    app: str | None = "app1",
    published: bool = True,
    kind: str = "",
    at: datetime | None = None,
) -> OutboxEvent:
    """An outbox row written `age` before NOW (or `at`), published a second later unless told otherwise."""
    seq = 1000 + (position or 900)
    created = at or NOW - age
    return OutboxEvent(
        id=f"E{seq}", seq=seq, event_type=kind or ("pay.succeeded" if app else "recon.settled"),
        aggregate_type="order", aggregate_id=f"P{seq}", app_id=app, payload="{}", created_at=created,
        published_at=created + timedelta(seconds=1) if published else None, position=position,
    )  # fmt: skip


def delivery(n: int, event_id: str, status: str, finished_age: timedelta | None) -> Delivery:
    at = NOW - 100 * DAY
    return Delivery(
        id=f"D{n}", seq=n, event_id=event_id, event_type="pay.succeeded", app_id="app1", mch_no="M1",
        url="https://merchant.test/hook", status=status, attempts=3, round_start=0,
        next_attempt_at=NOW + DAY if status == "PENDING" else None, last_status=200, event_created_at=at,
        created_at=at, updated_at=at, finished_at=None if finished_age is None else NOW - finished_age,
    )  # fmt: skip


def attempt(attempt_id: int, delivery_id: str, age: timedelta) -> DeliveryAttempt:
    return DeliveryAttempt(
        id=attempt_id, delivery_id=delivery_id, attempt_no=attempt_id % 100, started_at=NOW - age, latency_ms=5,
        http_status=200, succeeded=True,
    )  # fmt: skip


async def store(c: Container, rows: list[object], *, booked: int | None) -> None:
    async with c.db.uow() as uow:
        uow.session.add_all(rows)
        if booked is not None:
            uow.session.add(BookingCursor(name=CURSOR, position=booked, updated_at=NOW))
        await uow.commit()


async def outbox_positions(c: Container) -> set[int | None]:
    async with c.db.engine.connect() as conn:
        return set((await conn.execute(select(OutboxEvent.position))).scalars())


async def attempt_ids(c: Container) -> set[int]:
    async with c.db.engine.connect() as conn:
        return set((await conn.execute(select(DeliveryAttempt.id))).scalars())


async def delivery_ids(c: Container) -> set[str]:
    async with c.db.engine.connect() as conn:
        return set((await conn.execute(select(Delivery.id))).scalars())


def history() -> tuple[list[object], set[int | None]]:
    """Outbox rows in commit order, older first (positions follow time), and the positions a run must keep."""
    rows: list[object] = []
    keep: set[int | None] = set()
    for p in range(1, 31):  # 100 days old: past both windows
        internal = p in (3, 15)
        rows.append(event(p, 100 * DAY - p * timedelta(minutes=1), app=None if internal else "app1", published=p != 5))
    keep |= {5}  # never published
    rows.append(delivery(1, "E1009", "PENDING", None))  # position 9: a delivery still to be made POSTs it
    rows.append(delivery(2, "E1012", "SUCCEEDED", 99 * DAY))  # position 12: delivered, may go
    keep |= {9}
    rows.append(event(31, 95 * DAY, kind="pay.anomaly"))  # an app's internal event: the app window
    for p in range(32, 45):  # 10 days old: past the internal window only
        rows.append(event(p, 10 * DAY, app=None if p % 2 else "app1"))
    keep |= {p for p in range(32, 45) if p % 2 == 0}
    for p in range(45, 61):  # 1 day old: within both windows
        rows.append(event(p, DAY, app=None if p % 3 == 0 else "app1"))
    keep |= set(range(45, 61))
    rows.append(event(None, 100 * DAY))  # committed but not numbered yet
    keep |= {None}
    return rows, keep


async def test_a_run_deletes_what_is_past_its_window_and_nothing_still_needed(c: Container) -> None:
    rows, keep = history()
    await store(c, rows, booked=60)

    deleted = await run_retention(c)

    assert await outbox_positions(c) == keep
    assert deleted == 61 - len(keep)
    assert await delivery_ids(c) == {"D1", "D2"}  # deliveries keep their final state
    assert await run_retention(c) == 0
    assert await outbox_positions(c) == keep


async def test_a_delivery_whose_event_is_gone_cannot_be_resent(c: Container) -> None:
    """Its body went with the event: a resend would POST nothing. One whose event is kept still can be resent."""
    rows, _ = history()
    rows.append(delivery(3, "E1045", "FAILED", DAY))  # position 45: young, kept
    await store(c, rows, booked=60)
    await run_retention(c)
    notice = NoticeService(c.db)

    with pytest.raises(DeliveryNotResendable, match="retention window"):
        await notice.resend("D2")
    assert (await notice.resend("D3")).status == "PENDING"


async def test_rows_the_ledger_has_not_booked_and_the_top_position_stay(c: Container) -> None:
    old = [event(p, 100 * DAY - p * timedelta(minutes=1), app=None if p % 2 else "app1") for p in range(1, 21)]
    await store(c, list(old), booked=12)

    assert await run_retention(c) == 12
    assert await outbox_positions(c) == set(range(13, 21))

    async with c.db.uow() as uow:  # the ledger books everything: all may go but the top row, which numbering needs
        cursor = await uow.session.get(BookingCursor, CURSOR)
        assert cursor is not None
        cursor.position = 20
        await uow.commit()
    assert await run_retention(c) == 7
    assert await outbox_positions(c) == {20}


async def test_without_a_ledger_cursor_no_numbered_row_goes(c: Container) -> None:
    await store(c, [event(p, 100 * DAY) for p in range(1, 6)], booked=None)

    assert await run_retention(c) == 0
    assert await outbox_positions(c) == set(range(1, 6))


async def test_attempts_of_deliveries_finished_before_the_window_go_and_the_others_stay(c: Container) -> None:
    rows: list[object] = [
        delivery(1, "E1", "SUCCEEDED", 40 * DAY),
        delivery(2, "E2", "FAILED", 35 * DAY),
        delivery(3, "E3", "SUCCEEDED", 10 * DAY),
        delivery(4, "E4", "PENDING", None),
        delivery(5, "E5", "FAILED", 10 * DAY),  # retried for long: finished within the window
    ]
    plan = {  # attempt ids grow with time (snowflakes), like the worker's
        "D4": [60 * DAY, 59 * DAY], "D1": [41 * DAY, 40 * DAY, 40 * DAY], "D5": [39 * DAY, 20 * DAY, 10 * DAY],
        "D2": [38 * DAY, 37 * DAY, 36 * DAY, 35 * DAY, 35 * DAY, 35 * DAY, 35 * DAY, 35 * DAY, 35 * DAY],
        "D3": [11 * DAY, 10 * DAY],
    }  # fmt: skip
    ages = sorted(((age, d) for d, list_ in plan.items() for age in list_), key=lambda x: -x[0])
    attempts = [attempt(10_000 + i, d, age) for i, (age, d) in enumerate(ages)]
    rows += attempts
    await store(c, rows, booked=0)
    keep = {a.id for a in attempts if a.delivery_id in ("D3", "D4", "D5")}

    assert await run_retention(c) == len(attempts) - len(keep)
    assert await attempt_ids(c) == keep
    assert await delivery_ids(c) == {"D1", "D2", "D3", "D4", "D5"}
    assert await run_retention(c) == 0


async def test_more_rows_than_the_windows_keep_stay_bounded_as_time_goes_on(c: Container) -> None:
    """120 days of events, two a day (one of an app, one internal), booked as they come; the job runs daily."""
    assert isinstance(c.clock, FrozenClock)
    position = 0
    for _ in range(120):
        c.clock.advance(DAY)
        rows: list[object] = []
        for app in ("app1", None):
            position += 1
            rows.append(event(position, timedelta(0), app=app, at=c.clock.now()))
        async with c.db.uow() as uow:
            uow.session.add_all(rows)
            await uow.commit()
        await set_cursor(c, position)
        await run_retention(c)
    remaining = await outbox_positions(c)
    # the app's last 90 days (the 90 days-old row is exactly at the cutoff: kept) and the internal last 7 days
    assert len(remaining) == 91 + 8
    assert max(p for p in remaining if p is not None) == position


async def set_cursor(c: Container, position: int) -> None:
    async with c.db.uow() as uow:
        cursor = await uow.session.get(BookingCursor, CURSOR)
        if cursor is None:
            uow.session.add(BookingCursor(name=CURSOR, position=position, updated_at=NOW))
        else:
            cursor.position = position
        await uow.commit()


async def test_two_schedulers_running_the_job_at_once_purge_once(c: Container) -> None:
    rows, keep = history()
    await store(c, rows, booked=60)
    [job] = [j for j in JOBS if j.name == "retention"]
    first, second = JobRunner(c), JobRunner(c)
    try:
        results = await asyncio.gather(first.run_guarded(job), second.run_guarded(job))
    finally:
        await asyncio.gather(first.stop(), second.stop())

    assert sorted(results, key=lambda r: r is None) == [61 - len(keep), None]  # one ran, the other was refused
    assert await outbox_positions(c) == keep
