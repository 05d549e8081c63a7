"""Create-order benchmark: signed `POST /v1/pay/orders` against `tomato serve`, next to a bare FastAPI endpoint.

Run (from the repository root; needs PostgreSQL on 127.0.0.1:5432 (trust, user postgres), Redis on 6379 and
`wrk` on PATH — `apt-get install -y wrk`):

    .venv/bin/python bench/create_order.py                      # 3 interleaved repeats of 15 s, 32 connections
    .venv/bin/python bench/create_order.py --workers 2 --repeats 5
    .venv/bin/python bench/create_order.py --quick              # smoke run: 1 repeat of 5 s
    .venv/bin/python bench/create_order.py --profile            # + a py-spy profile of the gateway under load

What it does: creates a fresh PostgreSQL database and uses a Redis db/key prefix of its own, runs
`tomato db upgrade`, starts `tomato sandbox` (the channel simulator), `tomato serve` and a bare FastAPI app
(`uvicorn --factory`, same loop/http defaults, same worker count) on free loopback ports, seeds through the admin
API and the simulator's /sandbox endpoints (an Alipay channel account with a fresh merchant-side RSA key, a
routing rule for ALIPAY_QR, a merchant with an HMAC app), checks one order end to end, warms up, then alternates
baseline and product runs (`wrk -t2 -c32`, a Lua script replaying requests pre-signed just before each run, each
with its own nonce and out_trade_no). Every product response must be 201 and every bare one 200, and every order
must have reached PAYING in the database: anything else aborts the run. Everything it started is stopped and the
database, Redis keys and temp dir are removed at the end, also on error or Ctrl-C (logs are kept on failure).

How to read it (reference baselines: judge ratios against the same-run baseline, medians of interleaved repeats):
- orders/s, p50/p99: wrk's closed loop over the product's run; at C connections latency ≈ C ÷ throughput
  (Little's law), so p99 at 32 connections mostly restates throughput. Each repeat therefore adds a product run
  at --latency-connections (default 8, as the baselines suggest): its p99 is the one judged against the target,
  and the 32-connection p99 is printed next to it.
- gateway CPU-ms/order: utime+stime of every process of the `tomato serve` tree over the run ÷ orders written
  (counted in the database after the in-flight ones drained). The bare endpoint's CPU-ms/req is measured the same
  way; "CPU ÷ bare" is the ratio the target is judged by (the 4 ms target is ≈ 55 × its 0.073 ms anchor).
- RSA: cryptography's PKCS#1 v1.5/SHA-256 sign and verify with a 2048-bit key measured in this process. Per order
  the gateway signs the Alipay request once and verifies the simulator's response once, so
  "our overhead" = gateway CPU-ms/order − sign − verify.
- simulator CPU is reported per order but is not gateway cost; PostgreSQL CPU is our database's backends plus
  PostgreSQL's shared processes, Redis the whole redis-server; the load generator's CPU is wrk's own.
- "others" is the CPU used by processes outside all of the above (another test suite or benchmark on the box).
  Before each run the bench waits up to --quiet-wait s for it to drop under --quiet-cores.
- A bare p99 above 15 ms, or others above --quiet-cores, marks the run NOISY: rerun before judging.
- --profile adds an unmeasured run with py-spy on the gateway worker(s) and prints where the time goes.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import collections
import contextlib
import functools
import hashlib
import hmac
import json
import math
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import asyncpg
import cryptography
import httpx
import redis
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench._common import (  # noqa: E402  (runs as a script: the repository root is put on sys.path first)
    CpuSample,
    Service,
    Services,
    WrkResult,
    as_probe,
    children_cpu_s,
    comm_cpu_s,
    free_port,
    median,
    postgres_cpu_s,
    run_wrk,
    self_cpu_s,
    spread,
    tree_cpu_s,
    tree_pids,
    wait_http,
    write_pool,
)

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
PG_ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
ORDER_PATH = "/v1/pay/orders"

# Targets of the issue, and the same targets as ratios to the reference anchors
# (bare endpoint 13,090 req/s and 0.073 CPU-ms/req on this machine kind).
TARGET_RATE, TARGET_P99_MS, TARGET_CPU_MS = 200.0, 200.0, 4.0
ANCHOR_BARE_RATE, ANCHOR_BARE_CPU_MS = 13_090.0, 0.073
TARGET_RATE_RATIO = TARGET_RATE / ANCHOR_BARE_RATE  # ≈ 0.0153 × bare req/s
TARGET_CPU_RATIO = TARGET_CPU_MS / ANCHOR_BARE_CPU_MS  # ≈ 55 × bare CPU-ms/req
NOISY_BARE_P99_MS = 15.0
# Issue 24's targets, each judged against this run's own bare endpoint (RSA included in the CPU); the throughput one
# is judged with `--workers 2`, the p99 one at --latency-connections (8).
TARGET24_CPU_RATIO, TARGET24_RATE_RATIO, TARGET24_RATE_WORKERS, TARGET24_P99_MS = 17.0, 0.045, 2, 60.0


class BenchError(RuntimeError):
    """The run cannot be judged (a non-201, a socket error, a service that died …)."""


# --- RSA cost -----------------------------------------------------------------------------------------------


@dataclass
class RsaCost:
    sign_ms: float
    verify_ms: float
    ops: int


def measure_rsa(ops: int) -> RsaCost:
    """cryptography's RSA-2048 PKCS#1 v1.5/SHA-256 sign and verify, CPU time per operation."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = key.public_key()
    # about the size of an alipay.trade.precreate sign content
    message = ("app_id=2021000000000000&biz_content=" + "x" * 380 + "&charset=utf-8&method=alipay.trade.precreate"
               "&sign_type=RSA2&timestamp=2026-11-24 10:00:00&version=1.0").encode()
    pad, alg = padding.PKCS1v15(), hashes.SHA256()
    for _ in range(20):
        key.sign(message, pad, alg)
    t0 = time.process_time()
    for _ in range(ops):
        signature = key.sign(message, pad, alg)
    sign_s = time.process_time() - t0
    t0 = time.process_time()
    for _ in range(ops):
        public.verify(signature, message, pad, alg)
    verify_s = time.process_time() - t0
    return RsaCost(sign_s / ops * 1000, verify_s / ops * 1000, ops)


