"""Stopping the scheduler lets a running job finish instead of cancelling it mid-statement (on SQLite a job
cancelled inside a statement could keep the write lock and stall shutdown), and refuses new runs meanwhile."""

from __future__ import annotations

import asyncio

from sqlalchemy import select

from tomato.core.leases import JobLease
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
