"""Channel notify benchmark: Alipay RSA2 async notifies → order SUCCEEDED + outbox row, next to a bare endpoint.

Run (from the repository root; needs PostgreSQL on 127.0.0.1:5432 (trust, user postgres), Redis on 6379 and
`wrk` on PATH — `apt-get install -y wrk`):

    .venv/bin/python bench/notify.py                      # 3 interleaved repeats of 15 s, 32 connections
    .venv/bin/python bench/notify.py --quick              # smoke run: 1 repeat of 5 s
    .venv/bin/python bench/notify.py --profile            # + a py-spy profile of the gateway under load

What it does (bench/README.md has the details): create_order's stack plus a second Alipay channel account whose
Alipay public key is the bench's own; one order made through the API is cloned in SQL into N PAYING orders on that
account before each run, and N Alipay TRADE_SUCCESS notifies are signed for them by the bench's own code (RSA2 over
the sorted `k=v&…` of every field but `sign`/`sign_type`). wrk replays them to `POST /callbacks/alipay/{account}`:
every answer must be 200 `success`, every notified order SUCCEEDED with exactly one `pay.succeeded` outbox row.
Gateway CPU per notify is judged against the same run's bare endpoint CPU per request: ≤ 10 ×, RSA verify included.
"""

from __future__ import annotations

import argparse
import base64
import concurrent.futures
import math
import os
import secrets
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import urlencode

import cryptography
import httpx
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench._common import (  # noqa: E402  (runs as a script: the repository root is put on sys.path first)
    WRK_LUA,
    median,
    run_wrk,
    spread,
    write_pool,
)
from bench.create_order import (  # noqa: E402
    BenchError,
    Run,
    _check_wrk,
    _ok,
    add_run_options,
    check_one_order,
    measure_rsa,
    pg,
    profile,
    run_quality,
    running_stack,
    verdict,
)
from bench.create_order import Stack as CreateStack  # noqa: E402

TARGET_CPU_RATIO = 10.0  # issue 24: gateway CPU per notify ≤ 10 × the bare endpoint's CPU per request
BEIJING = timezone(timedelta(hours=8))

# The shared replay script checks the status only; an Alipay refusal is a 200 with body `fail`, so product runs
# (those replaying a pool) also require the body `success`.
NOTIFY_LUA = WRK_LUA.replace("  local prefix = args[2]", "  prefix = args[2]").replace(
    "  if status ~= expect then", '  if status ~= expect or (prefix ~= "-" and body ~= "success") then'
)
assert NOTIFY_LUA.count('body ~= "success"') == 1 and "  prefix = args[2]" in NOTIFY_LUA


# --- the bench's own Alipay ---------------------------------------------------------------------------------


@dataclass
class NotifyAccount:
    account_id: str
    alipay_app_id: str
    alipay_private_pem: bytes  # the key "Alipay" signs notifies with; the account holds its public half


