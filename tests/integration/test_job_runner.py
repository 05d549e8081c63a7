"""Stopping the scheduler lets a running job finish instead of cancelling it mid-statement (on SQLite a job
cancelled inside a statement could keep the write lock and stall shutdown), and refuses new runs meanwhile.
A running job's lease is renewed, and a job whose lease was taken over writes nothing more."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sqlalchemy import select, update

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