# --- PostgreSQL and Redis of our own ------------------------------------------------------------------------


def pg(sql: str, *args: Any, database: str = "postgres") -> list[asyncpg.Record]:
    async def run() -> list[asyncpg.Record]:
        conn = await asyncpg.connect(PG_ADMIN_DSN.rsplit("/", 1)[0] + "/" + database)
        try:
            return list(await conn.fetch(sql, *args))
        finally:
            await conn.close()

    return asyncio.run(run())


def pick_redis_db() -> int:
    """An empty Redis db number (highest first); our keys also carry a prefix of their own."""
    for n in range(15, 0, -1):
        client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=n)
        try:
            if client.dbsize() == 0:
                return n
        finally:
            client.close()
    raise BenchError("no empty Redis database among 1..15")


def redis_cleanup(db: int, prefix: str) -> int:
    client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=db)
    try:
        keys = list(client.scan_iter(match=prefix + "*", count=1000))
        for i in range(0, len(keys), 500):
            client.delete(*keys[i : i + 500])
        return len(keys)
    finally:
        client.close()


# --- seeding and signed requests ----------------------------------------------------------------------------


@dataclass
class App:
    app_id: str
    secret: bytes
    host: str  # Host header value


def seed(gateway: str, sandbox: str, admin_token: str) -> App:
    """Alipay account on the simulator + ALIPAY_QR routing rule + merchant with an HMAC app, as an operator would."""
    admin = httpx.Client(base_url=gateway, headers={"Authorization": f"Bearer {admin_token}"}, timeout=30)
    sim = httpx.Client(base_url=sandbox, timeout=30)
    try:
        alipay_public = _ok(sim.get("/sandbox/keys"), 200)["alipay"]
        merchant_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        private_pem = merchant_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()
        public_pem = merchant_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode()
        alipay_app_id = f"2021{secrets.randbelow(10**12):012d}"
        _ok(sim.post("/sandbox/apps", json={"channel": "alipay", "merchant_id": alipay_app_id,
                                            "public_key_pem": public_pem}), 200)
        account = _ok(admin.post("/admin/channel-accounts", json={
            "channel": "alipay", "name": "bench alipay simulator",
            "config": {"app_id": alipay_app_id, "private_key_pem": private_pem, "alipay_public_key_pem": alipay_public,
                       "gateway_url": f"{sandbox}/alipay/gateway.do"},
        }), 201)
        _ok(admin.post("/admin/routing-rules", json={
            "rank": 0, "pay_methods": ["ALIPAY_QR"],
            "candidates": [{"channel_account_id": account["id"], "priority": 1, "weight": 100}],
        }), 201)
        merchant = _ok(admin.post("/admin/merchants", json={"name": "Bench Merchant"}), 201)
        created = _ok(admin.post(f"/admin/merchants/{merchant['mch_no']}/apps",
                                 json={"name": "bench-hmac", "pay_methods": ["ALIPAY_QR"]}), 201)
    finally:
        admin.close()
        sim.close()
    return App(created["app"]["app_id"], created["secret"].encode(), gateway.removeprefix("http://"))


def _ok(response: httpx.Response, status: int) -> Any:
    if response.status_code != status:
        raise BenchError(f"{response.request.method} {response.request.url} → {response.status_code} "
                         f"(expected {status}): {response.text[:1000]}")
    return response.json()


def order_request(app: App, out_trade_no: str, amount: int, timestamp: str) -> tuple[dict[str, str], bytes]:
    """Headers and body of one signed create-order request (the merchant API's HMAC-SHA256 signature, docs/api.md)."""
    body = json.dumps({"out_trade_no": out_trade_no, "amount": amount, "currency": "CNY",
                       "subject": "Bench coffee", "pay_method": "ALIPAY_QR"}, separators=(",", ":")).encode()
    nonce = secrets.token_hex(16)
    message = b"\n".join([b"POST", ORDER_PATH.encode(), timestamp.encode(), nonce.encode(), body]) + b"\n"
    signature = base64.b64encode(hmac.new(app.secret, message, hashlib.sha256).digest()).decode()
    headers = {"Content-Type": "application/json", "Tomato-App-Id": app.app_id, "Tomato-Timestamp": timestamp,
               "Tomato-Nonce": nonce, "Tomato-Signature": f"HMAC-SHA256 {signature}"}
    return headers, body


def raw_requests(app: App, prefix: str, count: int) -> Iterator[bytes]:
    """`count` raw HTTP/1.1 keep-alive requests, signed now, out_trade_no `<prefix>-<i>`."""
    timestamp = str(int(time.time()))
    for i in range(count):
        headers, body = order_request(app, f"{prefix}-{i}", 100 + i % 9900, timestamp)
        head = f"POST {ORDER_PATH} HTTP/1.1\r\nHost: {app.host}\r\nContent-Length: {len(body)}\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        yield head.encode() + b"\r\n" + body


