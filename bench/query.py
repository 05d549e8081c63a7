"""Query-order benchmark: signed `GET /v1/pay/orders/{order_no}` on `tomato serve`, next to a bare FastAPI endpoint.

Run (from the repository root; needs PostgreSQL on 127.0.0.1:5432 (trust, user postgres), Redis on 6379 and
`wrk` on PATH — `apt-get install -y wrk`):

    .venv/bin/python bench/query.py                      # 3 interleaved repeats of 15 s, 32 connections
    .venv/bin/python bench/query.py --workers 2
    .venv/bin/python bench/query.py --quick              # smoke run: 1 repeat of 5 s
    .venv/bin/python bench/query.py --profile            # + a py-spy profile of the gateway under load

What it does: the same stack as bench/create_order.py (fresh PostgreSQL database, a Redis db/key prefix of its own,
`tomato db upgrade`, `tomato sandbox`, `tomato serve` and the bare FastAPI app with the same uvicorn options, the
Alipay account, ALIPAY_QR rule and HMAC app seeded through the admin API), then creates --orders orders through the
API (all PAYING) and alternates baseline and product runs (`wrk -t2 -c32`, a Lua script replaying GET requests
pre-signed just before each run, each with its own nonce, over those orders in turn). Every product answer must be
200 and every bare one 200: anything else aborts the run. Everything it started is stopped and the database, Redis
keys and temp dir are removed at the end, also on error or Ctrl-C.

How to read it: gateway CPU-ms/query is utime+stime of every `tomato serve` process over the run ÷ answers; the
bare endpoint's CPU-ms/req the same way; "CPU ÷ bare" is what the target (≤ 8 ×, issue 24) is judged by, medians
of the interleaved repeats. A query signs its answer (HMAC) and reads one row; no channel is called, so no RSA.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import math
import secrets
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench._common import median, run_wrk, spread, write_pool  # noqa: E402  (the repository root is on sys.path)
from bench.create_order import (  # noqa: E402
    App,
    BenchError,
    Run,
    Stack,
    _check_wrk,
    _ok,
    add_run_options,
    order_request,
    profile,
    run_quality,
    running_stack,
    verdict,
)

ORDERS_PATH = "/v1/pay/orders"
TARGET_CPU_RATIO = 8.0  # issue 24: gateway CPU per query ≤ 8 × the bare endpoint's CPU per request


def signed_get(app: App, path: str, timestamp: str) -> dict[str, str]:
    """Headers of one signed GET (empty body: the message ends with an empty line, docs/api.md)."""
    nonce = secrets.token_hex(16)
    message = b"\n".join([b"GET", path.encode(), timestamp.encode(), nonce.encode(), b""]) + b"\n"
    signature = base64.b64encode(hmac.new(app.secret, message, hashlib.sha256).digest()).decode()
    return {
        "Tomato-App-Id": app.app_id,
        "Tomato-Timestamp": timestamp,
        "Tomato-Nonce": nonce,
        "Tomato-Signature": f"HMAC-SHA256 {signature}",
    }


def raw_queries(app: App, order_nos: list[str], start: int, count: int) -> Iterator[bytes]:
    """`count` raw HTTP/1.1 keep-alive GETs, signed now, over `order_nos` in turn from `start`."""
    timestamp = str(int(time.time()))
    for i in range(count):
        path = f"{ORDERS_PATH}/{order_nos[(start + i) % len(order_nos)]}"
        head = f"GET {path} HTTP/1.1\r\nHost: {app.host}\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in signed_get(app, path, timestamp).items())
        yield head.encode() + b"\r\n"


def create_orders(app: App, gateway: str, count: int) -> list[str]:
    """`count` orders through the API (each must answer 201 PAYING); their order numbers."""
    out: list[str] = []
    with httpx.Client(base_url=gateway, timeout=30) as client:
        for i in range(count):
            headers, body = order_request(app, f"q-{secrets.token_hex(4)}-{i}", 100 + i, str(int(time.time())))
            order = _ok(client.post(ORDERS_PATH, headers=headers, content=body), 201)
            if order.get("status") != "PAYING":
                raise BenchError(f"unexpected order: {order}")
            out.append(str(order["order_no"]))
    return out


def check_one_query(app: App, gateway: str, order_no: str) -> None:
    """One query through httpx before any load: 200, the order asked for, a signed answer."""
    path = f"{ORDERS_PATH}/{order_no}"
    r = httpx.get(gateway + path, headers=signed_get(app, path, str(int(time.time()))), timeout=30)
    order = _ok(r, 200)
    if order.get("order_no") != order_no or order.get("status") != "PAYING":
        raise BenchError(f"unexpected answer: {order}")
    if not r.headers.get("Tomato-Signature", "").startswith("HMAC-SHA256 "):
        raise BenchError(f"response not signed: {dict(r.headers)}")


@dataclass
class QueryStack(Stack):
    """The create-order stack; its product runs replay signed queries over `order_nos`."""

    order_nos: list[str] = field(default_factory=list)

    def run_product(
        self,
        duration: float,
        *,
        presign_rate: float | None = None,
        tag: str = "",
        before_load: Callable[[], None] | None = None,
        warmup: bool = False,
        connections: int | None = None,
    ) -> Run:
        self.seq += 1
        prefix = f"{tag or 'r'}{self.seq}"
        self.wait_quiet()
        rate = presign_rate or max(self.args.presign_rate, 3 * self.best_rate)
        per_thread = math.ceil(rate * (duration + 3) * 1.3 / self.threads())
        pool = self.work / f"pool-{prefix}"
        for t in range(self.threads()):  # signed now: the timestamps stay well inside the ±300 s window
            write_pool(Path(f"{pool}.{t}"), raw_queries(self.app, self.order_nos, t * per_thread, per_thread))
        if before_load is not None:
            before_load()
        s0 = self.sample()
        w = run_wrk(
            self.gateway_url + ORDERS_PATH,
            duration_s=duration,
            connections=connections or self.args.concurrency,
            threads=self.threads(),
            expect_status=200,
            work_dir=self.work,
            pool_prefix=pool,
        )
        s1 = self.sample()
        for t in range(self.threads()):
            Path(f"{pool}.{t}").unlink(missing_ok=True)
        _check_wrk("product", w, allow_empty=warmup)
        self.best_rate = max(self.best_rate, w.rate)
        return Run("query", w, s0.delta(s1))


def report(args: argparse.Namespace, bare: list[Run], prod: list[Run], warm: str, source: str) -> list[str]:
    rate, b_rate = median([p.rate for p in prod]), median([b.rate for b in bare])
    cpu, b_cpu = median([p.cpu_ms("gateway") for p in prod]), median([b.cpu_ms("bare") for b in bare])
    b_p99 = median([b.wrk.p99_ms for b in bare])
    others = median([r.cpu["others_cores"] for r in [*bare, *prod]])
    cpu_ratio = cpu / b_cpu
    lines = [
        "",
        "=" * 118,
        f"Tomato Pay query-order benchmark: signed GET {ORDERS_PATH}/{{order_no}} over {len(args.order_nos)} orders, "
        f"tomato serve --workers {args.workers} vs bare FastAPI, wrk -t{min(2, args.concurrency)} "
        f"-c{args.concurrency}, {args.duration:g} s runs, {args.repeats} interleaved repeats",
        f"{source}",
        f"warm-up: {warm}",
        "",
        " rep |    bare req/s  p99 ms CPU-ms/req | queries/s  p50 ms  p99 ms gateway CPU-ms    pg  redis | others",
    ]
    for i, (b, p) in enumerate(zip(bare, prod, strict=True), 1):
        lines.append(
            f" {i:>3} | {b.rate:>13,.0f} {b.wrk.p99_ms:>7.1f} {b.cpu_ms('bare'):>10.3f} | {p.rate:>9,.0f} "
            f"{p.wrk.p50_ms:>7.1f} {p.wrk.p99_ms:>7.1f} {p.cpu_ms('gateway'):>14.3f} {p.cpu_ms('pg'):>5.2f} "
            f"{p.cpu_ms('redis'):>6.2f} | {p.cpu['others_cores']:>6.2f}"
        )
    lines += [
        "",
        f"medians ({len(prod)} repeats)           query order              bare endpoint    product ÷ bare",
        f"  throughput             {spread([p.rate for p in prod], '{:,.0f}'):>24} /s"
        f" {spread([b.rate for b in bare], '{:,.0f}'):>24} /s   {rate / b_rate:.4f}",
        f"  latency p50 / p99      {median([p.wrk.p50_ms for p in prod]):>12.1f} / "
        f"{median([p.wrk.p99_ms for p in prod]):>6.1f} ms    {median([b.wrk.p50_ms for b in bare]):>12.2f} / "
        f"{b_p99:>5.2f} ms",
        f"  gateway CPU            {spread([p.cpu_ms('gateway') for p in prod], '{:.3f}'):>24} ms"
        f" {spread([b.cpu_ms('bare') for b in bare], '{:.3f}'):>24} ms   {cpu_ratio:.1f} ×",
        f"  PostgreSQL CPU         {median([p.cpu_ms('pg') for p in prod]):>24.3f} ms   per query",
        f"  Redis CPU              {median([p.cpu_ms('redis') for p in prod]):>24.3f} ms   per query",
        "",
        "target (issue 24)           measured     target   verdict",
        f"  gateway CPU ÷ bare   {cpu_ratio:>11.1f} ×    ≤ {TARGET_CPU_RATIO:g} ×    "
        f"{verdict(cpu_ratio <= TARGET_CPU_RATIO):>6}",
        run_quality(args, b_p99, others),
        "=" * 118,
    ]
    return lines


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    add_run_options(p, unit="queries", presign_rate=3000.0, profile_out="/tmp/tomato-query-order.collapsed.txt")
    p.add_argument("--orders", type=int, default=200, help="orders created first and queried in turn (default 200)")
    p.add_argument("--warmup", type=float, default=5.0, help="seconds of warm-up load (bare, then product)")
    args = p.parse_args(argv)
    if args.quick:
        args.repeats, args.duration, args.warmup = 1, 5.0, 3.0
    if args.duration > 240:
        p.error("--duration must stay under 240 s: pre-signed timestamps must be within ±300 s")
    if args.orders < 1:
        p.error("--orders must be ≥ 1")
    args.order_nos = []
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if shutil.which("wrk") is None:
        print("wrk not found: apt-get install -y wrk", file=sys.stderr)
        return 2
    try:
        with running_stack(args) as base:
            args.order_nos = create_orders(base.app, base.gateway_url, args.orders)
            check_one_query(base.app, base.gateway_url, args.order_nos[0])
            print(f"created {len(args.order_nos)} orders to query", flush=True)
            stack = QueryStack(**{f: getattr(base, f) for f in base.__dataclass_fields__}, order_nos=args.order_nos)
            wb = stack.run_bare(args.warmup)
            wp = stack.run_product(args.warmup, tag="w", warmup=True)
            warm = f"bare {wb.rate:,.0f} req/s; product {wp.rate:,.0f} queries/s"
            print("warm-up:", warm, flush=True)
            bare_runs: list[Run] = []
            prod_runs: list[Run] = []
            for i in range(args.repeats):
                b = stack.run_bare(args.duration)
                bare_runs.append(b)
                p = stack.run_product(args.duration)
                prod_runs.append(p)
                print(
                    f"repeat {i + 1}/{args.repeats}: bare {b.rate:,.0f} req/s, {b.cpu_ms('bare'):.3f} CPU-ms/req | "
                    f"product {p.rate:,.0f} queries/s p99 {p.wrk.p99_ms:.1f} ms, "
                    f"{p.cpu_ms('gateway'):.3f} gateway CPU-ms/query",
                    flush=True,
                )
            print("\n".join(report(args, bare_runs, prod_runs, warm, stack.source)), flush=True)
            if args.profile:
                print(f"\nprofiling the gateway for {args.profile_seconds:g} s under the same load …", flush=True)
                print("\n".join(profile(stack, args.profile_seconds)), flush=True)
        return 0
    except (BenchError, RuntimeError):  # reported (with the log tails) by running_stack
        return 1


if __name__ == "__main__":
    sys.exit(main())
