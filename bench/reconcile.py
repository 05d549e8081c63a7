"""Reconciliation benchmark: a generated WeChat trade bill of N rows (default 1,000,000) against N SUCCEEDED local
orders on PostgreSQL, parsed, bulk-loaded (COPY) and matched by the real service — beside the time Python's `csv`
module needs just to read the same file, in the same process.

    python bench/reconcile.py [--rows 1000000] [--pg-url postgresql://postgres@127.0.0.1:5432/postgres] [--keep]

A scratch database `tomato_bench_recon_<pid>` is created, migrated, filled and dropped (unless --keep). The
measured part runs in a child process so its peak RSS (`ru_maxrss`) is the reconciliation's alone, not the
generator's. Targets (issue 18): reconcile ≤ 4 × the csv read time, peak RSS ≤ 300 MB. Printed as one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

TZ = ZoneInfo("Asia/Shanghai")
DAY = date(2026, 11, 2)
ACCOUNT = "CA900000000000000001"
COST_PPM = 3_800
CHUNK = 50_000
HEADER = (
    "交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,交易状态,付款银行,货币种类,"
    "应结订单金额,代金券金额,微信退款单号,商户退款单号,退款金额,充值券退款金额,退款类型,退款状态,商品名称,商户数据包,"
    "手续费,费率,订单金额,申请退款金额,费率备注"
)
SUMMARY = "总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额"


def yuan(fen: int) -> str:
    return f"{fen // 100}.{fen % 100:02d}"


def fee_of(amount: int) -> int:
    return (amount * COST_PPM + 500_000) // 1_000_000


def order(i: int) -> tuple[str, int, datetime]:
    """The i-th order: number, amount, paid time (spread over the business day, clear of both midnights)."""
    start = datetime(DAY.year, DAY.month, DAY.day, 0, 30, tzinfo=TZ)
    span = 23 * 3600
    return (
        f"P{9_000_000_000_000 + i}",
        100 + (i * 7919) % 500_000,
        (start + timedelta(seconds=i * span // N)).astimezone(UTC),
    )


N = 1_000_000


# --- generation (parent) -----------------------------------------------------------------------------------------


def write_bill(path: Path, rows: int) -> None:
    paid = fees = 0
    with path.open("w", encoding="utf-8", newline="") as out:
        out.write(HEADER + "\r\n")
        for i in range(rows):
            order_no, amount, at = order(i)
            fee = fee_of(amount)
            paid, fees = paid + amount, fees + fee
            money = yuan(amount)
            when = at.astimezone(TZ).strftime("%Y-%m-%d %H:%M:%S")
            cells = [when, "wxbench", "1900000001", "0", "", f"42000{i:020d}", order_no, "oBench", "NATIVE",
                     "SUCCESS", "OTHERS", "CNY", money, "0.00", "0", "0", "0.00", "0.00", "", "", "bench", "",
                     yuan(fee) + "000", "0.38%", money, "0.00", ""]  # fmt: skip
            out.write(",".join("`" + c for c in cells) + "\r\n")
        out.write(SUMMARY + "\r\n")
        summary = [str(rows), yuan(paid), "0.00", "0.00", yuan(fees) + "000", yuan(paid), "0.00"]
        out.write(",".join("`" + c for c in summary) + "\r\n")


def order_rows(columns: list[str], rows: int, start: int) -> Iterable[tuple[Any, ...]]:
    now = datetime.now(UTC)
    for i in range(start, min(start + CHUNK, rows)):
        order_no, amount, at = order(i)
        values = {
            "order_no": order_no, "app_id": "Abench", "mch_no": "Mbench", "out_trade_no": f"o{i}",
            "request_hash": "0" * 64, "status": "SUCCEEDED", "paid_after_close": False, "amount": amount,
            "currency": "CNY", "subject": "bench", "pay_method": "WECHAT_NATIVE", "channel": "wechat",
            "channel_account_id": ACCOUNT, "channel_trade_no": f"42000{i:020d}", "metadata_json": "{}",
            "refunded_amount": 0, "refund_status": "NONE", "refund_reserved": 0, "refund_count": 0,
            "expire_at": at + timedelta(hours=2), "paid_at": at, "query_count": 0, "close_failures": 0, "version": 2,
            "created_at": at, "updated_at": now, "fee_ppm": 6_000, "fee": (amount * 6_000 + 500_000) // 1_000_000,
            "refund_fee_rule": "proportional", "channel_cost_ppm": COST_PPM, "channel_cost": fee_of(amount),
            "fee_returned_total": 0, "service_provider": False, "profit_sharing": False, "split_reserved": 0,
            "split_finished": False,
        }  # fmt: skip
        yield tuple(values.get(c) for c in columns)


async def fill(dsn: str, rows: int) -> None:
    import asyncpg

    from tomato.pay.models import PayOrder

    table = PayOrder.__table__
    columns = [c.name for c in table.columns]  # type: ignore[attr-defined]
    conn = await asyncpg.connect(dsn)
    try:
        for start in range(0, rows, CHUNK):
            await conn.copy_records_to_table("pay_orders", records=list(order_rows(columns, rows, start)),
                                             columns=columns)  # fmt: skip
        now = datetime.now(UTC)
        await conn.execute(
            "INSERT INTO channel_accounts (id, channel, name, status, config_ciphertext, cost_ppm, created_at,"
            " updated_at) VALUES ($1, 'wechat', 'bench', 'ACTIVE', 'x', $2, $3, $3)",
            ACCOUNT, COST_PPM, now,
        )  # fmt: skip
        await conn.execute("ANALYZE pay_orders")
    finally:
        await conn.close()


# --- the measured part (child) --------------------------------------------------------------------------------------


def csv_read(path: Path) -> tuple[float, int]:
    t0 = time.perf_counter()
    n = 0
    with path.open(encoding="utf-8", newline="") as fh:
        for _ in csv.reader(fh):
            n += 1
    return time.perf_counter() - t0, n


class FileSource:
    def __init__(self, path: Path) -> None:
        self.path = path

    async def open(self, channel: str, account_id: str, day: date) -> Any:
        from tomato.reconciliation.statement import Statement

        return Statement(channel, lambda: self.path.open("rb"))  # as ChannelStatementSource hands a stored file


async def reconcile(url: str, path: Path, data_dir: str) -> dict[str, Any]:
    from tomato.bootstrap import bootstrap
    from tomato.core.settings import load_settings

    c = await bootstrap(load_settings(database_url=url, data_dir=data_dir, log_level="WARNING"))
    try:
        c.reconciliation.source = FileSource(path)
        t0 = time.perf_counter()
        batch = await c.reconciliation.run(ACCOUNT, DAY)
        wall = time.perf_counter() - t0
    finally:
        await c.aclose()
        phases = {k: round(v, 2) for k, v in c.reconciliation.last_timings.items()}
    return {"reconcile_s": wall, "status": batch.status, "counts": batch.counts, "phases": phases}


def child(args: argparse.Namespace) -> None:
    path = Path(args.file)
    csv_s, csv_rows = csv_read(path)
    from tomato.reconciliation.statement import parse_statement

    t0 = time.perf_counter()
    with path.open("rb") as stream:
        parsed = sum(1 for _ in parse_statement("wechat", stream))
    parse_only_s = time.perf_counter() - t0
    result = asyncio.run(reconcile(args.url, path, args.data_dir))
    result.update(
        csv_s=csv_s,
        csv_rows=csv_rows,
        parse_only_s=round(parse_only_s, 2),
        parsed_rows=parsed,
        peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    )
    print(json.dumps(result))


# --- driver ---------------------------------------------------------------------------------------------------------


def main() -> None:
    global N
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument(
        "--pg-url", default=os.environ.get("TOMATO_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    )
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--file", help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    N = args.rows
    if args.child:
        child(args)
        return
    import asyncpg

    from tomato.migrations import upgrade

    name = f"tomato_bench_recon_{os.getpid()}"
    base = args.pg_url.rsplit("/", 1)[0]

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(args.pg_url)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    try:
        url = f"{base.replace('postgresql://', 'postgresql+asyncpg://', 1)}/{name}"
        upgrade(url)
        with tempfile.TemporaryDirectory(prefix="tomato-bench-recon-") as tmp:
            bill = Path(tmp) / "wechat-bill.csv"
            t0 = time.perf_counter()
            write_bill(bill, N)
            asyncio.run(fill(f"{base}/{name}", N))
            gen_s = time.perf_counter() - t0
            argv = [sys.executable, __file__, "--child", "--rows", str(N), "--url", url, "--file", str(bill),
                    "--data-dir", tmp]  # fmt: skip
            out = subprocess.run(argv, check=True, capture_output=True, text=True).stdout
            result = json.loads(out.strip().splitlines()[-1])
            result.update(
                rows=N,
                file_mb=round(bill.stat().st_size / 2**20, 1),
                generate_s=round(gen_s, 1),
                rows_per_s=round(N / result["reconcile_s"]),
                ratio_to_csv=round(result["reconcile_s"] / result["csv_s"], 2),
                peak_rss_mb=round(result["peak_rss_mb"], 1),
                reconcile_s=round(result["reconcile_s"], 2),
                csv_s=round(result["csv_s"], 2),
                targets={"ratio_to_csv": 4.0, "peak_rss_mb": 300},
            )
            print(json.dumps(result, ensure_ascii=False, indent=2))
    finally:
        if not args.keep:
            asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


if __name__ == "__main__":
    main()