def check_one_order(app: App, gateway: str) -> dict[str, Any]:
    """One order through httpx before any load: 201, PAYING, a QR code, a signed response."""
    headers, body = order_request(app, f"smoke-{secrets.token_hex(4)}", 1234, str(int(time.time())))
    r = httpx.post(gateway + ORDER_PATH, headers=headers, content=body, timeout=30)
    order = _ok(r, 201)
    if order.get("status") != "PAYING" or (order.get("pay_data") or {}).get("type") != "qr_code":
        raise BenchError(f"unexpected order: {order}")
    if not r.headers.get("Tomato-Signature", "").startswith("HMAC-SHA256 "):
        raise BenchError(f"response not signed: {dict(r.headers)}")
    return dict(order)


# --- one measured run ---------------------------------------------------------------------------------------


@dataclass
class Run:
    kind: str  # "bare" or "product"
    wrk: WrkResult
    cpu: dict[str, float]
    orders: int = 0  # product: rows written (all PAYING)

    @property
    def rate(self) -> float:
        return self.wrk.rate

    @property
    def units(self) -> int:
        return self.orders if self.kind == "product" else self.wrk.requests

    def cpu_ms(self, name: str) -> float:
        return self.cpu[name] * 1000 / self.units if self.units else float("nan")


@dataclass
class Stack:
    """Everything the measuring loop needs; `roots` are the process trees whose CPU is accounted."""

    args: argparse.Namespace
    work: Path
    app: App
    gateway: Service
    sandbox: Service
    bare: Service
    gateway_url: str
    bare_url: str
    db_name: str
    roots: dict[str, int] = field(default_factory=dict)
    source: str = ""
    best_rate: float = 0.0
    seq: int = 0
    admin_token: str = ""
    sandbox_url: str = ""

    def sample(self) -> CpuSample:
        for svc in (self.gateway, self.sandbox, self.bare):
            if not svc.alive():
                raise BenchError(f"{svc.name} died (exit {svc.popen.returncode}):\n{svc.log_tail()}")
        return CpuSample.take(self.probes)

    @property
    def probes(self) -> dict[str, Callable[[], dict[int, float]]]:
        probes: dict[str, Callable[[], dict[int, float]]] = {
            name: functools.partial(tree_cpu_s, pid) for name, pid in self.roots.items()
        }
        probes["pg"] = functools.partial(postgres_cpu_s, self.db_name)
        probes["redis"] = functools.partial(comm_cpu_s, ["redis-server"])
        probes["wrk"] = as_probe(children_cpu_s)  # reaped children: wrk (and py-spy while profiling)
        probes["bench"] = as_probe(self_cpu_s)
        return probes

    def wait_quiet(self) -> float:
        """Before a measured run: wait (up to --quiet-wait s) until processes outside this benchmark use at most
        --quiet-cores of the machine; returns what they used in the last second."""
        deadline = time.monotonic() + self.args.quiet_wait
        announced = False
        while True:
            s0 = self.sample()
            time.sleep(1.0)
            others = s0.delta(self.sample())["others_cores"]
            if others <= self.args.quiet_cores or time.monotonic() > deadline:
                if announced:
                    print(f"  … going on (others now {others:.2f} cores)", flush=True)
                return others
            if not announced:
                print(f"  machine busy outside the benchmark ({others:.2f} cores); waiting up to "
                      f"{self.args.quiet_wait:g} s for it to calm down …", flush=True)
                announced = True

    def threads(self) -> int:
        return min(2, int(self.args.concurrency))

    def run_bare(self, duration: float) -> Run:
        self.wait_quiet()
        s0 = self.sample()
        w = run_wrk(self.bare_url + "/", duration_s=duration, connections=self.args.concurrency,
                    threads=self.threads(), expect_status=200, work_dir=self.work)
        s1 = self.sample()
        _check_wrk("bare", w)
        return Run("bare", w, s0.delta(s1))

    def run_product(
        self, duration: float, *, presign_rate: float | None = None, tag: str = "",
        before_load: Callable[[], None] | None = None, warmup: bool = False, connections: int | None = None,
    ) -> Run:
        self.seq += 1
        prefix = f"{tag or 'r'}{self.seq}"
        self.wait_quiet()
        rate = presign_rate or max(self.args.presign_rate, 3 * self.best_rate)
        per_thread = math.ceil(rate * (duration + 3) * 1.3 / self.threads())
        pool = self.work / f"pool-{prefix}"
        for t in range(self.threads()):  # signed now: the timestamps stay well inside the ±300 s window
            write_pool(Path(f"{pool}.{t}"), raw_requests(self.app, f"{prefix}t{t}", per_thread))
        if before_load is not None:
            before_load()
        s0 = self.sample()
        w = run_wrk(self.gateway_url + ORDER_PATH, duration_s=duration,
                    connections=connections or self.args.concurrency, threads=self.threads(), expect_status=201,
                    work_dir=self.work, pool_prefix=pool)
        orders = self._drain(prefix)
        s1 = self.sample()
        for t in range(self.threads()):
            Path(f"{pool}.{t}").unlink(missing_ok=True)
        _check_wrk("product", w, allow_empty=warmup)
        if orders < w.requests:
            raise BenchError(f"wrk saw {w.requests} orders created but the database holds {orders}")
        self.best_rate = max(self.best_rate, w.rate)
        return Run("product", w, s0.delta(s1), orders)

    def _drain(self, prefix: str) -> int:
        """Wait for the requests still in flight when wrk stopped; all orders must be PAYING."""
        deadline = time.monotonic() + 15
        last: dict[str, int] = {}
        while True:
            rows = pg("SELECT status, count(*) AS n FROM pay_orders WHERE out_trade_no LIKE $1 GROUP BY status",
                      prefix + "t%", database=self.db_name)
            counts = {r["status"]: int(r["n"]) for r in rows}
            if counts == last and "CREATED" not in counts:
                break
            if time.monotonic() > deadline:
                break
            last = counts
            time.sleep(0.1)
        if set(counts) - {"PAYING"}:
            raise BenchError(f"orders not PAYING after the run: {counts}\n{self.gateway.log_tail()}")
        return counts.get("PAYING", 0)


