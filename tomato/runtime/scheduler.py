"""Timed jobs on APScheduler 3.11, each guarded by a database lease so any number of scheduler processes may run
and each job still has one runner at a time: the lease is renewed while the job runs, and a job whose lease went
to another runner stops before its next write. Correctness never depends on the scheduler firing: every job works
off what the database says is due — which is also why a job cut short at shutdown loses nothing: it runs again.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from tomato.account.check import alert_violations, check_ledger
from tomato.bootstrap import Container
from tomato.core.leases import HeldLease, LeaseLost, release, try_acquire
from tomato.runtime.retention import run_retention
from tomato.runtime.shutdown import GRACE_S, bounded, stop_tasks

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Job:
    name: str
    every_s: float
    run: Callable[[Container], Awaitable[int]]
    ttl_s: float | None = None  # lease TTL; default max(30 s, 6 × every_s)
    at_start: bool = False  # also run as soon as the scheduler starts (a job that catches up what was missed)
    every_setting: str = ""  # a Settings field that overrides `every_s` (seconds)


async def _compensation(c: Container) -> int:
    return await c.pay.query_stuck_orders()


async def _barcode(c: Container) -> int:
    return await c.pay.poll_barcodes()


async def _splits(c: Container) -> int:
    return await c.pay.poll_splits()


async def _expiry(c: Container) -> int:
    return await c.pay.close_expired_orders()


async def _refund_compensation(c: Container) -> int:
    return await c.pay.query_pending_refunds()


async def _settlement(c: Container) -> int:
    return await c.settlement.run_due()


async def _payout_compensation(c: Container) -> int:
    return await c.payouts.query_pending()


async def _reconciliation(c: Container) -> int:
    """Every active account's dates of the last `recon_catch_up_days` up to yesterday without a finished batch."""
    return await c.reconciliation.catch_up(days=c.settings.recon_catch_up_days)


async def _ledger_check(c: Container) -> int:
    """`tomato ledger check` on a schedule: an ERROR line per violation, the count on tomato_ledger_check_violations."""
    report = await check_ledger(
        c.db, c.pay.succeeded_orders, c.clock.now(), pending_payouts=c.payouts.pending_by_merchant
    )
    alert_violations(report)
    return len(report.violations)


async def _breaker_watch(c: Container) -> int:
    return await c.channels.watch_breakers()


JOBS = (
    Job("pay.compensation", 5.0, _compensation),
    Job("pay.barcode", 1.0, _barcode),
    Job("pay.splits", 5.0, _splits),  # a till waits: unconfirmed barcode payments are asked about every 2.5 s
    Job("pay.expiry", 10.0, _expiry),
    Job("pay.refund_compensation", 5.0, _refund_compensation),
    Job("account.settlement", 60.0, _settlement, at_start=True),
    Job("account.payout_compensation", 5.0, _payout_compensation),
    # daily in effect: a date once MATCHED or DISCREPANCIES is not run again; an ERROR date (statement not ready yet)
    # is tried again each round
    Job("reconciliation.daily", 900.0, _reconciliation, ttl_s=3600.0, at_start=True),
    # hourly (and at start, so frequent restarts never put it off): old outbox rows and webhook attempts,
    # TOMATO_RETENTION_BATCH rows per statement
    Job("retention", 3600.0, run_retention, ttl_s=600.0, at_start=True),
    Job("account.ledger_check", 3600.0, _ledger_check, ttl_s=600.0, every_setting="ledger_check_every_s"),
    Job("channel.breaker_watch", 15.0, _breaker_watch),  # ERROR once a breaker stays open (channel.breaker_watch)
)


Observer = Callable[[str, str, float], None]  # (job, outcome, seconds): runtime.process_metrics.JobMetrics


class JobRunner:
    def __init__(
        self, c: Container, *, speed: float = 1.0, jobs: Sequence[Job] = JOBS, observe: Observer | None = None
    ) -> None:
        self._c = c
        self._observe = observe
        self._owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._scheduler = AsyncIOScheduler(timezone="UTC")
        self._speed = speed
        self._jobs = tuple(jobs)
        self._running: set[asyncio.Task[object]] = set()
        self._stopping = False

    async def run_guarded(self, job: Job) -> int | None:
        """Runs `job` if this process holds (or can take) its lease; None when another runner has it, took it
        over while the job ran (the job is then stopped at its next write, see core.leases), or when the stop
        cancelled it (said in one line: APScheduler would log the CancelledError as a traceback)."""
        if self._stopping:
            return None
        task = asyncio.current_task()
        assert task is not None
        self._running.add(task)
        started, outcome = time.monotonic(), "failed"
        try:
            ttl = timedelta(seconds=job.ttl_s or max(30.0, job.every_s * 6))
            name = f"job:{job.name}"
            fencing = await try_acquire(self._c.db, name, self._owner, ttl)
            if fencing is None:
                outcome = "skipped"
                return None
            async with HeldLease(self._c.db, name, self._owner, fencing, ttl).kept():
                done = await job.run(self._c)
            outcome = "ok"
            return done
        except LeaseLost:
            outcome = "lost"
            log.warning("job %s lost its lease to another runner and stopped before its next write", job.name)
            return None
        except asyncio.CancelledError:
            outcome = "cancelled"
            if not self._stopping:
                raise
            log.info("job %s cut short by the shutdown; it runs again next round", job.name)
            return None
        except Exception:
            log.exception("job %s failed; it runs again next round", job.name)
            return None
        finally:
            self._running.discard(task)
            if self._observe is not None:
                self._observe(job.name, outcome, time.monotonic() - started)

    def start(self) -> None:
        for job in self._jobs:
            self._scheduler.add_job(
                self.run_guarded,
                "interval",
                args=[job],
                seconds=max(0.5, self._every(job) / self._speed),
                id=job.name,
                max_instances=1,
                coalesce=True,
                misfire_grace_time=60,
                **({"next_run_time": datetime.now(UTC)} if job.at_start else {}),
            )
        self._scheduler.start()

    def _every(self, job: Job) -> float:
        return float(getattr(self._c.settings, job.every_setting)) if job.every_setting else job.every_s

    async def stop(self, grace_s: float = GRACE_S) -> None:
        """Stops firing, lets running jobs finish (up to `grace_s`), cancels what is left (a channel call nobody
        answers, a statement in progress: no HTTP runs inside a transaction, and a statement cancelled on SQLite is
        rolled back), releases the leases so another scheduler may take over at once, and only then shuts
        APScheduler down: by then none of its runs is pending, so it has nothing to cancel."""
        self._stopping = True
        if self._scheduler.running:
            self._scheduler.pause()
        await stop_tasks(list(self._running), grace_s=grace_s)
        leases = [f"job:{job.name}" for job in self._jobs]
        await asyncio.gather(*(bounded(release(self._c.db, name, self._owner), f"lease {name}") for name in leases))
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)
