"""Ledger benchmark: payment postings/s through `tomato.account.ledger.post` at 16 concurrent writers on PostgreSQL,
without and with the hot accounts in play, next to pgbench's TPC-B-like TPS at the same client count.

Run (from the repository root; needs PostgreSQL on 127.0.0.1:5432, trust, user postgres, and `pgbench` on PATH or
at /usr/bin/pgbench):

    .venv/bin/python bench/ledger.py                 # 3 interleaved repeats of 10 s each
    .venv/bin/python bench/ledger.py --quick         # smoke: 1 repeat of 4 s
    .venv/bin/python bench/ledger.py --seconds 20 --repeats 5

What it does: creates two scratch databases (`tomato_bench_ledger_*`, migrated with the project's migrations, and
`tomato_bench_pgbench_*`, initialised with `pgbench -i -s 16`), then alternates three runs per repeat:
- pgbench: `pgbench -c 16 -j 2 -T S` (the built-in TPC-B-like script) — the same-run anchor;
- ledger, no hot accounts: 16 writers, each posting payments (4 lines: channel receivable and channel fee expense
  of its own channel account, its own merchant's pending, a platform fee income account of its own), each posting
  in its own unit of work (`post_committed`: on PostgreSQL one autocommitted statement writing the journal, its
  lines and the balance upserts), so writers never touch a common row;
- ledger, hot: the same, but every posting debits one shared `channel_receivable` and `channel_fee_expense` and
  credits the one `platform_fee_income` (spread over their 16 balance buckets).
Writers run in `--processes` OS processes (default 2, one per core: a single Python process is CPU-bound before
PostgreSQL is) with `--writers` ÷ processes asyncio tasks each. Both databases are dropped at the end, also on error
or Ctrl-C.

How to read it: postings/s are medians over the repeats; the targets (issue 17) are postings/s ≥ 0.5 × pgbench TPS
(a posting writes a journal, four lines and four balance rows: more than TPC-B's three updates, one insert) and
hot ≥ 0.8 × no-hot (the bucketed hot accounts must not serialise the ledger). Both ratios are printed with PASS or
MISS. The machine is shared: other load shows up as noise in all three alike, so judge the ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import re
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any

PG_ADMIN_DSN = os.environ.get("TOMATO_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
PGBENCH = shutil.which("pgbench") or "/usr/bin/pgbench"


def pg(sql: str, database: str = "postgres") -> None:
    import asyncpg

    async def run() -> None:
        conn = await asyncpg.connect(PG_ADMIN_DSN.rsplit("/", 1)[0] + "/" + database)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run())


def sa_url(database: str) -> str:
    return PG_ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1) + "/" + database


def pg_args(database: str) -> list[str]:
    from urllib.parse import urlsplit

    parts = urlsplit(PG_ADMIN_DSN)
    return ["-h", parts.hostname or "127.0.0.1", "-p", str(parts.port or 5432), "-U", parts.username or "postgres",
            database]  # fmt: skip


# --- pgbench ------------------------------------------------------------------------------------------------------


def pgbench_init(database: str, scale: int) -> None:
    subprocess.run([PGBENCH, "-i", "-q", "-s", str(scale), *pg_args(database)], check=True, capture_output=True)


def pgbench_tps(database: str, clients: int, threads: int, seconds: float) -> float:
    done = subprocess.run(
        [PGBENCH, "-c", str(clients), "-j", str(threads), "-T", str(max(1, round(seconds))), *pg_args(database)],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    found = re.search(r"tps = ([0-9.]+) \(without initial connection time\)", done.stdout) or re.search(
        r"tps = ([0-9.]+)", done.stdout
    )
    if found is None:
        raise RuntimeError(f"no tps in pgbench output:\n{done.stdout}\n{done.stderr}")
    return float(found.group(1))


# --- ledger writers ----------------------------------------------------------------------------------------------


def _entry(hot: bool, proc: int, writer: int, n: int) -> Any:
    from tomato.account import accounts as acct
    from tomato.account.ledger import EntryRequest, Line

    own = f"B{proc}x{writer}"
    ca = "CAHOT" if hot else f"CA{own}"
    fee_income = acct.PLATFORM_FEE_INCOME if hot else f"{acct.PLATFORM_FEE_INCOME}:{own}"
    amount, fee, cost = 10_000 + n % 100, 60, 38
    order_no = f"P{own}n{n}"
    return EntryRequest(
        source_type="order", source_id=order_no, leg="payment", kind="payment",
        lines=(Line(acct.channel_receivable(ca), amount - cost), Line(acct.channel_fee_expense(ca), cost),
               Line(acct.merchant_pending(f"M{own}"), -(amount - fee)), Line(fee_income, -fee)),
        business_date="2026-12-06", mch_no=f"M{own}", order_no=order_no, amount=amount, fee=fee,
    )  # fmt: skip


def _writer_process(url: str, hot: bool, proc: int, tag: str, writers: int, seconds: float, warmup_s: float,
                    ready: Any, results: Any) -> None:  # fmt: skip
    """One OS process: connects and warms `writers` connections, waits at `ready` for the other processes, then
    posts for `seconds` from `writers` tasks; puts (postings committed, seconds elapsed) on `results`."""
    import uvloop

    from tomato.account.ledger import post_committed
    from tomato.core.clock import SystemClock
    from tomato.core.db import Database, create_engine
    from tomato.core.ids import Snowflake

    async def run() -> tuple[int, float]:
        db = Database(create_engine(url, pool_size=writers + 2))
        ids, clock = Snowflake(200 + proc), SystemClock()
        base = int(tag, 16) * 1_000_000
        next_n = [base] * writers

        async def writer(w: int, end: float) -> int:
            done = 0
            while time.monotonic() < end:
                await post_committed(db, ids, clock, _entry(hot, proc, w, next_n[w]))
                next_n[w] += 1
                done += 1
            return done

        try:
            # warm up uncounted: the pool's connections, prepared statements, and the balance rows (buckets) of
            # each account, which the first postings create
            await asyncio.gather(*(writer(w, time.monotonic() + warmup_s) for w in range(writers)))
            await asyncio.to_thread(ready.wait)
            started = time.monotonic()
            counted = sum(await asyncio.gather(*(writer(w, started + seconds) for w in range(writers))))
            return counted, time.monotonic() - started
        finally:
            await db.dispose()

    results.put(uvloop.run(run()))


def ledger_rate(url: str, hot: bool, writers: int, processes: int, seconds: float, warmup_s: float = 3.0) -> float:
    """Postings/s of all processes together: Σ postings ÷ the longest process's window (tasks finish the posting
    they are in when the window closes)."""
    tag = secrets.token_hex(2)
    per = [writers // processes + (1 if i < writers % processes else 0) for i in range(processes)]
    ctx = multiprocessing.get_context("spawn")
    ready, results = ctx.Barrier(processes), ctx.Queue()
    procs = [
        ctx.Process(target=_writer_process, args=(url, hot, i, tag, per[i], seconds, warmup_s, ready, results))
        for i in range(processes)
    ]
    for proc in procs:
        proc.start()
    try:
        got = [results.get(timeout=seconds + 120) for _ in procs]
    finally:
        for proc in procs:
            proc.join(timeout=30)
            if proc.is_alive():
                proc.kill()
    return sum(n for n, _ in got) / max(elapsed for _, elapsed in got)


# --- driver ----------------------------------------------------------------------------------------------------


@dataclass
class Repeat:
    pgbench: float
    cold: float
    hot: float


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--seconds", type=float, default=10.0, help="length of each run")
    p.add_argument("--repeats", type=int, default=3, help="interleaved repeats (medians are reported)")
    p.add_argument("--writers", type=int, default=16, help="concurrent writers (and pgbench clients)")
    p.add_argument("--processes", type=int, default=2, help="OS processes the ledger writers run in")
    p.add_argument("--scale", type=int, default=16, help="pgbench -i -s")
    p.add_argument("--quick", action="store_true", help="1 repeat of 4 s")
    args = p.parse_args(argv)
    if args.quick:
        args.seconds, args.repeats = 4.0, 1
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not os.path.exists(PGBENCH):
        print("pgbench not found (apt-get install postgresql-client)", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    run_id = f"{os.getpid()}_{secrets.token_hex(3)}"
    ledger_db, bench_db = f"tomato_bench_ledger_{run_id}", f"tomato_bench_pgbench_{run_id}"
    created: list[str] = []
    try:
        for name in (ledger_db, bench_db):
            pg(f'CREATE DATABASE "{name}"')
            created.append(name)
        from tomato.migrations import upgrade

        upgrade(sa_url(ledger_db))
        print(f"pgbench -i -s {args.scale} …", flush=True)
        pgbench_init(bench_db, args.scale)
        repeats: list[Repeat] = []
        for r in range(args.repeats):
            tps = pgbench_tps(bench_db, args.writers, 2, args.seconds)
            cold = ledger_rate(sa_url(ledger_db), False, args.writers, args.processes, args.seconds)
            hot = ledger_rate(sa_url(ledger_db), True, args.writers, args.processes, args.seconds)
            repeats.append(Repeat(tps, cold, hot))
            print(f"repeat {r + 1}: pgbench {tps:8.0f} tps | ledger no-hot {cold:7.0f}/s | hot {hot:7.0f}/s | "
                  f"min ÷ pgbench {min(cold, hot) / tps:.2f} | hot ÷ no-hot {hot / cold:.2f}", flush=True)  # fmt: skip
        tps = statistics.median(x.pgbench for x in repeats)
        cold = statistics.median(x.cold for x in repeats)
        hot = statistics.median(x.hot for x in repeats)
        # each repeat's runs follow each other: ratios within a repeat see the same neighbours' load
        vs_pgbench = statistics.median(min(x.cold, x.hot) / x.pgbench for x in repeats)
        hot_ratio = statistics.median(x.hot / x.cold for x in repeats)
        print()
        print(f"writers {args.writers} in {args.processes} processes, {args.seconds:.0f} s runs, "
              f"median of {len(repeats)}")  # fmt: skip
        print(f"  pgbench TPC-B-like (-s {args.scale} -c {args.writers} -j 2)   {tps:9.0f} tps")
        print(f"  ledger postings, no hot accounts          {cold:9.0f} /s")
        print(f"  ledger postings, hot accounts in play     {hot:9.0f} /s")
        print("  ratios (median of the per-repeat ratios):")
        print(
            f"  min(postings) ÷ pgbench   {vs_pgbench:5.2f}  (target ≥ 0.50)  {'PASS' if vs_pgbench >= 0.5 else 'MISS'}"
        )
        print(
            f"  hot ÷ no-hot              {hot_ratio:5.2f}  (target ≥ 0.80)  {'PASS' if hot_ratio >= 0.8 else 'MISS'}"
        )
        return 0
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        for name in created:
            try:
                pg(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            except Exception as exc:  # noqa: BLE001 - report and go on dropping the others
                print(f"could not drop {name}: {exc}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