def _check_wrk(kind: str, w: WrkResult, *, allow_empty: bool = False) -> None:
    if w.exhausted:
        raise BenchError(f"{kind}: the pre-signed pool ran out ({w.exhausted} requests resent); "
                         "raise --presign-rate")
    if w.bad_status or w.socket_errors:
        raise BenchError(f"{kind}: {w.bad_status} unexpected statuses, {w.socket_errors} socket errors of "
                         f"{w.requests} (wrk {w.raw}); first bad response:\n{w.first_bad}")
    if w.requests == 0 and not allow_empty:
        raise BenchError(f"{kind}: no request completed")


# --- profiling ----------------------------------------------------------------------------------------------


def profile(stack: Stack, seconds: float) -> list[str]:
    """py-spy (raw collapsed stacks) on every gateway worker (or the simulator) during an extra, unmeasured run."""
    py_spy = VENV_BIN / "py-spy"
    if not py_spy.exists():
        return [f"(no profile: {py_spy} missing — .venv/bin/pip install py-spy)"]
    workers = [stack.gateway.pid]
    if stack.args.profile_simulator:
        workers = [stack.sandbox.pid]
    elif stack.args.workers > 1:  # the spawned uvicorn workers, not the supervisor nor multiprocessing's helpers
        workers = [p for p in tree_pids(stack.gateway.pid) if b"spawn_main" in _cmdline(p)]
    spies: list[tuple[Path, Path, subprocess.Popen[bytes]]] = []

    def start_spies() -> None:
        for pid in workers:
            out, err = stack.work / f"profile-{pid}.txt", stack.work / f"py-spy-{pid}.log"
            with err.open("wb") as err_fh:
                spies.append((out, err, subprocess.Popen(
                    [str(py_spy), "record", "--pid", str(pid), "--duration", str(int(seconds)), "--rate", "200",
                     "--format", "raw", "--output", str(out)],
                    stdout=subprocess.DEVNULL, stderr=err_fh)))
        time.sleep(0.5)  # attach before the load starts

    try:
        stack.run_product(seconds, tag="prof", before_load=start_spies)
        for _, _, spy in spies:
            spy.wait(timeout=seconds + 60)
    finally:
        for _, _, spy in spies:
            if spy.poll() is None:
                spy.kill()
                spy.wait()
    stacks: collections.Counter[str] = collections.Counter()
    for out, err, _ in spies:
        if not out.exists():
            return [f"(py-spy wrote nothing: {err.read_text(errors='replace').strip()[-500:]})"]
        for line in out.read_text().splitlines():
            frames, _, count = line.rpartition(" ")
            if "always_pong" in frames:  # uvicorn's supervisor-ping thread, blocked on a pipe: py-spy misses idle
                continue
            if count.isdigit():
                stacks[frames] += int(count)
    keep = Path(stack.args.profile_out)
    keep.parent.mkdir(parents=True, exist_ok=True)
    keep.write_text("".join(f"{k} {v}\n" for k, v in stacks.items()))
    return summarize_profile(stacks) + [f"collapsed stacks (flamegraph.pl / speedscope input): {keep}"]


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def _func(frame: str) -> str:
    """'name (path/to/file.py:123)' → 'name (path/to/file.py)', path shortened to the package."""
    name, _, where = frame.partition(" (")
    path = where.rsplit(":", 1)[0]
    for marker in ("/site-packages/", "/lib/python3.11/", "/work/main/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{name} ({path})"


CATEGORIES: list[tuple[str, tuple[str, ...]]] = [
    ("RSA sign/verify (cryptography)", ("rsa_sign_b64", "rsa_verify_b64")),
    ("httpx client (channel call)", ("httpx/", "httpcore/", "anyio/")),
    ("SQLAlchemy ORM/core", ("sqlalchemy/",)),
    ("asyncpg driver", ("asyncpg/",)),
    ("pydantic", ("pydantic/", "pydantic_core")),
    ("redis client", ("redis/",)),
    ("starlette/fastapi/uvicorn", ("starlette/", "fastapi/", "uvicorn/")),
    ("json", ("json/",)),
    ("logging", ("logging/",)),
]


def summarize_profile(stacks: collections.Counter[str]) -> list[str]:
    total = sum(stacks.values())
    if not total:
        return ["(profile empty)"]
    self_t: collections.Counter[str] = collections.Counter()
    incl: collections.Counter[str] = collections.Counter()
    cats: collections.Counter[str] = collections.Counter()
    greenlets: collections.Counter[str] = collections.Counter()
    for line, n in stacks.items():
        frames = [f for f in line.split(";") if " (" in f]
        if not frames:
            continue
        if "sqlalchemy/" in frames[0]:  # SQLAlchemy's sync side runs in greenlets: py-spy shows no caller
            greenlets[_func(frames[0])] += n
        self_t[_func(frames[-1])] += n
        for f in {_func(f) for f in frames}:
            incl[f] += n
        for cat, needles in CATEGORIES:  # innermost match wins: a sample belongs to one category
            if any(any(nd in f for nd in needles) for f in frames[-3:]) or any(
                    nd in line for nd in needles if not nd.endswith("/")):
                cats[cat] += n
                break
        else:
            cats["other"] += n
    out = [f"py-spy: {total} samples on the gateway worker(s) (CPU-active stacks only)", "",
           "by library (innermost frames):"]
    out += [f"  {100 * n / total:5.1f} %  {c}" for c, n in cats.most_common()]
    out += ["", "top self time:"]
    out += [f"  {100 * n / total:5.1f} %  {f}" for f, n in self_t.most_common(15)]
    out += ["", "top inclusive time in tomato/ (SQLAlchemy's greenlet side not included, see below):"]
    mine = [(f, n) for f, n in incl.most_common() if "(tomato/" in f]
    out += [f"  {100 * n / total:5.1f} %  {f}" for f, n in mine[:25]]
    out += ["", f"SQLAlchemy ORM work in greenlets (caller not visible): {100 * sum(greenlets.values()) / total:.1f} %"]
    out += [f"  {100 * n / total:5.1f} %  {f}" for f, n in greenlets.most_common(6)]
    return out


# --- report -------------------------------------------------------------------------------------------------


def tomato_source(env: dict[str, str], cwd: Path) -> str:
    """Which `tomato` package the servers import, and its git revision when it is this checkout's."""
    found = subprocess.run([sys.executable, "-c", "import tomato; print(tomato.__file__)"], env=env, cwd=cwd,
                           capture_output=True, text=True, timeout=60)
    path = Path(found.stdout.strip()).parent if found.returncode == 0 else None
    if path is None:
        return f"tomato not importable: {found.stderr.strip()[-300:]}"
    if path != ROOT / "tomato":
        return f"tomato from {path}"
    git = ["git", "--no-optional-locks", "-C", str(ROOT)]
    head = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run([*git, "status", "--porcelain", "--", "tomato"], capture_output=True, text=True).stdout
    return f"tomato from {path} at {head or '?'}" + (" + uncommitted changes" if dirty.strip() else "")



def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def report(
    args: argparse.Namespace, rsa_cost: RsaCost, bare: list[Run], prod: list[Run], low: list[Run], warm: str,
    source: str,
) -> list[str]:
    rsa_ms = rsa_cost.sign_ms + rsa_cost.verify_ms
    ncpu = os.cpu_count()
    lines = [
        "",
        "=" * 118,
        f"Tomato Pay create-order benchmark: tomato serve --workers {args.workers} vs bare FastAPI (same uvicorn "
        f"options), wrk -t{min(2, args.concurrency)} -c{args.concurrency}, {args.duration:g} s runs, "
        f"{args.repeats} interleaved repeats",
        f"{source}; {ncpu} CPUs shared by gateway, simulator, PostgreSQL, Redis and wrk",
        f"warm-up: {warm}",
        f"RSA-2048 PKCS#1 v1.5/SHA-256 (cryptography {cryptography.__version__}, {rsa_cost.ops} ops each): "
        f"sign {rsa_cost.sign_ms:.3f} ms, verify {rsa_cost.verify_ms:.3f} ms CPU per operation",
        "",
        "     |        bare endpoint               |                    create order (CPU-ms per order)"
        "                  | cores busy",
        " rep |    req/s  p99 ms CPU-ms/req others |  orders/s  p50 ms  p99 ms gateway    sim     pg  redis   wrk"
        " | machine others",
    ]
    for i, (b, p) in enumerate(zip(bare, prod, strict=True), 1):
        lines.append(
            f" {i:>3} | {b.rate:>8,.0f} {b.wrk.p99_ms:>7.1f} {b.cpu_ms('bare'):>10.3f} {b.cpu['others_cores']:>6.2f} | "
            f"{p.rate:>9,.1f} {p.wrk.p50_ms:>7.1f} {p.wrk.p99_ms:>7.1f} {p.cpu_ms('gateway'):>7.2f} "
            f"{p.cpu_ms('sim'):>6.2f} {p.cpu_ms('pg'):>6.2f} {p.cpu_ms('redis'):>6.2f} {p.cpu_ms('wrk'):>5.2f} | "
            f"{p.cpu['machine_cores']:>7.2f} {p.cpu['others_cores']:>6.2f}"
        )

    rate, b_rate = median([p.rate for p in prod]), median([b.rate for b in bare])
    p50, p99 = median([p.wrk.p50_ms for p in prod]), median([p.wrk.p99_ms for p in prod])
    b_p50, b_p99 = median([b.wrk.p50_ms for b in bare]), median([b.wrk.p99_ms for b in bare])
    cpu, b_cpu = median([p.cpu_ms("gateway") for p in prod]), median([b.cpu_ms("bare") for b in bare])
    others = median([r.cpu["others_cores"] for r in [*bare, *prod]])
    idle = median([b.cpu["gateway"] / b.cpu["elapsed"] * 1000 for b in bare])
    rate_ratio, cpu_ratio = rate / b_rate, cpu / b_cpu
    overhead = cpu - rsa_ms
    lines += [
        " (others: cores used by processes outside this benchmark — a neighbour; pg: backends of our database and",
        "  PostgreSQL's shared processes; wrk: the load generator's own CPU)",
        "",
        f"medians ({len(prod)} repeats)           create order             bare endpoint    product ÷ bare",
        f"  throughput             {spread([p.rate for p in prod], '{:,.1f}'):>24} /s"
        f" {spread([b.rate for b in bare], '{:,.0f}'):>24} /s   {rate_ratio:.4f}",
        f"  latency p50 / p99      {p50:>12.1f} / {p99:>6.1f} ms    {b_p50:>12.2f} / {b_p99:>5.2f} ms",
        f"  gateway CPU            {spread([p.cpu_ms('gateway') for p in prod], '{:.2f}'):>24} ms"
        f" {spread([b.cpu_ms('bare') for b in bare], '{:.3f}'):>24} ms   {cpu_ratio:.1f} ×",
        f"    RSA sign + verify    {rsa_ms:>24.2f} ms   (1 sign {rsa_cost.sign_ms:.2f} + 1 verify "
        f"{rsa_cost.verify_ms:.3f} per order)",
        f"    our overhead         {overhead:>24.2f} ms   (gateway CPU − RSA = {overhead / b_cpu:.0f} × bare CPU)",
        f"  simulator CPU          {median([p.cpu_ms('sim') for p in prod]):>24.2f} ms   per order, not gateway cost",
        f"  PostgreSQL CPU         {median([p.cpu_ms('pg') for p in prod]):>24.2f} ms   per order",
        f"  Redis CPU              {median([p.cpu_ms('redis') for p in prod]):>24.2f} ms   per order",
        f"  load generator CPU     {median([p.cpu_ms('wrk') for p in prod]):>24.2f} ms   per order (wrk)",
        f"  machine busy           {median([p.cpu['machine_cores'] for p in prod]):>24.2f}      of {ncpu} cores in the"
        f" product runs; gateway idle {idle:.0f} CPU-ms/s",
        f"  Little's law           {args.concurrency} connections ÷ {rate:,.0f}/s = "
        f"{args.concurrency / rate * 1000:,.0f} ms mean latency "
        f"(wrk mean {median([p.wrk.mean_ms for p in prod]):,.0f} ms)",
    ]
    judged_p99, judged_how = p99, f"{args.concurrency} connections"
    if low:
        low_rate, low_p50 = median([r.rate for r in low]), median([r.wrk.p50_ms for r in low])
        judged_p99 = median([r.wrk.p99_ms for r in low])
        judged_how = f"wrk -c{args.latency_connections}, {low_rate:,.0f} orders/s"
        lines += [
            f"  at {args.latency_connections} connections      {spread([r.rate for r in low], '{:,.1f}'):>24} /s"
            f"   p50 / p99 {low_p50:.1f} / {judged_p99:.1f} ms  (latency without the 32-deep queue)",
        ]
    lines += [
        "",
        "targets (issue 24)          measured     target                          verdict",
        f"  gateway CPU ÷ bare   {cpu_ratio:>11.1f} ×    ≤ {TARGET24_CPU_RATIO:g} × (RSA included)"
        f"            {verdict(cpu_ratio <= TARGET24_CPU_RATIO):>6}",
        f"  orders/s ÷ bare      {rate_ratio:>11.4f}      ≥ {TARGET24_RATE_RATIO} at --workers {TARGET24_RATE_WORKERS}"
        f"             " + (f"{verdict(rate_ratio >= TARGET24_RATE_RATIO):>6}" if args.workers == TARGET24_RATE_WORKERS
                            else f"not judged at --workers {args.workers}"),
        f"  p99 latency          {judged_p99:>11,.1f} ms   ≤ {TARGET24_P99_MS:g} ms at {judged_how}"
        f"  {verdict(bool(low) and judged_p99 <= TARGET24_P99_MS):>6}",
        "",
        "first-round targets         measured     target   verdict   as a ratio to the same-run bare endpoint",
        f"  orders/s             {rate:>11,.1f}/s   ≥ {TARGET_RATE:.0f}/s   {verdict(rate >= TARGET_RATE):>6}"
        f"    {rate_ratio:.4f} ≥ {TARGET_RATE_RATIO:.4f} ({TARGET_RATE:.0f} ÷ {ANCHOR_BARE_RATE:,.0f})"
        f"  {verdict(rate_ratio >= TARGET_RATE_RATIO)}",
        f"  p99 latency          {judged_p99:>11,.1f} ms  ≤ {TARGET_P99_MS:.0f} ms  "
        f"{verdict(judged_p99 <= TARGET_P99_MS):>6}    (absolute, at {judged_how}; at {args.concurrency}: "
        f"{p99:,.0f} ms)",
        f"  gateway CPU-ms/order {cpu:>11.2f} ms  ≤ {TARGET_CPU_MS:.0f} ms    {verdict(cpu <= TARGET_CPU_MS):>6}"
        f"    {cpu_ratio:.1f} × ≤ {TARGET_CPU_RATIO:.0f} × ({TARGET_CPU_MS:g} ÷ {ANCHOR_BARE_CPU_MS})"
        f"          {verdict(cpu_ratio <= TARGET_CPU_RATIO)}",
        run_quality(args, b_p99, others),
        "=" * 118,
    ]
    return lines


# --- main ---------------------------------------------------------------------------------------------------


def run_quality(args: argparse.Namespace, bare_p99_ms: float, others_cores: float) -> str:
    """The report's last line: NOISY (rerun before judging) when the bare endpoint's p99 or the neighbours' CPU says
    the machine was busy with something else, clean otherwise."""
    noisy = [why for bad, why in (
        (bare_p99_ms > NOISY_BARE_P99_MS, f"bare p99 {bare_p99_ms:.1f} ms > {NOISY_BARE_P99_MS:g} ms"),
        (others_cores > args.quiet_cores, f"other processes used {others_cores:.2f} cores"),
    ) if bad]  # fmt: skip
    if noisy:
        return "  run quality: NOISY — " + "; ".join(noisy) + ": rerun before judging"
    return (f"  run quality: clean (bare p99 {bare_p99_ms:.1f} ms ≤ {NOISY_BARE_P99_MS:g} ms, "
            f"others {others_cores:.2f} cores)")


def add_run_options(p: argparse.ArgumentParser, *, unit: str, presign_rate: float, profile_out: str) -> None:
    """The options of every gateway-against-bare benchmark (create_order, query, notify); each adds its own."""
    p.add_argument("--duration", type=float, default=15.0, help="seconds per measured run (default 15)")
    p.add_argument("--repeats", type=int, default=3, help="interleaved bare/product pairs (default 3)")
    p.add_argument("--concurrency", type=int, default=32, help="wrk connections (default 32)")
    p.add_argument("--workers", type=int, default=1, help="uvicorn workers of both servers (default 1)")
    p.add_argument("--quick", action="store_true", help="smoke run: 1 repeat of 5 s, 3 s warm-up")
    p.add_argument("--presign-rate", type=float, default=presign_rate, help=f"minimum {unit}/s to pre-sign for")
    p.add_argument("--profile", action="store_true", help="then profile the gateway with py-spy under load")
    p.add_argument("--profile-simulator", action="store_true",
                   help="profile the channel simulator instead of the gateway (it shares the cores)")
    p.add_argument("--profile-seconds", type=float, default=10.0)
    p.add_argument("--profile-out", default=profile_out)
    p.add_argument("--quiet-cores", type=float, default=0.25,
                   help="before each run, wait while processes outside the benchmark use more than this many cores")
    p.add_argument("--quiet-wait", type=float, default=60.0, help="… but at most this many seconds per run")
    p.add_argument("--keep", action="store_true", help="keep the temp dir (logs, pools) and print its path")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    add_run_options(p, unit="orders", presign_rate=600.0, profile_out="/tmp/tomato-create-order.collapsed.txt")
    p.add_argument("--latency-connections", type=int, default=8,
                   help="after each product run, one at this many connections for the p99 the target judges "
                        "(at 32 closed-loop connections latency only restates throughput); 0: skip")
    p.add_argument("--warmup", type=float, default=5.0,
                   help="seconds of warm-up load per chunk (bare: one chunk; product: until 10 orders/connection)")
    p.add_argument("--rsa-ops", type=int, default=2000, help="RSA signs (and verifies) to time (≥ 1000)")
    args = p.parse_args(argv)
    if args.quick:
        args.repeats, args.duration, args.warmup = 1, 5.0, 3.0
    if args.duration > 240:
        p.error("--duration must stay under 240 s: pre-signed timestamps must be within ±300 s")
    if args.rsa_ops < 1000 and not args.quick:
        p.error("--rsa-ops must be ≥ 1000")
    return args


def _on_signal(signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # unwinds through the finally blocks that stop everything


@contextlib.contextmanager
def running_stack(args: argparse.Namespace) -> Iterator[Stack]:
    """A fresh database and Redis prefix, `tomato sandbox`, `tomato serve` and the bare app started, seeded and one
    order checked end to end; everything stopped and removed on the way out, also on error or Ctrl-C (the logs are
    printed and kept when the body failed). Shared by bench/query.py and bench/notify.py."""
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _on_signal)
    run_id = f"{os.getpid()}_{secrets.token_hex(3)}"
    work = Path(tempfile.mkdtemp(prefix="tomato-bench-"))
    services = Services(work)
    db_name = f"tomato_bench_{run_id}"
    redis_prefix = f"bench:{run_id}:"
    redis_db: int | None = None
    db_created = failed = False
    try:
        pg(f'CREATE DATABASE "{db_name}"')
        db_created = True
        redis_db = pick_redis_db()

        gw_port, sim_port, bare_port = free_port(), free_port(), free_port()
        gateway_url, sandbox_url = f"http://127.0.0.1:{gw_port}", f"http://127.0.0.1:{sim_port}"
        bare_url = f"http://127.0.0.1:{bare_port}"
        admin_token = f"bench-{secrets.token_hex(16)}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("TOMATO_")}
        env.update({
            "TOMATO_DATABASE_URL": f"postgresql+asyncpg://postgres@127.0.0.1:5432/{db_name}",
            "TOMATO_REDIS_URL": f"redis://{REDIS_HOST}:{REDIS_PORT}/{redis_db}",
            "TOMATO_REDIS_PREFIX": redis_prefix,
            "TOMATO_ADMIN_TOKENS": f"operator:{admin_token}",
            "TOMATO_SECRET_KEYS": "k1:" + base64.b64encode(secrets.token_bytes(32)).decode(),
            "TOMATO_RATE_LIMIT_RPS": "1000000",
            "TOMATO_RATE_LIMIT_BURST": "1000000",
            "TOMATO_PUBLIC_URL": gateway_url,
            "TOMATO_DATA_DIR": str(work / "data"),
        })
        tomato = str(VENV_BIN / "tomato")
        source = tomato_source(env, work)
        print(source, flush=True)
        print(f"database {db_name}, Redis db {redis_db} prefix {redis_prefix!r}, work dir {work}", flush=True)
        up = subprocess.run([tomato, "db", "upgrade"], env=env, cwd=work, capture_output=True, text=True, timeout=120)
        if up.returncode != 0:
            raise BenchError(f"tomato db upgrade failed:\n{up.stdout}\n{up.stderr}")

        sandbox = services.start("sandbox", [tomato, "sandbox", "--port", str(sim_port)], env, work)
        gateway = services.start(
            "gateway", [tomato, "serve", "--host", "127.0.0.1", "--port", str(gw_port), "--workers", str(args.workers)],
            env, work)
        # served the way `tomato serve` serves: uvicorn factory, loop/http auto (uvloop, httptools), no access log
        bare = services.start("bare", [
            sys.executable, "-m", "uvicorn", "bench._common:bare_app", "--factory", "--app-dir", str(ROOT),
            "--host", "127.0.0.1", "--port", str(bare_port), "--workers", str(args.workers), "--no-access-log",
            "--timeout-graceful-shutdown", "8",
        ], env, work)
        wait_http(sandbox_url + "/healthz", sandbox)
        wait_http(gateway_url + "/readyz", gateway)
        wait_http(bare_url + "/", bare)
        if args.workers > 1:
            time.sleep(2.0)  # let every worker finish its start-up before load

        app = seed(gateway_url, sandbox_url, admin_token)
        order = check_one_order(app, gateway_url)
        print(f"seeded app {app.app_id}; one order end to end: {order['order_no']} {order['status']}", flush=True)

        yield Stack(args, work, app, gateway, sandbox, bare, gateway_url, bare_url, db_name,
                    roots={"gateway": gateway.pid, "sim": sandbox.pid, "bare": bare.pid}, source=source,
                    admin_token=admin_token, sandbox_url=sandbox_url)
    except BaseException as exc:
        failed = True
        if isinstance(exc, BenchError | RuntimeError):  # RuntimeError: a service that did not start
            print(f"\nBENCHMARK FAILED: {exc}", file=sys.stderr)
            for svc in services.started:
                print(f"--- {svc.name} log tail ({svc.log_path}) ---\n{svc.log_tail(15)}", file=sys.stderr)
        raise
    finally:
        services.stop_all()
        if db_created:
            try:
                pg(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')
            except Exception as exc:  # report, keep tearing down
                print(f"could not drop database {db_name}: {exc}", file=sys.stderr)
        if redis_db is not None:
            try:
                redis_cleanup(redis_db, redis_prefix)
            except Exception as exc:
                print(f"could not clean Redis db {redis_db} prefix {redis_prefix}: {exc}", file=sys.stderr)
        if args.keep or failed:
            print(f"logs kept in {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if shutil.which("wrk") is None:
        print("wrk not found: apt-get install -y wrk", file=sys.stderr)
        return 2
    print(f"measuring RSA-2048 ({args.rsa_ops} signs + verifies) …", flush=True)
    rsa_cost = measure_rsa(args.rsa_ops)
    try:
        with running_stack(args) as stack:
            # Warm-up until every worker has filled its connection pool and SQL caches: chunks of --warmup seconds
            # until 10 orders per connection were made (at most 6 chunks).
            wb = stack.run_bare(args.warmup)
            warm_orders, chunks, wp = 0, 0, None
            while warm_orders < 10 * args.concurrency and chunks < 6:
                wp = stack.run_product(args.warmup, presign_rate=max(3000.0, 3 * stack.best_rate), tag="w",
                                       warmup=True)
                warm_orders, chunks = warm_orders + wp.orders, chunks + 1
            assert wp is not None
            warm = (f"bare {wb.rate:,.0f} req/s; product {warm_orders} orders in {chunks} × {args.warmup:g} s, "
                    f"last {wp.rate:,.1f} orders/s")
            print("warm-up:", warm, flush=True)

            bare_runs: list[Run] = []
            prod_runs: list[Run] = []
            low_runs: list[Run] = []
            for i in range(args.repeats):
                b = stack.run_bare(args.duration)
                bare_runs.append(b)
                p = stack.run_product(args.duration)
                prod_runs.append(p)
                line = (f"repeat {i + 1}/{args.repeats}: bare {b.rate:,.0f} req/s p99 {b.wrk.p99_ms:.1f} ms | "
                        f"product {p.rate:,.1f} orders/s p99 {p.wrk.p99_ms:.1f} ms, "
                        f"{p.cpu_ms('gateway'):.2f} gateway CPU-ms/order")
                if args.latency_connections:
                    low = stack.run_product(args.duration, connections=args.latency_connections, tag="l")
                    low_runs.append(low)
                    line += (f" | -c{args.latency_connections}: {low.rate:,.1f} orders/s "
                             f"p99 {low.wrk.p99_ms:.1f} ms")
                print(line, flush=True)

            print("\n".join(report(args, rsa_cost, bare_runs, prod_runs, low_runs, warm, stack.source)), flush=True)
            if args.profile:
                print(f"\nprofiling the gateway for {args.profile_seconds:g} s under the same load …", flush=True)
                print("\n".join(profile(stack, args.profile_seconds)), flush=True)
        return 0
    except (BenchError, RuntimeError):  # reported (with the log tails) by running_stack
        return 1


if __name__ == "__main__":
    sys.exit(main())
