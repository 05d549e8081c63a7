"""Issue 2 acceptance 3: snowflake ids never repeat across 2 processes × 100,000 ids (leased worker ids)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest
from sqlalchemy import update

from tomato.core.db import Database
from tomato.core.ids import LeaseLost, Snowflake, WorkerIdLease, WorkerLease

GENERATOR = """
import asyncio, sys
from tomato.core.db import Database, create_engine
from tomato.core.ids import WorkerIdLease

async def main(url, out, n):
    db = Database(create_engine(url))
    lease = WorkerIdLease(db)
    ids = await lease.acquire()
    with open(out, "w") as fh:
        fh.write("\\n".join(str(ids.next_int()) for _ in range(n)))
    await lease.release()
    await db.dispose()

asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
"""


async def test_two_processes_never_repeat_an_id(db_url: str, db: Database, tmp_path: Path) -> None:
    n = 100_000
    outs = [tmp_path / f"ids-{i}.txt" for i in range(2)]
    procs = [
        await asyncio.create_subprocess_exec(sys.executable, "-c", GENERATOR, db_url, str(out), str(n)) for out in outs
    ]
    assert [await p.wait() for p in procs] == [0, 0]
    all_ids = [line for out in outs for line in out.read_text().splitlines()]
    assert len(all_ids) == 2 * n
    assert len(set(all_ids)) == 2 * n


async def test_live_leases_are_distinct_and_a_lost_lease_stops_ids(db: Database) -> None:
    a, b = WorkerIdLease(db), WorkerIdLease(db)
    ida, idb = await a.acquire(), await b.acquire()
    try:
        assert a.worker_id != b.worker_id
        # another process took a's lease over (it expired during a long pause): a must stop issuing ids
        async with db.engine.begin() as conn:
            await conn.execute(update(WorkerLease).where(WorkerLease.worker_id == a.worker_id).values(owner="other"))
        with pytest.raises(LeaseLost):
            await a.renew()
        with pytest.raises(LeaseLost):
            ida.next_int()
        assert idb.next_int() > 0
    finally:
        await a.release()
        await b.release()


def test_snowflake_is_monotonic_and_carries_its_worker_id() -> None:
    s = Snowflake(5)
    values = [s.next_int() for _ in range(10_000)]
    assert values == sorted(values) and len(set(values)) == len(values)
    assert all((v >> 12) & 0x3FF == 5 for v in values)
    assert s.next_id("P").startswith("P")
