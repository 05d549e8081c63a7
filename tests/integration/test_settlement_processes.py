"""Issue 17 acceptance 5 (reliability scenario L9): settlement started in three OS processes at once on PostgreSQL
books one journal and one batch per merchant and date, and moves exactly what was eligible — whether the processes
race inside the service (the batch key, the line keys and the merchant's row locks decide) or start the
lease-fenced daily job (one runner)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from tests.conftest import truncate_all
from tests.fixtures import stack as stacks
from tests.fixtures.ledger import payment_entry, refund_entry
from tomato.account import accounts as acct
from tomato.account.ledger import balances, post_committed
from tomato.account.models import Balance, Journal, SettlementBatch, SettlementItem
from tomato.bootstrap import Container
from tomato.core.clock import SystemClock
from tomato.merchant.schemas import MerchantCreate, SettleCycleUpdate

ROOT = Path(__file__).resolve().parents[2]
CLOCK = SystemClock()
MERCHANTS = 6


@pytest.fixture
async def pg(pg_url: str, tmp_path: Path) -> AsyncIterator[Container]:
    async with stacks.running_stack(stacks.test_settings(pg_url, tmp_path)) as (c, _):
        yield c
        await truncate_all(c.db)


async def book(c: Container, business_date: str, cycle: str) -> dict[str, int]:
    """Per merchant: 4 payments of the date and one refund; returns what each has pending."""
    expected: dict[str, int] = {}
    for n in range(MERCHANTS):
        mch_no = (await c.merchants.create_merchant(MerchantCreate(name=f"Shop {n}"))).mch_no
        await c.merchants.set_settle_cycle(mch_no, SettleCycleUpdate(cycle=cycle))
        entries = [
            payment_entry(mch_no, 10_000 * (k + 1), 60 * (k + 1), 38, business_date=business_date) for k in range(4)
        ]
        for entry in entries:
            await post_committed(c.db, c.ids, CLOCK, entry)
        await post_committed(c.db, c.ids, CLOCK, refund_entry(mch_no, 5_000, 30, order_no=entries[0].source_id))
        expected[mch_no] = sum(10_000 * (k + 1) - 60 * (k + 1) for k in range(4)) - (5_000 - 30)
    return expected


async def race(pg_url: str, tmp_path: Path, mode: str, day: str) -> list[dict[str, object]]:
    go = tmp_path / "go"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.fixtures.settle_process",
            pg_url, str(tmp_path / f"p{n}"), mode, day, str(go),
            cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        for n in range(3)
    ]  # fmt: skip
    go.touch()
    results = []
    for proc in procs:
        out, err = await asyncio.wait_for(proc.communicate(), timeout=120)
        assert proc.returncode == 0, err.decode()[-3000:]
        results.append(json.loads(out.decode().strip().splitlines()[-1]))
    return results


async def check_books(c: Container, expected: dict[str, int], day: str) -> None:
    async with c.db.uow() as uow:
        s = uow.session
        journals = (
            await s.execute(
                select(Journal.source_id, func.count())
                .where(Journal.source_type == "settlement")
                .group_by(Journal.source_id)
            )
        ).all()
        batches = (await s.execute(select(SettlementBatch.mch_no, SettlementBatch.date, SettlementBatch.amount))).all()
        items = (await s.execute(select(func.count()).select_from(SettlementItem))).scalar_one()
        total = (await s.execute(select(func.coalesce(func.sum(Balance.balance), 0)))).scalar_one()
        got = await balances(s, [a for m in expected for a in (acct.merchant_pending(m), acct.merchant_available(m))])
    assert sorted(journals) == sorted((f"{m}:{day}", 1) for m in expected)
    assert sorted(batches) == sorted((m, day, x) for m, x in expected.items())
    assert items == 5 * MERCHANTS
    assert total == 0
    for m, x in expected.items():
        assert (got[acct.merchant_pending(m)], got[acct.merchant_available(m)]) == (0, x)


async def test_three_processes_racing_the_service_book_one_entry_per_merchant_and_date(
    pg: Container, pg_url: str, tmp_path: Path
) -> None:
    expected = await book(pg, "2026-12-04", "T+1")
    results = await race(pg_url, tmp_path, "service", "2026-12-07")
    assert sum(int(r["count"]) for r in results) == 5 * MERCHANTS  # each line settled by exactly one process
    assert sum(int(r["amount"]) for r in results) == sum(expected.values())
    await check_books(pg, expected, "2026-12-07")


async def test_the_daily_job_started_in_three_processes_runs_once_and_books_one_entry_per_merchant(
    pg: Container, pg_url: str, tmp_path: Path
) -> None:
    today = datetime.now(UTC).astimezone(ZoneInfo("Asia/Shanghai")).date().isoformat()
    expected = await book(pg, today, "D+0")  # due today, whichever date the job takes for today
    results = await race(pg_url, tmp_path, "job", "-")
    assert sorted(bool(r["ran"]) for r in results) == [False, False, True]  # one lease holder
    assert sum(int(r["count"]) for r in results) == 5 * MERCHANTS
    async with pg.db.uow() as uow:
        [day] = (await uow.session.scalars(select(SettlementBatch.date).distinct())).all()
    assert day >= today  # a run that crossed midnight settles under the new date
    await check_books(pg, expected, day)


async def test_a_run_killed_mid_way_is_completed_by_the_next_without_doubling_anything(
    pg: Container, pg_url: str, tmp_path: Path
) -> None:
    """L9 "killed mid-run": the child settles merchants in account order; the third one's balance rows are held
    locked here, so it is stopped there with two merchants settled — then it is SIGKILLed and a new run finishes."""
    expected = await book(pg, "2026-12-04", "T+1")
    order = sorted(expected, key=acct.merchant_pending)
    go = tmp_path / "go"
    async with pg.db.engine.connect() as conn:
        held = await conn.begin()
        await conn.execute(
            select(Balance.account).where(Balance.account == acct.merchant_pending(order[2])).with_for_update()
        )
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.fixtures.settle_process",
            pg_url, str(tmp_path / "killed"), "service", "2026-12-07", str(go),
            cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        go.touch()
        while await settled_merchants(pg) < 2:  # wait for the condition: two merchants settled, the third blocked
            assert proc.returncode is None
            await asyncio.sleep(0.02)
        proc.kill()
        await proc.wait()
        await held.rollback()
    assert await settled_merchants(pg) == 2
    result = await pg.settlement.run(date(2026, 12, 7))
    assert result.settled_count == 5 * (MERCHANTS - 2)
    assert result.settled_amount == sum(expected[m] for m in order[2:])
    await check_books(pg, expected, "2026-12-07")


async def settled_merchants(c: Container) -> int:
    async with c.db.uow() as uow:
        return int((await uow.session.execute(select(func.count()).select_from(SettlementBatch))).scalar_one())
