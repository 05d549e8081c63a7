"""Stopping the scheduler lets a running job finish within its grace and refuses new runs meanwhile; a job still
running after the grace is cancelled quietly (no CancelledError traceback from APScheduler), and one cancelled inside
a SQLite statement gives the write lock back (it used to keep it and stall shutdown). A running job's lease is
renewed, and a job whose lease was taken over writes nothing more."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import timedelta

import pytest
from sqlalchemy import event, insert, select, text, update

from tomato.bootstrap import Container
from tomato.core.clock import as_utc, utcnow
from tomato.core.leases import JobLease, try_acquire
from tomato.runtime.scheduler import Job, JobRunner


async def test_stop_lets_the_running_job_finish_and_refuses_new_runs(stack) -> None:  # type: ignore[no-untyped-def]
    c, _ = stack
    started, may_finish = asyncio.Event(), asyncio.Event()
    finished: list[str] = []

    async def slow(_: object) -> int:
        started.set()
        await may_finish.wait()
        async with c.db.uow() as uow:  # still writing when the stop begins
            await uow.session.execute(select(JobLease))
            await uow.commit()
        finished.append("slow")
        return 1

    runner = JobRunner(c)
    job = Job("test.slow", 5.0, slow)
    run = asyncio.create_task(runner.run_guarded(job))
    await started.wait()
    stopping = asyncio.create_task(runner.stop(grace_s=30))
    await asyncio.sleep(0)  # the stop has begun: new runs are refused while the running one goes on
    assert await asyncio.wait_for(runner.run_guarded(Job("test.other", 5.0, slow)), timeout=10) is None
    assert not stopping.done()
    may_finish.set()
    await stopping
    assert run.done() and not run.cancelled() and run.result() == 1
    assert finished == ["slow"]
    async with c.db.uow() as uow:
        leases = (await uow.session.scalars(select(JobLease).where(JobLease.name == "job:test.other"))).all()
    assert leases == []  # the refused run never took a lease


async def marker_names(c) -> list[str]:  # type: ignore[no-untyped-def]
    async with c.db.uow() as uow:
        rows = await uow.session.scalars(select(JobLease.name).where(JobLease.name.startswith("marker:")))
        return sorted(rows)


async def write_marker(c, n: int) -> None:  # type: ignore[no-untyped-def]
    """One write of the job (any table would do; this one every test database has)."""
    async with c.db.uow() as uow:
        uow.session.add(JobLease(name=f"marker:{n}", owner="job", expires_at=utcnow(), fencing=1))
        await uow.commit()


async def lease_of(c, name: str) -> JobLease:  # type: ignore[no-untyped-def]
    async with c.db.uow() as uow:
        return (await uow.session.scalars(select(JobLease).where(JobLease.name == name))).one()


async def test_a_job_that_outlives_its_lease_ttl_keeps_the_lease(stack) -> None:  # type: ignore[no-untyped-def]
    c, _ = stack
    ttl = 1.0
    verdicts: list[int | None] = []

    async def long(_: object) -> int:
        first_expiry = as_utc((await lease_of(c, "job:test.long")).expires_at)
        while utcnow() <= first_expiry + timedelta(seconds=ttl):  # well past the TTL it was granted with
            await asyncio.sleep(0.05)  # the condition is time itself passing
        verdicts.append(await try_acquire(c.db, "job:test.long", "another-scheduler", timedelta(seconds=ttl)))
        await write_marker(c, 1)
        return 1

    runner = JobRunner(c)
    assert await asyncio.wait_for(runner.run_guarded(Job("test.long", 5.0, long, ttl_s=ttl)), timeout=30) == 1
    assert verdicts == [None]  # renewed while it ran: nobody else could take it
    assert await marker_names(c) == ["marker:1"]
    await runner.stop()


async def test_a_job_whose_lease_was_taken_over_stops_before_its_next_write(stack) -> None:  # type: ignore[no-untyped-def]
    c, _ = stack
    wrote_first, taken = asyncio.Event(), asyncio.Event()
    tries: list[int] = []

    async def job(_: object) -> int:
        await write_marker(c, 1)
        wrote_first.set()
        await taken.wait()
        for n in (2, 3, 4):  # each write guarded like the pay jobs guard theirs: a failure is logged and skipped
            tries.append(n)
            try:
                await write_marker(c, n)
            except Exception:
                continue
        return 4

    runner = JobRunner(c)
    run = asyncio.create_task(runner.run_guarded(Job("test.taken", 5.0, job, ttl_s=30.0)))
    await asyncio.wait_for(wrote_first.wait(), timeout=10)
    async with c.db.uow() as uow:  # another scheduler took the lease (ours lapsed during a pause, say)
        await uow.session.execute(
            update(JobLease)
            .where(JobLease.name == "job:test.taken")
            .values(owner="another-scheduler", fencing=JobLease.fencing + 1, expires_at=utcnow() + timedelta(hours=1))
        )
        await uow.commit()
    taken.set()
    assert await asyncio.wait_for(run, timeout=10) is None  # stopped, not finished
    assert tries == [2]  # the first write after the takeover ended the job
    assert await marker_names(c) == ["marker:1"]
    assert (await lease_of(c, "job:test.taken")).owner == "another-scheduler"
    await runner.stop()


async def test_a_job_still_running_after_the_grace_is_cancelled_quietly_and_its_lease_released(  # type: ignore[no-untyped-def]
    stack, caplog: pytest.LogCaptureFixture
) -> None:
    """Like a channel query that never gets an answer: the stop does not wait for it beyond the grace."""
    c, _ = stack
    started, never = asyncio.Event(), asyncio.Event()

    async def hangs(_: object) -> int:
        started.set()
        await never.wait()
        return 1

    runner = JobRunner(c, jobs=(Job("test.hangs", 0.5, hangs),))
    runner.start()
    await asyncio.wait_for(started.wait(), timeout=10)
    await asyncio.wait_for(runner.stop(grace_s=0.2), timeout=10)
    await asyncio.sleep(0)  # APScheduler's done-callbacks run on the next turn of the loop
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [], [r.getMessage() for r in errors]
    async with c.db.uow() as uow:
        lease = (await uow.session.scalars(select(JobLease).where(JobLease.name == "job:test.hangs"))).one()
    assert as_utc(lease.expires_at) <= utcnow()  # released: another scheduler may take the job at once


SLOW = "WITH RECURSIVE c(x) AS (SELECT {first} UNION ALL SELECT x + 1 FROM c WHERE x < 3000000) SELECT count(*) FROM c"


async def _write_slowly(c: Container, executing: asyncio.Event) -> int:
    """A write, then a statement of a second or so; `executing` is set once that statement runs (on SQLite it calls
    back from the database thread; on PostgreSQL the server lists it as active)."""
    async with c.db.uow() as uow:  # on SQLite this holds the write lock from BEGIN IMMEDIATE
        await uow.session.execute(insert(JobLease).values(name="test.uncommitted", owner="x",
                                                          expires_at=utcnow(), fencing=1))  # fmt: skip
        first = "1"
        if c.db.dialect == "sqlite":
            raw = await (await uow.session.connection()).get_raw_connection()
            loop = asyncio.get_running_loop()

            def running() -> int:
                loop.call_soon_threadsafe(executing.set)
                return 1

            await raw.driver_connection.create_function("running", 0, running)
            first = "running()"
        else:
            asyncio.create_task(_set_when_active(c, executing))
        await uow.session.execute(text(SLOW.format(first=first)))  # cancelled in here
        await uow.commit()
    return 1


async def _set_when_active(c: Container, executing: asyncio.Event) -> None:
    sql = text("SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query LIKE 'WITH RECURSIVE c(x)%'")
    async with c.db.connect() as conn:
        while not (await conn.execute(sql)).scalar_one():
            await asyncio.sleep(0.01)  # polling the server for the condition
    executing.set()


async def _database_is_free_and_the_write_rolled_back(c: Container) -> None:
    async with asyncio.timeout(10):  # the busy timeout is 30 s: a kept write lock fails here
        async with c.db.uow() as uow:
            later = utcnow() + timedelta(seconds=1)
            await uow.session.execute(
                insert(JobLease).values(name="test.after", owner="y", expires_at=later, fencing=1)
            )
            await uow.commit()
    async with c.db.uow() as uow:
        names = set((await uow.session.scalars(select(JobLease.name))).all())
    assert "test.after" in names and "test.uncommitted" not in names


async def test_a_unit_of_work_cancelled_inside_a_statement_rolls_back_and_frees_the_database(stack) -> None:  # type: ignore[no-untyped-def]
    c, _ = stack
    started = asyncio.Event()
    task = asyncio.create_task(_write_slowly(c, started))
    await started.wait()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await _database_is_free_and_the_write_rolled_back(c)


async def test_stop_cancels_a_job_inside_a_statement_and_the_database_stays_usable(stack) -> None:  # type: ignore[no-untyped-def]
    c, _ = stack
    started = asyncio.Event()
    runner = JobRunner(c)
    run = asyncio.create_task(runner.run_guarded(Job("test.writer", 5.0, lambda c: _write_slowly(c, started))))
    await started.wait()
    await asyncio.wait_for(runner.stop(grace_s=0), timeout=20)
    assert await run is None  # cancelled by the stop, quietly
    await _database_is_free_and_the_write_rolled_back(c)


async def test_a_cancel_landing_while_a_unit_of_work_hands_back_its_connection_is_no_error(  # type: ignore[no-untyped-def]
    stack, caplog: pytest.LogCaptureFixture
) -> None:
    """A job cancelled by the stop just as its unit of work ends: the connection's reset (a rollback) runs to its
    end and the connection goes back to the pool. It used to be cut inside the pool's reset, which SQLAlchemy logs
    as "Exception during reset or similar" with a traceback and answers by throwing the connection away."""
    c, _ = stack
    pool = c.db.engine.sync_engine.pool
    victims: list[asyncio.Task[None]] = []
    invalidated: list[object] = []

    def cancel_the_reader(*_: object) -> None:  # runs just before the reset's rollback is awaited
        if victims:
            victims.pop().cancel()

    def note_invalidated(*args: object) -> None:
        invalidated.append(args)

    async def read() -> None:
        async with c.db.uow() as uow:
            await uow.session.execute(select(JobLease))
            victims.append(reader)  # cancelled once the unit of work hands its connection back

    before = pool.checkedout()
    event.listen(pool, "reset", cancel_the_reader)
    event.listen(pool, "invalidate", note_invalidated)
    try:
        with caplog.at_level(logging.WARNING):
            reader = asyncio.create_task(read())
            with pytest.raises(asyncio.CancelledError):
                await reader
    finally:
        event.remove(pool, "reset", cancel_the_reader)
        event.remove(pool, "invalidate", note_invalidated)
    assert victims == []  # the cancel did land
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert invalidated == []
    assert pool.checkedout() == before
