"""The reconciliation use cases: runs (fetch → parse → load → match → record → repair), the reads and the summary;
the finance workflow on discrepancies and pay anomalies is mixed in from workflow.py. With it, the only place in this
context that opens units of work (loader.py takes its own connection for the bulk load).

A run of (channel account, business date) has one runner at a time, through a database lease; a second caller
waits for the first and answers the same batch. The statement is fetched with no unit of work open. A re-run
replaces what is still OPEN and keeps every resolution (and so books no second adjustment).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select

from tomato.core.alerts import RECONCILIATION_DISCREPANCIES, alert
from tomato.core.clock import as_utc, utcnow
from tomato.core.leases import HeldLease, JobLease, LeaseLost, release, try_acquire
from tomato.core.outbox import add_event
from tomato.reconciliation import loader, matching
from tomato.reconciliation import repository as repo
from tomato.reconciliation.deps import ReconDeps
from tomato.reconciliation.errors import (
    BatchNotFound,
    DiscrepancyNotFound,
    StatementFailed,
)
from tomato.reconciliation.events import SETTLED
from tomato.reconciliation.schemas import (
    BatchStatus,
    BatchView,
    DiscrepancyView,
)
from tomato.reconciliation.source import NoStatementSource, StatementSource
from tomato.reconciliation.summary import summary_csv
from tomato.reconciliation.views import adjustment_facts, batch_view, discrepancy_view, snapshot, to_json
from tomato.reconciliation.workflow import FinanceWorkflow

__all__ = ["ReconDeps", "ReconciliationService", "adjustment_facts", "batch_view", "discrepancy_view"]

log = logging.getLogger(__name__)
LEASE_TTL = timedelta(seconds=120)


class ReconciliationService(FinanceWorkflow):
    def __init__(self, deps: ReconDeps) -> None:
        self.deps = deps
        self.source: StatementSource = deps.source or NoStatementSource()
        self._tz = ZoneInfo(deps.business_tz)
        self.last_timings: dict[str, float] = {}  # of this process's last run (logged; read by the benchmark)
        self._owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"

    # --- dates ------------------------------------------------------------------------------------------------

    def today(self) -> date:
        return as_utc(self.deps.clock.now()).astimezone(self._tz).date()

    def window(self, day: date) -> matching.Window:
        start = datetime(day.year, day.month, day.day, tzinfo=self._tz)
        nxt = day + timedelta(days=1)
        end = datetime(nxt.year, nxt.month, nxt.day, tzinfo=self._tz)
        return matching.Window(day, as_utc(start), as_utc(end), timedelta(minutes=self.deps.suspense_minutes))

    # --- runs ---------------------------------------------------------------------------------------------------

    async def run(
        self, channel_account_id: str, day: date, *, progress: Callable[[int], None] | None = None
    ) -> BatchView:
        """Runs (or re-runs) the date; a concurrent second call waits for the first and answers its batch. An
        unusable statement records the batch ERROR and raises StatementFailed (502 CHANNEL_ERROR)."""
        account = await self.deps.channels.get_account(channel_account_id)  # 404 for an unknown account
        now = self.deps.clock.now()
        async with self.deps.db.uow() as uow:
            batch_id = await repo.ensure_batch(
                uow.session,
                {
                    "id": self.deps.ids.next_id("RB"),
                    "channel_account_id": account.id,
                    "channel": account.channel,
                    "business_date": day.isoformat(),
                    "status": BatchStatus.RUNNING.value,
                    "counts": "{}",
                    "summary": "{}",
                    "discrepancies": 0,
                    "runs": 0,
                    "created_at": now,
                },  # fmt: skip
            )
            await uow.commit()
        name = f"recon:{account.id}:{day.isoformat()}"
        owner = f"{self._owner}:{uuid.uuid4().hex[:8]}"  # each run its own holder, in this process too
        fencing = await try_acquire(self.deps.db, name, owner, LEASE_TTL)
        if fencing is None:
            await self._wait_for(name)
        else:
            try:
                async with HeldLease(self.deps.db, name, owner, fencing, LEASE_TTL).kept():
                    await self._run_held(batch_id, account.id, account.channel, day, progress)
            except LeaseLost:
                log.warning("reconciliation %s lost its lease; the new holder finishes it", name)
                await self._wait_for(name)
            finally:
                await release(self.deps.db, name, owner)
        view = await self.get_batch(batch_id)
        if view.status == BatchStatus.ERROR:
            raise StatementFailed(f"statement for {account.id} on {day.isoformat()}: {view.error}")
        return view

    async def _wait_for(self, name: str) -> None:
        """Until the other runner's lease is released or has expired (it then finished or died)."""
        deadline = self.deps.clock.timestamp() + LEASE_TTL.total_seconds() * 2
        while True:
            async with self.deps.db.engine.connect() as conn:
                row = (await conn.execute(select(JobLease.expires_at).where(JobLease.name == name))).first()
            if row is None or as_utc(row[0]) <= utcnow():
                return
            if self.deps.clock.timestamp() > deadline:
                return
            await asyncio.sleep(0.1)

    async def _run_held(
        self, batch_id: str, account_id: str, channel: str, day: date, progress: Callable[[int], None] | None
    ) -> None:
        started = self.deps.clock.now()
        async with self.deps.db.uow() as uow:
            batch = await repo.get_batch(uow.session, batch_id)
            assert batch is not None
            runs = batch.runs + 1
            await repo.set_batch(uow.session, batch_id, {"started_at": started, "finished_at": None, "runs": runs})
            await uow.commit()
        t0 = time.perf_counter()
        totals: asyncio.Future[dict[str, int]] | None = None
        try:
            try:
                lines = await self.source.open(channel, account_id, day)  # no unit of work is open: it downloads
                t1 = time.perf_counter()
                if self.deps.db.dialect == "postgresql":
                    # our side's totals depend on pay's rows alone: read them while the statement loads (the load is
                    # bound by the parser's thread, the server has a core to spare)
                    totals = asyncio.ensure_future(self._local_totals(account_id, self.window(day)))
                loaded = await loader.load(self.deps.db, batch_id, lines, progress=progress)
            except Exception as exc:  # the file could not be had, or was rejected whole
                log.warning("reconciliation %s %s: statement unusable: %s", account_id, day, exc)
                await self._error(batch_id, f"{type(exc).__name__}: {exc}"[:1000])
                return
            if loaded.malformed:
                reasons = "; ".join(loaded.reasons)
                await self._error(batch_id, f"{loaded.malformed} malformed rows: {reasons}"[:1000])
                return
            t2 = time.perf_counter()
            await self._match(batch_id, account_id, day, totals)
        finally:
            if totals is not None and not totals.done():
                totals.cancel()
            if totals is not None:
                with contextlib.suppress(Exception, asyncio.CancelledError):
                    await totals
        t3 = time.perf_counter()
        await self._repair(batch_id)
        self.last_timings = {"fetch_s": t1 - t0, "parse_load_s": t2 - t1, "match_s": t3 - t2,
                             "repair_s": time.perf_counter() - t3}  # fmt: skip
        log.info("reconciliation %s %s: %d rows; %s", account_id, day, loaded.rows,
                 ", ".join(f"{k} {v:.2f}" for k, v in self.last_timings.items()))  # fmt: skip

    async def _error(self, batch_id: str, reason: str) -> None:
        async with self.deps.db.uow() as uow:
            await repo.set_batch(
                uow.session,
                batch_id,
                {"status": BatchStatus.ERROR.value, "error": reason, "finished_at": self.deps.clock.now()},
            )
            await uow.commit()

    async def _line_facts(self, batch_id: str) -> matching.LineFacts:
        """The staged lines' duplicate keys and totals, read on a connection of their own (PostgreSQL) while the
        matching transaction joins them against ours: the lines are fixed once loaded (the lease holds the batch)."""
        async with self.deps.db.engine.connect() as conn:
            await repo.tune_for_matching(conn)
            return await matching.read_line_facts(conn, batch_id)  # read only: rolled back on close

    async def _local_totals(self, account_id: str, w: matching.Window) -> dict[str, int]:
        """Our side's totals, read on a connection of their own (PostgreSQL) while the statement loads, off the
        matching's critical path. It is its own snapshot, as each statement of the matching transaction is (READ
        COMMITTED): a payment pay confirms meanwhile is counted by the join and not here, as it could already be
        between two statements; the next run of the batch counts it on both sides."""
        ours = repo.ours(self.deps.pay.recon_payments(account_id, w.start, w.end),
                         self.deps.pay.recon_refunds(account_id, w.start, w.end))  # fmt: skip
        async with self.deps.db.engine.connect() as conn:
            await repo.tune_for_matching(conn)
            return await repo.local_totals(conn, ours)  # read only: rolled back on close

    async def _match(
        self, batch_id: str, account_id: str, day: date, totals: Awaitable[dict[str, int]] | None = None
    ) -> None:
        """`totals`: our side's totals already being read (`_local_totals`); else read in the matching run."""
        w = self.window(day)
        now = self.deps.clock.now()
        facts = asyncio.ensure_future(self._line_facts(batch_id)) if self.deps.db.dialect == "postgresql" else None
        try:
            await self._match_in(batch_id, account_id, w, now, facts, totals)
        finally:
            if facts is not None and not facts.done():
                facts.cancel()
                with contextlib.suppress(Exception, asyncio.CancelledError):
                    await facts
        self.deps.wake_relay()

    async def _match_in(
        self,
        batch_id: str,
        account_id: str,
        w: matching.Window,
        now: datetime,
        facts: Awaitable[Any] | None,
        totals: Awaitable[dict[str, int]] | None,
    ) -> None:
        async with self.deps.db.uow() as uow:
            s = uow.session
            out = await matching.match(
                s, self.deps.ids, now, batch_id=batch_id, account_id=account_id, window=w,
                payments=self.deps.pay.recon_payments(account_id, w.start, w.end),
                refunds=self.deps.pay.recon_refunds(account_id, w.start, w.end), line_facts=facts,
                local_totals=totals,
            )  # fmt: skip
            per_type = await repo.type_counts(s, batch_id)
            found = sum(per_type.values())
            counts = {
                "channel_rows": out.totals["channel_rows"],
                "local_rows": out.totals["local_rows"],
                "matched": out.matched,
                **{t: per_type.get(t, 0) for t in matching.TYPES},
                "SUSPENSE": await repo.suspense_count(s, batch_id),
            }
            status = BatchStatus.MATCHED if found == 0 else BatchStatus.DISCREPANCIES
            values: dict[str, Any] = {
                "status": status.value, "counts": to_json(counts), "summary": to_json(out.totals),
                "discrepancies": found, "error": None, "finished_at": self.deps.clock.now(),
            }  # fmt: skip
            batch = await repo.get_batch(s, batch_id)
            assert batch is not None
            if status is BatchStatus.MATCHED and batch.settled_event_id is None:
                values["settled_event_id"] = self._settle(s, batch_id, account_id, w.iso, out.totals)
            await repo.set_batch(s, batch_id, values)
            await uow.commit()
        if status is BatchStatus.DISCREPANCIES:
            by_type = " ".join(f"{t}={per_type[t]}" for t in matching.TYPES if per_type.get(t))
            alert(
                log, RECONCILIATION_DISCREPANCIES,
                f"reconciliation batch {batch_id} ({account_id} {w.iso}) ended with {found} discrepancies",
                batch_id=batch_id, channel_account_id=account_id, business_date=w.iso, discrepancies=found,
                by_type=by_type,
            )  # fmt: skip

    def _settle(self, s: Any, batch_id: str, account_id: str, day: str, t: dict[str, int]) -> str | None:
        """The channel settles the matched day to our bank: one `reconciliation.settled` event per batch."""
        payments, refunds = t["channel_pay_amount"], t["channel_refund_amount"]
        fees, returned = t["channel_pay_fee"], t["channel_refund_fee"]
        net = payments - refunds - fees + returned
        if net == 0:
            return None
        facts = {"batch_id": batch_id, "channel_account_id": account_id, "business_date": day, "payments": payments,
                 "refunds": refunds, "fees": fees, "fees_returned": returned, "net": net}  # fmt: skip
        row = add_event(s, self.deps.ids, event_type=SETTLED, aggregate_type="recon_batch", aggregate_id=batch_id,
                        data={k: v for k, v in facts.items()}, facts=facts)  # fmt: skip
        return row.id

    async def _repair(self, batch_id: str) -> None:
        """Each OPEN MISSING_LOCAL payment: ask the channel (no unit of work open) and, when it confirms, apply it
        through pay's confirm path; the discrepancy is then AUTO_RESOLVED."""
        async with self.deps.db.uow() as uow:
            batch = await repo.get_batch(uow.session, batch_id)
            todo = list(await repo.open_missing_local_payments(uow.session, batch_id))
        assert batch is not None
        for d in todo:
            if not d.order_no:
                continue
            try:
                paid = await self.deps.pay.confirm_from_channel(d.order_no, batch.channel_account_id)
            except Exception:
                log.warning("reconciliation: could not confirm %s at the channel", d.order_no, exc_info=True)
                continue
            if not paid:
                continue
            now = self.deps.clock.now()
            async with self.deps.db.uow() as uow:
                before = snapshot(d)
                done = await repo.resolve_discrepancy(
                    uow.session, d.id, "OPEN", {"status": "AUTO_RESOLVED", "resolved_at": now, "resolved_by": "system"}
                )
                if done:
                    after = dict(before, status="AUTO_RESOLVED")
                    self._audit(
                        uow.session,
                        "discrepancy",
                        d.id,
                        "AUTO_RESOLVE",
                        "system",
                        "the channel's query confirmed the payment; applied as paid",
                        before,
                        after,
                    )
                    await uow.commit()

    async def catch_up(self, *, days: int = 7, account_id: str | None = None) -> int:
        """Runs every date of the last `days` (up to yesterday) that has no finished batch, per active account;
        returns how many runs were made. A date whose statement is not ready yet stays ERROR and is tried again."""
        yesterday = self.today() - timedelta(days=1)
        since = yesterday - timedelta(days=days - 1)
        accounts = [account_id] if account_id else await self._account_ids()
        done = 0
        for acc in accounts:
            async with self.deps.db.uow() as uow:
                have = await repo.batch_dates(uow.session, acc, since.isoformat())
            day = since
            while day <= yesterday:
                if have.get(day.isoformat()) not in (BatchStatus.MATCHED, BatchStatus.DISCREPANCIES):
                    try:
                        await self.run(acc, day)
                    except StatementFailed as exc:
                        log.warning("reconciliation catch-up: %s", exc)
                    done += 1
                day += timedelta(days=1)
        return done

    async def open_discrepancies(self) -> int:
        """Discrepancies still `OPEN` across every batch (finance has not resolved them), for `/metrics`."""
        async with self.deps.db.uow() as uow:
            return await repo.count_open_discrepancies(uow.session)

    async def active_accounts(self) -> list[str]:
        """Every ACTIVE channel account's id (what the daily run and `tomato reconcile` cover)."""
        return await self._account_ids()

    async def _account_ids(self) -> list[str]:
        out: list[str] = []
        after: str | None = None
        while True:
            page = await self.deps.channels.list_accounts(after, 100)
            out.extend(a.id for a in page if a.status == "ACTIVE")
            if len(page) < 100:
                return out
            after = page[-1].id

    # --- reads ----------------------------------------------------------------------------------------------------

    async def get_batch(self, batch_id: str) -> BatchView:
        async with self.deps.db.uow() as uow:
            b = await repo.get_batch(uow.session, batch_id)
        if b is None:
            raise BatchNotFound(f"batch {batch_id} not found")
        return batch_view(b)

    async def list_batches(self, after: tuple[str, str] | None, limit: int, filters: dict[str, str]) -> list[BatchView]:
        async with self.deps.db.uow() as uow:
            rows = await repo.list_batches(uow.session, after, limit, filters)
        return [batch_view(b) for b in rows]

    async def list_discrepancies(self, after: str | None, limit: int, filters: dict[str, str]) -> list[DiscrepancyView]:
        async with self.deps.db.uow() as uow:
            rows = await repo.list_discrepancies(uow.session, after, limit, filters)
        return [discrepancy_view(d) for d in rows]

    async def get_discrepancy(self, discrepancy_id: str) -> DiscrepancyView:
        async with self.deps.db.uow() as uow:
            d = await repo.get_discrepancy(uow.session, discrepancy_id)
        if d is None:
            raise DiscrepancyNotFound(f"discrepancy {discrepancy_id} not found")
        return discrepancy_view(d)

    async def discrepancies_by_day(self, days: int) -> dict[str, dict[str, int]]:
        """{business date: {status: count}} for the last `days` business dates up to today (the console's chart)."""
        since = (self.today() - timedelta(days=days - 1)).isoformat()
        async with self.deps.db.uow() as uow:
            rows = await repo.discrepancies_by_day(uow.session, since)
        out: dict[str, dict[str, int]] = {}
        for day, status, n in rows:
            out.setdefault(str(day), {})[str(status)] = int(n)
        return out

    async def audit(self, subject_type: str, subject_id: str) -> list[dict[str, Any]]:
        async with self.deps.db.uow() as uow:
            rows = await repo.audit_of(uow.session, subject_type, subject_id)
        return [
            {"action": a.action, "actor": a.actor, "note": a.note, "at": a.at,
             "before": json.loads(a.before), "after": json.loads(a.after)}
            for a in rows
        ]  # fmt: skip

    async def summary_csv(self, batch_id: str) -> bytes:
        async with self.deps.db.uow() as uow:
            b = await repo.get_batch(uow.session, batch_id)
            if b is None:
                raise BatchNotFound(f"batch {batch_id} not found")
            items = list(await repo.discrepancies_of(uow.session, batch_id))
        return summary_csv(b, json.loads(b.summary or "{}"), json.loads(b.counts or "{}"), items)

    # --- finance workflow --------------------------------------------------------------------------------------------