def add_notify_account(gateway: str, admin_token: str, sandbox: str) -> NotifyAccount:
    """A second Alipay account whose Alipay public key is the bench's: notifies to it are signed by the bench."""
    alipay_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    merchant_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = serialization.Encoding.PEM
    alipay_public = alipay_key.public_key().public_bytes(pem, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    merchant_private = merchant_key.private_bytes(
        pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    app_id = f"2021{secrets.randbelow(10**12):012d}"
    with httpx.Client(base_url=gateway, headers={"Authorization": f"Bearer {admin_token}"}, timeout=30) as admin:
        account = _ok(admin.post("/admin/channel-accounts", json={
            "channel": "alipay", "name": "bench alipay notifies",
            "config": {"app_id": app_id, "private_key_pem": merchant_private, "alipay_public_key_pem": alipay_public,
                       "gateway_url": f"{sandbox}/alipay/gateway.do"},
        }), 201)  # fmt: skip
    private = alipay_key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return NotifyAccount(account["id"], app_id, private)


_SIGNER: rsa.RSAPrivateKey | None = None


def _init_signer(private_pem: bytes) -> None:
    global _SIGNER
    key = serialization.load_pem_private_key(private_pem, password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    _SIGNER = key


def _beijing(value: datetime) -> str:
    return value.astimezone(BEIJING).strftime("%Y-%m-%d %H:%M:%S")


def _signed_notifies(job: tuple[str, list[str], str, int, str]) -> list[bytes]:
    """Raw keep-alive HTTP requests, one Alipay TRADE_SUCCESS notify per order (runs in a pool process)."""
    app_id, order_nos, path_host, amount_fen, path = job
    assert _SIGNER is not None
    now = datetime.now(UTC)
    amount = f"{amount_fen // 100}.{amount_fen % 100:02d}"
    out = []
    for order_no in order_nos:
        fields = {
            "notify_time": _beijing(now), "notify_type": "trade_status_sync", "notify_id": secrets.token_hex(16),
            "app_id": app_id, "auth_app_id": app_id, "charset": "utf-8", "version": "1.0", "sign_type": "RSA2",
            "trade_no": "2026" + secrets.token_hex(12), "out_trade_no": order_no, "trade_status": "TRADE_SUCCESS",
            "total_amount": amount, "subject": "Bench coffee", "gmt_create": _beijing(now - timedelta(seconds=30)),
            "buyer_id": "2088102177846880", "buyer_logon_id": "bench***@example.com",
            "seller_id": "2088102177649450", "seller_email": "merchant@bench.example",
            "receipt_amount": amount, "invoice_amount": amount, "buyer_pay_amount": amount, "point_amount": "0.00",
            "gmt_payment": _beijing(now - timedelta(seconds=5)),
            "fund_bill_list": f'[{{"amount":"{amount}","fundChannel":"ALIPAYACCOUNT"}}]',
        }  # fmt: skip
        content = "&".join(f"{k}={v}" for k, v in sorted(fields.items()) if k not in ("sign", "sign_type"))
        fields["sign"] = base64.b64encode(_SIGNER.sign(content.encode(), padding.PKCS1v15(), hashes.SHA256())).decode()
        body = urlencode(fields).encode()
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {path_host}\r\nContent-Length: {len(body)}\r\n"
            "Content-Type: application/x-www-form-urlencoded; charset=utf-8\r\n\r\n"
        )
        out.append(head.encode() + body)
    return out


# --- the orders notified ------------------------------------------------------------------------------------


def clone_orders(db: str, template: str, account: str, prefix: str, count: int) -> list[str]:
    """`count` PAYING copies of the template order on the bench's account (each with its attempt), by SQL: every
    column copied but the keys, so new columns need no change here."""
    new_no = f"'{prefix}' || lpad(g::text, 9, '0')"
    overrides = {
        "pay_orders": {"order_no": new_no, "out_trade_no": f"'n' || {new_no}", "cashier_token": "NULL",
                       "channel_account_id": "$2", "status": "'PAYING'"},
        "pay_attempts": {"id": f"'a' || {new_no}", "order_no": new_no, "channel_account_id": "$2"},
    }  # fmt: skip
    for table, override in overrides.items():
        cols = [r["column_name"] for r in pg(
            "SELECT column_name FROM information_schema.columns WHERE table_name = $1 AND table_schema = 'public' "
            "ORDER BY ordinal_position", table, database=db)]  # fmt: skip
        select = ", ".join(override.get(c, f"t.{c}") for c in cols)
        pg(f"INSERT INTO {table} ({', '.join(cols)}) SELECT {select} FROM {table} t, generate_series(1, $3) g "
           "WHERE t.order_no = $1", template, account, count, database=db)  # fmt: skip
    return [f"{prefix}{g:09d}" for g in range(1, count + 1)]


# --- one stack, measured runs -------------------------------------------------------------------------------


@dataclass
class Stack(CreateStack):
    """create_order's stack (CPU probes, quiet waits, bare runs) with notify runs instead of create-order runs."""

    account: NotifyAccount | None = None
    template: str = ""
    amount: int = 0
    signers: concurrent.futures.ProcessPoolExecutor | None = None

    @property
    def path(self) -> str:
        assert self.account is not None
        return f"/callbacks/alipay/{self.account.account_id}"

    def _pool(self, prefix: str, per_thread: int) -> Path:
        """Clone the orders and sign one notify each, split over the wrk threads' pool files."""
        assert self.account is not None and self.signers is not None
        order_nos = clone_orders(
            self.db_name, self.template, self.account.account_id, prefix, per_thread * self.threads()
        )
        host = self.gateway_url.removeprefix("http://")
        chunk = 250
        jobs = [
            (self.account.alipay_app_id, order_nos[i : i + chunk], host, self.amount, self.path)
            for i in range(0, len(order_nos), chunk)
        ]
        raws = [raw for part in self.signers.map(_signed_notifies, jobs) for raw in part]
        pool = self.work / f"pool-{prefix}"
        for t in range(self.threads()):
            write_pool(Path(f"{pool}.{t}"), iter(raws[t * per_thread : (t + 1) * per_thread]))
        return pool

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
        prefix = f"{tag or 'r'}{self.seq}x"
        rate = presign_rate or max(self.args.presign_rate, 1.6 * self.best_rate)
        per_thread = math.ceil(rate * (duration + 2) * 1.2 / self.threads())
        pool = self._pool(prefix, per_thread)
        self.wait_quiet()
        if before_load is not None:
            before_load()
        s0 = self.sample()
        w = run_wrk(self.gateway_url + self.path, duration_s=duration, connections=connections or self.args.concurrency,
                    threads=self.threads(), expect_status=200, work_dir=self.work, pool_prefix=pool)  # fmt: skip
        succeeded = self._drain(prefix, sent=int(w.raw.get("sent", 0)))
        s1 = self.sample()
        for t in range(self.threads()):
            Path(f"{pool}.{t}").unlink(missing_ok=True)
        _check_wrk("product", w, allow_empty=warmup)
        if succeeded < w.requests:
            raise BenchError(
                f"wrk saw {w.requests} notifies answered `success` but only {succeeded} orders reached SUCCEEDED"
            )
        self.best_rate = max(self.best_rate, w.rate)
        return Run("product", w, s0.delta(s1), succeeded)

    def _drain(self, prefix: str, sent: int) -> int:
        """Wait until the notifies in flight when wrk stopped are applied; every SUCCEEDED order must have exactly
        one pay.succeeded outbox row, and no order may be in another state than PAYING/SUCCEEDED."""
        deadline = time.monotonic() + 15
        last = -1
        while True:
            rows = pg("SELECT status, count(*) AS n FROM pay_orders WHERE order_no LIKE $1 GROUP BY status",
                      prefix + "%", database=self.db_name)  # fmt: skip
            counts = {r["status"]: int(r["n"]) for r in rows}
            done = counts.get("SUCCEEDED", 0)
            if done == last or done >= sent or time.monotonic() > deadline:
                break
            last = done
            time.sleep(0.2)
        if set(counts) - {"PAYING", "SUCCEEDED"}:
            raise BenchError(f"orders in unexpected states after the run: {counts}\n{self.gateway.log_tail()}")
        events = pg("SELECT count(*) AS n, count(DISTINCT aggregate_id) AS d FROM outbox_events "
                    "WHERE event_type = 'pay.succeeded' AND aggregate_id LIKE $1",
                    prefix + "%", database=self.db_name)[0]  # fmt: skip
        if not (int(events["n"]) == int(events["d"]) == done):
            raise BenchError(
                f"{done} orders SUCCEEDED but {events['n']} pay.succeeded outbox rows for {events['d']} orders"
            )
        return done


# --- report -------------------------------------------------------------------------------------------------


def report(
    args: argparse.Namespace, verify_ms: float, bare: list[Run], prod: list[Run], warm: str, source: str
) -> list[str]:
    lines = [
        "",
        "=" * 110,
        f"Tomato Pay channel-notify benchmark: tomato serve --workers {args.workers} vs bare FastAPI, "
        f"wrk -t{min(2, args.concurrency)} -c{args.concurrency}, {args.duration:g} s runs, {args.repeats} "
        "interleaved repeats",
        f"{source}; {os.cpu_count()} CPUs shared",
        f"warm-up: {warm}",
        f"RSA-2048 PKCS#1 v1.5/SHA-256 verify (cryptography {cryptography.__version__}): {verify_ms:.3f} ms CPU",
        "",
        "     |        bare endpoint              |            notify → SUCCEEDED (CPU-ms per notify)      | cores",
        " rep |    req/s  p99 ms CPU-ms/req others | notifies/s  p50 ms  p99 ms gateway     pg  redis   wrk | others",
    ]
    for i, (b, p) in enumerate(zip(bare, prod, strict=True), 1):
        lines.append(
            f" {i:>3} | {b.rate:>8,.0f} {b.wrk.p99_ms:>7.1f} {b.cpu_ms('bare'):>10.3f} {b.cpu['others_cores']:>6.2f} |"
            f" {p.rate:>10,.1f} {p.wrk.p50_ms:>7.1f} {p.wrk.p99_ms:>7.1f} {p.cpu_ms('gateway'):>7.3f} "
            f"{p.cpu_ms('pg'):>6.2f} {p.cpu_ms('redis'):>6.2f} {p.cpu_ms('wrk'):>5.2f} | {p.cpu['others_cores']:>6.2f}"
        )
    cpu, b_cpu = median([p.cpu_ms("gateway") for p in prod]), median([b.cpu_ms("bare") for b in bare])
    b_p99 = median([b.wrk.p99_ms for b in bare])
    others = median([r.cpu["others_cores"] for r in [*bare, *prod]])
    ratio = cpu / b_cpu
    rate_ratio = median([p.rate for p in prod]) / median([b.rate for b in bare])
    overhead = cpu - verify_ms
    lines += [
        "",
        f"medians ({len(prod)} repeats)          notify                  bare endpoint    notify ÷ bare",
        f"  throughput           {spread([p.rate for p in prod], '{:,.1f}'):>24} /s"
        f" {spread([b.rate for b in bare], '{:,.0f}'):>22} /s   {rate_ratio:.4f}",
        f"  gateway CPU          {spread([p.cpu_ms('gateway') for p in prod], '{:.3f}'):>24} ms"
        f" {spread([b.cpu_ms('bare') for b in bare], '{:.3f}'):>22} ms   {ratio:.1f} ×",
        f"    RSA verify         {verify_ms:>24.3f} ms   (one per notify)",
        f"    our overhead       {overhead:>24.3f} ms   (gateway CPU − RSA = {overhead / b_cpu:.1f} × bare)",
        f"  PostgreSQL CPU       {median([p.cpu_ms('pg') for p in prod]):>24.3f} ms   per notify",
        f"  latency p50 / p99    {median([p.wrk.p50_ms for p in prod]):>13.1f} / "
        f"{median([p.wrk.p99_ms for p in prod]):.1f} ms",
        "",
        "target (issue 24)                        measured   target      verdict",
        f"  gateway CPU per notify ÷ bare     {ratio:>10.1f} ×   ≤ {TARGET_CPU_RATIO:g} ×      "
        f"{verdict(ratio <= TARGET_CPU_RATIO)}",
        run_quality(args, b_p99, others),
        "=" * 110,
    ]
    return lines


# --- main ---------------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    add_run_options(p, unit="notifies", presign_rate=1500.0, profile_out="/tmp/tomato-notify.collapsed.txt")
    p.add_argument("--warmup", type=float, default=5.0, help="seconds of warm-up load (bare and product)")
    p.add_argument("--rsa-ops", type=int, default=2000, help="RSA verifies to time")
    args = p.parse_args(argv)
    if args.quick:
        args.repeats, args.duration, args.warmup, args.rsa_ops = 1, 5.0, 3.0, 300
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if shutil.which("wrk") is None:
        print("wrk not found: apt-get install -y wrk", file=sys.stderr)
        return 2
    print(f"measuring RSA-2048 verify ({args.rsa_ops} ops) …", flush=True)
    verify_ms = measure_rsa(max(args.rsa_ops, 50)).verify_ms
    signers: concurrent.futures.ProcessPoolExecutor | None = None
    try:
        with running_stack(args) as base:
            (base.work / "bench.lua").write_text(NOTIFY_LUA)  # run_wrk uses the script it finds there
            order = check_one_order(base.app, base.gateway_url)
            account = add_notify_account(base.gateway_url, base.admin_token, base.sandbox_url)
            print(f"template order {order['order_no']} ({order['amount']} fen) {order['status']}; notifies to account "
                  f"{account.account_id}", flush=True)  # fmt: skip
            signers = concurrent.futures.ProcessPoolExecutor(
                max_workers=2, initializer=_init_signer, initargs=(account.alipay_private_pem,)
            )
            stack = Stack(
                **{f: getattr(base, f) for f in CreateStack.__dataclass_fields__},
                account=account, template=order["order_no"], amount=int(order["amount"]), signers=signers,
            )  # fmt: skip
            wb = stack.run_bare(args.warmup)
            wp = stack.run_product(args.warmup, presign_rate=max(args.presign_rate, 2000.0), tag="w", warmup=True)
            warm = f"bare {wb.rate:,.0f} req/s; product {wp.orders} notifies, {wp.rate:,.1f}/s"
            print("warm-up:", warm, flush=True)

            bare_runs: list[Run] = []
            prod_runs: list[Run] = []
            for i in range(args.repeats):
                b = stack.run_bare(args.duration)
                bare_runs.append(b)
                p = stack.run_product(args.duration)
                prod_runs.append(p)
                print(f"repeat {i + 1}/{args.repeats}: bare {b.rate:,.0f} req/s {b.cpu_ms('bare'):.3f} CPU-ms/req | "
                      f"notify {p.rate:,.1f}/s p99 {p.wrk.p99_ms:.1f} ms, "
                      f"{p.cpu_ms('gateway'):.3f} gateway CPU-ms/notify", flush=True)  # fmt: skip
            print("\n".join(report(args, verify_ms, bare_runs, prod_runs, warm, stack.source)), flush=True)
            if args.profile:
                print(f"\nprofiling the gateway for {args.profile_seconds:g} s under the same load …", flush=True)
                print("\n".join(profile(stack, args.profile_seconds)), flush=True)
        return 0
    except (BenchError, RuntimeError):  # reported (with the log tails) by running_stack
        return 1
    finally:
        if signers is not None:
            signers.shutdown(cancel_futures=True)


if __name__ == "__main__":
    sys.exit(main())
