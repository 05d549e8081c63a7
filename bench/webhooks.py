"""Webhook benchmark: outbox → relay → RabbitMQ → notice consumer → delivery worker → a local receiver.

Run (from the repository root; needs PostgreSQL on 127.0.0.1:5432 (trust, user postgres) and RabbitMQ on 5672):

    .venv/bin/python bench/webhooks.py                  # 3 interleaved repeats: baseline, burst 20,000, paced 500/s
    .venv/bin/python bench/webhooks.py --quick          # smoke run: 1 repeat, 5,000 events
    .venv/bin/python bench/webhooks.py --workers 2      # two notice worker processes

Processes (each its own subprocess, all on this machine): a receiver (asyncio protocol HTTP/1.1 server, uvloop,
answers 200 "ok", records the first arrival time of every Tomato-Event-Id), one or more notice workers
(`NoticeRuntime`: event consumer + delivery worker + sweeper, on uvloop as `tomato worker` runs; `--asyncio` for the
default loop), and per run a producer that commits `pay.succeeded` outbox rows (10 per statement, built by
`event_values` and inserted with one raw asyncpg statement as pay's notify path writes its row; the ORM unit of work
it used before cost the producer about 0.15 CPU-ms per event more) and runs the outbox relay, woken after each commit
as `pay` wakes it.

Per repeat, interleaved (reference baselines: judge ratios to a same-run baseline, medians of the repeats):
- baseline: httpx, 8 clients × 8 connections, 64 tasks POSTing 1 KiB to the same receiver → req/s: the anchor
  the baselines pin for this target (the worker itself sends with aiohttp, about a tenth of httpx's client CPU);
- burst: `--events` events committed as fast as the producer can → deliveries/s = events ÷ (last first-arrival
  − first commit): the pipeline's capacity;
- paced: `--paced-events` at an offered `--rate` (default 500/s, open loop) → p50/p99/max from an event's commit
  to its first arrival at the receiver (the receiver's clock and the producer's are the same machine's);
- scaled: the same paced run at `--rate` × this repeat's baseline ÷ 1,633 (the reference 8×8 figure, where 500/s
  is 0.31 ×): the same load relative to what this machine does right now, for a machine slower or busier than the
  reference.
Worker CPU-ms per delivery is utime+stime of the worker processes over the burst ÷ deliveries, judged against the
same repeat's httpx client CPU per request (the target, 0.5 ms where that baseline cost 0.61 ms, is 0.82 ×).
Everything is torn down at the end (database dropped, queues deleted), also on error or Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import CpuSample, Services, comm_cpu_s, free_port, tree_cpu_s  # noqa: E402

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
AMQP = "amqp://guest:guest@127.0.0.1:5672/"
PER_TXN = 10
# httpx 8 clients x 8 connections did 1,633 req/s on the reference machine, where 500/s is the target
# (0.31 x). A paced run at rate x same-run baseline / this anchor offers the same load relative to this machine.
ANCHOR_BASELINE_RATE = 1633.0
# issue 24: the burst's deliveries/s at least the same run's httpx 8x8 req/s, and the worker's own CPU per delivery
# at most 0.5 ms where httpx 8x8 cost its client 0.61 CPU-ms per request (the reference machine): judged as the
# ratio to this run's httpx client CPU per request, like every other target, and printed in ms as well
TARGET_RATIO, TARGET_WORKER_CPU_MS, ANCHOR_BASELINE_CPU_MS = 1.0, 0.5, 0.61
TARGET_WORKER_CPU_RATIO = TARGET_WORKER_CPU_MS / ANCHOR_BASELINE_CPU_MS

# --- receiver ------------------------------------------------------------------------------------------------


class _Receiver(asyncio.Protocol):
    first: dict[str, float] = {}
    total = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.t: asyncio.Transport = transport  # type: ignore[assignment]
        self.buf = bytearray()

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while (end := self.buf.find(b"\r\n\r\n")) >= 0:
            head = bytes(self.buf[:end]).split(b"\r\n")
            length, event_id = 0, None
            for line in head[1:]:
                key, _, value = line.partition(b":")
                key = key.strip().lower()
                if key == b"content-length":
                    length = int(value)
                elif key == b"tomato-event-id":
                    event_id = value.strip().decode()
            if len(self.buf) < end + 4 + length:
                return
            del self.buf[: end + 4 + length]
            body = b"ok"
            if head[0].startswith(b"GET /stats"):
                body = json.dumps({"unique": len(_Receiver.first), "total": _Receiver.total}).encode()
            elif head[0].startswith(b"GET /dump"):
                body = json.dumps(_Receiver.first).encode()
            elif head[0].startswith(b"POST /reset"):
                _Receiver.first, _Receiver.total = {}, 0
            elif event_id is not None:
                _Receiver.total += 1
                _Receiver.first.setdefault(event_id, time.time())
            self.t.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))


async def receiver_main(port: int, ready: Path) -> None:
    server = await asyncio.get_running_loop().create_server(_Receiver, "127.0.0.1", port, backlog=1024)
    ready.write_text("ok")
    async with server:
        await server.serve_forever()


# --- baseline: httpx 8 clients × 8 connections ------------------------------------------------------------------


async def baseline_main(url: str, n: int, out: Path) -> None:
    import httpx

    clients = [httpx.AsyncClient(limits=httpx.Limits(max_connections=8, max_keepalive_connections=8)) for _ in range(8)]
    body = b'{"x":"' + b"a" * 1010 + b'"}'
    left = list(range(n))
    cpu0, t0 = time.process_time(), time.perf_counter()

    async def run(k: int) -> None:
        client = clients[k % 8]
        while left:
            i = left.pop()
            r = await client.post(
                url, content=body, headers={"Tomato-Event-Id": f"B{i}", "Content-Type": "application/json"}
            )
            assert r.status_code == 200

    await asyncio.gather(*(run(k) for k in range(64)))
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    for c in clients:
        await c.aclose()
    out.write_text(json.dumps({"rate": n / elapsed, "cpu_ms": cpu / n * 1000}))


# --- notice worker ------------------------------------------------------------------------------------------------


async def worker_main(ready: Path) -> None:
    from tomato.bootstrap import bootstrap
    from tomato.core.settings import load_settings
    from tomato.notice.schedule import NoticeConfig
    from tomato.runtime.heap import settle_heap
    from tomato.runtime.notice_loops import NoticeRuntime

    c = await bootstrap(load_settings())
    await c.bus.start()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    knobs = json.loads(os.environ.get("BENCH_NOTICE_CONFIG", "{}"))  # e.g. {"http_connections": 32}
    runtime = NoticeRuntime(c, NoticeConfig.from_settings(c.settings, **knobs))
    await runtime.start()
    settle_heap()  # as `tomato worker` does once running
    ready.write_text("ok")
    await stop.wait()
    await runtime.aclose()
    await c.aclose()


# --- producer: commits outbox rows the way pay does, relays them -------------------------------------------------


# the outbox row's columns as pay's notify path writes them (`event_values`, one raw statement, no ORM), 10 a statement
EVENT_COLUMNS = (
    ("id", "varchar"), ("seq", "bigint"), ("event_type", "varchar"), ("aggregate_type", "varchar"),
    ("aggregate_id", "varchar"), ("app_id", "varchar"), ("payload", "text"), ("created_at", "timestamptz"),
    ("facts", "text"),
)  # fmt: skip
INSERT_EVENTS = (
    f"INSERT INTO outbox_events ({', '.join(c for c, _ in EVENT_COLUMNS)}) SELECT * FROM unnest("
    + ", ".join(f"${i}::{kind}[]" for i, (_, kind) in enumerate(EVENT_COLUMNS, start=1))
    + ")"
)


async def producer_main(app_id: str, events: int, rate: float, out: Path) -> None:
    from sqlalchemy import func, select

    from tomato.bootstrap import bootstrap
    from tomato.core.outbox import OutboxEvent, event_values
    from tomato.core.rawpg import raw_connection
    from tomato.core.settings import load_settings

    c = await bootstrap(load_settings())
    await c.bus.start()
    stop = asyncio.Event()
    relay = asyncio.create_task(c.relay.run_forever(stop, poll_interval_s=0.5))
    committed: dict[str, float] = {}
    start = time.perf_counter()
    for batch in range(events // PER_TXN):
        if rate > 0:  # open loop: batch k is due at k × PER_TXN / rate, whatever happened before
            delay = start + batch * PER_TXN / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
        rows = []
        for _ in range(PER_TXN):
            order_no = f"P{c.ids.next_int()}"
            data = {"order_no": order_no, "app_id": app_id, "status": "SUCCEEDED", "amount": 1234}
            rows.append(event_values(c.ids, event_type="pay.succeeded", aggregate_type="pay_order",
                                     aggregate_id=order_no, data=data, app_id=app_id))  # fmt: skip
        async with raw_connection(c.db.engine, "committing outbox rows") as raw:
            await raw.execute(INSERT_EVENTS, *([r[col] for r in rows] for col, _ in EVENT_COLUMNS))
        now = time.time()
        committed.update((r["id"], now) for r in rows)
        c.relay.notify()
    while True:  # until the relay has published everything
        async with c.db.uow() as uow:
            left = (await uow.session.execute(select(func.count()).where(OutboxEvent.published_at.is_(None)))).scalar()
        if not left:
            break
        await asyncio.sleep(0.2)
    out.write_text(json.dumps({"committed": committed, "produce_s": time.perf_counter() - start}))
    stop.set()
    await relay
    await c.aclose()


# --- driver -------------------------------------------------------------------------------------------------------


def _get(url: str) -> Any:
    import httpx

    return httpx.get(url, timeout=10).json()


def _wait_file(path: Path, services: Services, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        for s in services.started:
            if not s.alive():
                raise RuntimeError(f"{s.name} died:\n{s.log_tail()}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{path.name} not written in {timeout_s}s")
        time.sleep(0.1)


def _percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]


class Bench:
    def __init__(self, args: argparse.Namespace, work: Path) -> None:
        self.args, self.work = args, work
        self.services = Services(work)
        self.db_name = f"tomato_bench_hooks_{uuid.uuid4().hex[:8]}"
        self.prefix = f"bench-{uuid.uuid4().hex[:8]}"
        self.db_url = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{self.db_name}"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        from tomato.core.crypto import SecretBox

        self.env = {k: v for k, v in os.environ.items() if not k.startswith("TOMATO_")}
        self.env.update(
            TOMATO_DATABASE_URL=self.db_url, TOMATO_AMQP_URL=AMQP, TOMATO_AMQP_PREFIX=self.prefix,
            TOMATO_SECRET_KEYS=SecretBox.generate_ring("b1"), TOMATO_DATA_DIR=str(work / "data"),
            TOMATO_WEBHOOK_ALLOWED_NETWORKS="127.0.0.0/8", TOMATO_LOG_LEVEL="WARNING",
        )  # fmt: skip
        self.me = [sys.executable, str(Path(__file__).resolve())]

    async def setup(self) -> str:
        import asyncpg

        from tomato.bootstrap import bootstrap
        from tomato.core.settings import Settings
        from tomato.merchant.schemas import AppCreate, MerchantCreate
        from tomato.migrations import upgrade

        conn = await asyncpg.connect(PG_ADMIN)
        await conn.execute(f'CREATE DATABASE "{self.db_name}"')
        await conn.close()
        await asyncio.to_thread(upgrade, self.db_url)
        values = {k.removeprefix("TOMATO_").lower(): v for k, v in self.env.items() if k.startswith("TOMATO_")}
        c = await bootstrap(Settings(**values))
        merchant = await c.merchants.create_merchant(MerchantCreate(name="Bench"))
        app = await c.merchants.create_app(merchant.mch_no, AppCreate(name="bench", notify_url=f"{self.url}/hooks"))
        await c.aclose()
        return app.app.app_id

    async def teardown(self) -> None:
        import aio_pika
        import asyncpg

        from tomato.core.settings import Settings
        from tomato.notice.schedule import NoticeConfig

        tiers = NoticeConfig.from_settings(Settings()).schedule.tiers_ms()
        with contextlib.suppress(Exception):
            connection = await aio_pika.connect(AMQP)
            channel = await connection.channel()
            names = [f"{self.prefix}.notice.events", f"{self.prefix}.notice.events.dead",
                     f"{self.prefix}.webhooks.deliveries", f"{self.prefix}.webhooks.deliveries.dead",
                     *(f"{self.prefix}.webhooks.delay.{t}" for t in tiers)]  # fmt: skip
            for name in names:
                with contextlib.suppress(Exception):
                    await channel.queue_delete(name, if_unused=False, if_empty=False)
            for name in ("events", "dlx", "webhooks.events", "webhooks.dlx"):
                with contextlib.suppress(Exception):
                    await channel.exchange_delete(f"{self.prefix}.{name}")
            await connection.close()
        with contextlib.suppress(Exception):
            conn = await asyncpg.connect(PG_ADMIN)
            await conn.execute(f'DROP DATABASE IF EXISTS "{self.db_name}" WITH (FORCE)')
            await conn.close()

    def start(self, app_id: str) -> None:
        ready = self.work / "receiver.ready"
        argv = [*self.me, "--role", "receiver", "--port", str(self.port), "--ready", str(ready)]
        self.services.start("receiver", argv, self.env, self.work)
        _wait_file(ready, self.services)
        for n in range(self.args.workers):
            ready = self.work / f"worker{n}.ready"
            self.services.start(
                f"worker{n}", [*self.me, "--role", "worker", "--ready", str(ready)], self.env, self.work
            )
            _wait_file(ready, self.services)
        self.app_id = app_id

    def baseline(self, n: int) -> dict[str, float]:
        out = self.work / f"baseline-{time.monotonic_ns()}.json"
        argv = [*self.me, "--role", "baseline", "--url", f"{self.url}/hooks", "--events", str(n), "--out", str(out)]
        proc = self.services.start("baseline", argv, self.env, self.work)
        proc.popen.wait(timeout=300)
        self.services.started.remove(proc)
        import httpx

        httpx.post(f"{self.url}/reset")
        return dict(json.loads(out.read_text()))

    def product(self, events: int, rate: float) -> dict[str, float]:
        import httpx

        httpx.post(f"{self.url}/reset")
        out = self.work / f"produce-{time.monotonic_ns()}.json"
        workers = [s for s in self.services.started if s.name.startswith("worker")]
        receiver = next(s for s in self.services.started if s.name == "receiver")
        argv = [*self.me, "--role", "producer", "--app-id", self.app_id, "--events", str(events),
                "--rate", str(rate), "--out", str(out)]  # fmt: skip
        proc = self.services.start("producer", argv, self.env, self.work)
        probes = {
            "workers": lambda: {p: v for w in workers for p, v in tree_cpu_s(w.pid).items()},
            "producer": lambda: tree_cpu_s(proc.pid),
            "receiver": lambda: tree_cpu_s(receiver.pid),
            "postgres": lambda: comm_cpu_s(["postgres"]),
            "rabbitmq": lambda: comm_cpu_s(["beam.smp"]),
        }
        before = CpuSample.take(probes)
        deadline = time.monotonic() + 120 + events / 100
        while _get(f"{self.url}/stats")["unique"] < events:
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {_get(f'{self.url}/stats')} of {events} delivered")
            time.sleep(0.2)
        after = CpuSample.take(probes)
        proc.popen.wait(timeout=60)
        self.services.started.remove(proc)
        committed: dict[str, float] = json.loads(out.read_text())["committed"]
        first = _get(f"{self.url}/dump")
        stats = _get(f"{self.url}/stats")
        latency = [first[e] - t for e, t in committed.items()]
        span = max(first.values()) - min(committed.values())
        cpu = before.delta(after)
        return {
            "deliveries_s": events / span,
            "p50_ms": _percentile(latency, 50) * 1000,
            "p99_ms": _percentile(latency, 99) * 1000,
            "max_ms": max(latency) * 1000,
            "repeats": stats["total"] - stats["unique"],
            "worker_cpu_ms": cpu["workers"] / events * 1000,
            "worker_cores": cpu["workers"] / cpu["elapsed"],
            "producer_cores": cpu["producer"] / cpu["elapsed"],
            "receiver_cores": cpu["receiver"] / cpu["elapsed"],
            "pg_cores": cpu["postgres"] / cpu["elapsed"],
            "rabbit_cores": cpu["rabbitmq"] / cpu["elapsed"],
            "others_cores": cpu["others_cores"],
            "machine_cores": cpu["machine_cores"],
        }


async def _driver(args: argparse.Namespace) -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-hooks-"))
    bench = Bench(args, work)
    bench.env["BENCH_NOTICE_CONFIG"] = args.config
    bench.env["BENCH_UVLOOP"] = "1" if args.uvloop else "0"
    repeats = 1 if args.quick else args.repeats
    events = 5000 if args.quick else args.events
    paced = 2500 if args.quick else args.paced_events
    rows: list[tuple[str, dict[str, float]]] = []
    try:
        app_id = await bench.setup()
        bench.start(app_id)
        bench.product(500, 0)  # warm-up: connections, caches, JIT-less but still
        for n in range(repeats):
            rows.append(("baseline", bench.baseline(8000 if not args.quick else 3000)))
            rows.append(("burst", bench.product(events, 0)))
            rows.append(("paced", bench.product(paced, args.rate)))
            scaled_rate = rows[-3][1]["rate"] * args.rate / ANCHOR_BASELINE_RATE
            rows.append(("scaled", {**bench.product(paced, scaled_rate), "offered": scaled_rate}))
            print(f"repeat {n + 1}: " + "; ".join(f"{k} {_fmt(v)}" for k, v in rows[-4:]), flush=True)
    finally:
        bench.services.stop_all()
        await bench.teardown()
    _report(rows, events, paced, args)


def _fmt(v: dict[str, float]) -> str:
    return ", ".join(f"{k}={x:.1f}" for k, x in v.items())


def _report(rows: list[tuple[str, dict[str, float]]], events: int, paced: int, args: argparse.Namespace) -> None:
    def med(kind: str, key: str) -> float:
        return statistics.median(v[key] for k, v in rows if k == kind)

    base, burst = med("baseline", "rate"), med("burst", "deliveries_s")
    loop = "uvloop" if args.uvloop else "asyncio"
    print(f"\nwebhooks: {args.workers} worker process(es) on {loop}, medians of {len(rows) // 4} interleaved repeats")
    print(f"  baseline httpx 8x8 POST 1 KiB   {base:8.0f} req/s   {med('baseline', 'cpu_ms'):.2f} client CPU-ms/req")
    print(f"  burst ({events} events)          {burst:8.0f} deliveries/s  = {burst / base:.2f} x baseline "
          f"(target >= 500/s, >= 0.31 x)   worker {med('burst', 'worker_cpu_ms'):.2f} CPU-ms/delivery")  # fmt: skip
    print(f"  paced ({paced} at {args.rate:.0f}/s)      commit -> first attempt p50 {med('paced', 'p50_ms'):.0f} ms  "
          f"p99 {med('paced', 'p99_ms'):.0f} ms  max {med('paced', 'max_ms'):.0f} ms (target p99 <= 1000 ms); "
          f"achieved {med('paced', 'deliveries_s'):.0f}/s")  # fmt: skip
    print(f"  paced at {args.rate:.0f}/s scaled to this run's machine ({args.rate:.0f} x baseline / "
          f"{ANCHOR_BASELINE_RATE:,.0f}, the reference anchor): offered {med('scaled', 'offered'):.0f}/s, "
          f"p50 {med('scaled', 'p50_ms'):.0f} ms  p99 {med('scaled', 'p99_ms'):.0f} ms  "
          f"max {med('scaled', 'max_ms'):.0f} ms (target p99 <= 1000 ms)")  # fmt: skip
    ratio, worker_ms = burst / base, med("burst", "worker_cpu_ms")
    print("  targets (issue 24)")
    print(f"    deliveries/s ÷ httpx 8x8 baseline  {ratio:6.2f} x   >= {TARGET_RATIO:.1f} x        "
          f"{'PASS' if ratio >= TARGET_RATIO else 'FAIL'}")  # fmt: skip
    cpu_ratio = worker_ms / med("baseline", "cpu_ms")
    print(f"    worker CPU per delivery ÷ httpx    {cpu_ratio:6.2f} x   <= {TARGET_WORKER_CPU_RATIO:.2f} x       "
          f"{'PASS' if cpu_ratio <= TARGET_WORKER_CPU_RATIO else 'FAIL'}   ({worker_ms:.3f} ms; the reference's "
          f"{TARGET_WORKER_CPU_MS} ms ÷ its httpx client's {ANCHOR_BASELINE_CPU_MS} ms per request)")  # fmt: skip
    for kind in ("burst", "paced"):
        print(
            f"  cores busy in {kind} (of {os.cpu_count()}): {med(kind, 'machine_cores'):.2f} = workers "
            f"{med(kind, 'worker_cores'):.2f}, producer+relay {med(kind, 'producer_cores'):.2f}, receiver "
            f"{med(kind, 'receiver_cores'):.2f}, PostgreSQL {med(kind, 'pg_cores'):.2f}, RabbitMQ "
            f"{med(kind, 'rabbit_cores'):.2f}, anything else (neighbours) {med(kind, 'others_cores'):.2f}"
        )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--role", default="driver", choices=["driver", "receiver", "baseline", "worker", "producer"])
    p.add_argument("--events", type=int, default=20000)
    p.add_argument("--paced-events", type=int, default=10000)
    p.add_argument("--rate", type=float, default=500.0)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--config", default="{}", help='NoticeConfig overrides as JSON, e.g. {"http_connections": 32}')
    p.add_argument("--asyncio", dest="uvloop", action="store_false",
                   help="run the notice workers on the default asyncio loop (default: uvloop, as `tomato worker`)")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--port", type=int)
    p.add_argument("--url")
    p.add_argument("--ready", type=Path)
    p.add_argument("--out", type=Path)
    p.add_argument("--app-id")
    args = p.parse_args()
    if args.role == "driver":
        asyncio.run(_driver(args))
    elif args.role == "receiver":
        import uvloop

        uvloop.run(receiver_main(args.port, args.ready))
    elif args.role == "baseline":
        asyncio.run(baseline_main(args.url, args.events, args.out))
    else:  # the worker, and the producer whose relay runs in `tomato serve`: uvloop in production for both
        main = worker_main(args.ready) if args.role == "worker" else producer_main(
            args.app_id, args.events, args.rate, args.out)  # fmt: skip
        if os.environ.get("BENCH_UVLOOP") == "1":
            import uvloop

            uvloop.run(main)
        else:
            asyncio.run(main)


if __name__ == "__main__":
    main()
