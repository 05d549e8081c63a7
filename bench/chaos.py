"""Chaos run: the whole system scaled out, traffic at a set rate, faults on a seeded schedule, then a checker that
proves nothing was lost or doubled (docs/operations.md, "Tested topology: chaos").

    .venv/bin/python bench/chaos.py --minutes 10 --rate 8 --seed 1

Topology (bench/chaos_topology.py): `tomato serve` ×2 behind a round-robin proxy, `tomato worker` ×2,
`tomato scheduler` ×2, `tomato sandbox`, a webhook receiver; PostgreSQL, Redis and RabbitMQ reached through proxies
this script cuts — the shared services themselves are never touched. A scratch database, vhost and Redis prefix are
made for the run and removed at the end. Exit status 0 only if every check passed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import secrets
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.chaos_check import Verdict, bank_view, check, collect  # noqa: E402
from bench.chaos_receiver import Receiver  # noqa: E402
from bench.chaos_topology import Topology  # noqa: E402
from bench.chaos_workload import Merchant, Ops, Workload  # noqa: E402

FAULTS = ["kill worker", "kill scheduler", "kill serve", "rabbitmq cut 20s", "redis cut 10s", "postgresql restart",
          "simulator slow", "simulator timeouts", "simulator drops notifies", "duplicate notifies",
          "webhook receiver 500s"]  # fmt: skip
SIM_FAULTS: dict[str, dict[str, Any]] = {
    "simulator slow": {"latency_ms": 2500},
    "simulator timeouts": {"timeout_rate": 0.3},
    "simulator drops notifies": {"drop_notify": True},
    "duplicate notifies": {"duplicate_notify": 2},
}
DRAIN_S = 420.0


@dataclass
class Fault:
    kind: str
    at: float  # seconds after the load began
    began: float = 0.0  # monotonic
    ended: float = 0.0  # monotonic: restored / restarted
    healed: float | None = None  # monotonic: first successful create after `ended`
    hooks: float | None = None  # monotonic: first webhook received after `ended`


class Chaos:
    def __init__(self, topo: Topology, receiver: Receiver, rng: random.Random) -> None:
        self.topo, self.receiver, self.rng = topo, receiver, rng
        self.sim = httpx.AsyncClient(base_url=topo.sandbox_url, timeout=10)

    async def inject(self, f: Fault) -> None:
        f.began = time.monotonic()
        try:
            await self._inject(f.kind)
        finally:
            f.ended = time.monotonic()
        print(f"  fault {f.kind}: {f.ended - f.began:.1f}s", flush=True)

    async def _inject(self, kind: str) -> None:
        if kind.startswith("kill "):
            role = kind.split()[1]
            name = f"{role}-{self.rng.choice((1, 2))}"
            self.topo.kill(name)
            await asyncio.sleep(3)
            self.topo.start(name)
            if role == "serve":
                await self.topo.wait_ready(name)
        elif kind.endswith(("cut 20s", "cut 10s", "restart")):
            proxy = self.topo.proxies[{"rabbitmq": "amqp", "redis": "redis", "postgresql": "pg"}[kind.split()[0]]]
            await proxy.cut()
            await asyncio.sleep(20 if "20s" in kind else 10 if "10s" in kind else 4)
            await proxy.restore()
        elif kind == "webhook receiver 500s":
            self.receiver.flaky_until = time.monotonic() + 30
            await asyncio.sleep(30)
        else:
            faults = SIM_FAULTS[kind]
            channels = ("alipay", "wechat", "bank")
            for ch in channels:
                await self.sim.post("/sandbox/faults", json={"channel": ch, **faults})
            await asyncio.sleep(15)
            await self.sim.delete("/sandbox/faults")

    async def heal_all(self) -> None:
        """Before the drain: every proxy up, every process running, no simulator fault, a well receiver."""
        for proxy in self.topo.proxies.values():
            await proxy.restore()
        self.receiver.flaky_until = 0.0
        for name, service in list(self.topo.procs.items()):
            if not service.alive():
                self.topo.start(name)
                if name.startswith("serve"):
                    await self.topo.wait_ready(name)
        await self.sim.delete("/sandbox/faults")


def schedule(minutes: float, seed: int) -> list[Fault]:
    """Every fault kind once per round, each round in a seeded order, spread over the load (after a 5 s warm-up,
    ending 10 s early); as many rounds as fit at one fault per 20 s, at least one (faults then overlap)."""
    rng = random.Random(seed)
    span = max(10.0, minutes * 60 - 15)
    kinds: list[str] = []
    for _ in range(max(1, int(span // (len(FAULTS) * 20)))):
        round_ = FAULTS[:]
        rng.shuffle(round_)
        kinds += round_
    return [Fault(k, 5 + span * i / len(kinds) + rng.uniform(0, span / len(kinds) / 2)) for i, k in enumerate(kinds)]


async def drain(topo: Topology, receiver: Receiver, ops: Ops, timeout_s: float = DRAIN_S) -> str:
    """Until every payment the simulator took is SUCCEEDED, every one it failed has left CREATED/PAYING (its
    pay.failed may come from a notify or a query after the workload ended), nothing is PENDING and every event
    reached the receiver; answers what is still outstanding ("" once drained)."""
    deadline = time.monotonic() + timeout_s
    left = "not checked"
    while time.monotonic() < deadline:
        conn = await asyncpg.connect(topo.db_url)
        try:
            statuses = dict(await conn.fetch("SELECT order_no, status FROM pay_orders WHERE order_no = ANY($1)",
                                             [*ops.sim_paid, *ops.sim_failed]))  # fmt: skip
            unpaid = [o for o in ops.sim_paid if statuses.get(o) != "SUCCEEDED"]
            undecided = [o for o in ops.sim_failed if statuses.get(o) in ("CREATED", "PAYING")]
            refunds = await conn.fetchval("SELECT count(*) FROM refunds WHERE status = 'PENDING'")
            payouts = await conn.fetchval("SELECT count(*) FROM payouts WHERE status = 'PENDING'")
            events = [r["id"] for r in await conn.fetch("SELECT id FROM outbox_events WHERE app_id IS NOT NULL")]
        finally:
            await conn.close()
        undelivered = [e for e in events if e not in receiver.bodies]
        left = (f"{len(unpaid)} paid orders not SUCCEEDED, {len(undecided)} failed ones still open, {refunds} "
                f"refunds and {payouts} payouts PENDING, {len(undelivered)} events not delivered")  # fmt: skip
        if not unpaid and not undecided and not refunds and not payouts and not undelivered:
            return ""
        await asyncio.sleep(2)
    return left


def business_day() -> str:
    return datetime.now(ZoneInfo("Asia/Shanghai")).date().isoformat()


async def _recon_outcome(admin: httpx.AsyncClient, r: httpx.Response) -> str:
    """The batch's status, and for one with discrepancies each of them (type, refs, amounts and fees both sides)."""
    if r.status_code != 200:
        return f"HTTP {r.status_code} {r.text[:200]}"
    batch = r.json()
    status = str(batch.get("status", "?"))
    if status == "MATCHED":
        return status
    query = {"batch_id": batch.get("id", ""), "limit": 20}
    found = await admin.get("/admin/reconciliation/discrepancies", params=query)
    rows = found.json().get("data", []) if found.status_code == 200 else []
    return status + "".join(
        f"\n      {d['type']} order {d['order_no']} refund {d['refund_no']}: amount {d['local_amount']} here, "
        f"{d['channel_amount']} there; fee {d['local_fee']} here, {d['channel_fee']} there" for d in rows
    )


async def finish(
    topo: Topology, accounts: dict[str, str], ops: Ops, first_day: str
) -> tuple[dict[str, str], list[str]]:
    """Settlement, the reconciliation of each business date the run touched per channel account, and
    `tomato ledger check`."""
    fin = {"Authorization": f"Bearer {topo.tokens['finance']}"}
    days = sorted({first_day, business_day()})
    recon: dict[str, str] = {}
    async with httpx.AsyncClient(base_url=topo.gateway_url, headers=fin, timeout=120) as admin:
        await admin.post("/admin/settlements/run", json={"date": days[-1]})
        for day in days:
            for channel, account in accounts.items():
                r = await admin.post("/admin/reconciliation/run", json={"channel_account_id": account, "date": day})
                recon[f"{account} {day}"] = await _recon_outcome(admin, r)
                ops.count(f"reconciliation {channel}")
    done = await topo.tomato("ledger", "check")
    violations = [ln for ln in done.stdout.splitlines() if ln.startswith("violation")]
    if done.returncode != 0 and not violations:
        violations = [f"exit {done.returncode}: {done.stderr[-500:]}"]
    return recon, violations


def table(ops: Ops, faults: list[Fault], verdict: Verdict, drained: str, t0: float, receiver: Receiver) -> str:
    out = ["", "operations", *(f"  {k:<36} {v:>7}" for k, v in sorted(ops.counts.items()))]
    out += [f"  {'webhooks received (200)':<36} {receiver.deliveries:>7}",
            f"  {'webhooks answered 500':<36} {receiver.refused:>7}",
            f"  {'webhooks received again (same id)':<36} {receiver.deliveries - len(receiver.bodies):>7}"]
    out += [f"  {'longest retrying, ' + what:<36} {secs:6.1f}s" for what, secs in sorted(ops.longest.items())]
    if ops.failures:
        out += ["unexpected / gave up", *(f"  {k:<36} {v:>7}" for k, v in sorted(ops.failures.items()))]
    out += ["faults injected (began s after start, lasted; healed: s from its end to the first successful create sent"
            " after it / to the next webhook received)"]  # fmt: skip
    for f in faults:
        heal = f"{f.healed - f.ended:6.1f}s" if f.healed is not None else "  never"
        hooks = f"{f.hooks - f.ended:6.1f}s" if f.hooks is not None else "  never"
        out.append(f"  {f.kind:<28} at {f.began - t0:6.1f}s  lasted {f.ended - f.began:5.1f}s  healed {heal} / {hooks}")
    out += ["checked", *(f"  {k:<36} {v:>7}" for k, v in verdict.checked.items())]
    out += [f"lost {verdict.lost}, doubled {verdict.doubled}, other problems "
            f"{len(verdict.problems) - verdict.lost - verdict.doubled}"]  # fmt: skip
    if drained:
        out.append(f"drain incomplete: {drained}")
    out += [f"  ! {p}" for p in verdict.problems[:50]]
    out.append("RESULT: " + ("PASS" if verdict.ok and not drained else "FAIL"))
    return "\n".join(out)


async def run(args: argparse.Namespace) -> int:
    work = Path(tempfile.mkdtemp(prefix="tomato-chaos-"))
    topo = Topology(work, secrets.token_hex(3))
    receiver = Receiver(args.seed)
    failed = True
    try:
        await receiver.start()
        print(f"work dir {work}; bringing the topology up …", flush=True)
        await topo.up()
        seeded = await topo.seed(f"http://127.0.0.1:{receiver.port}/hooks")
        print(f"database {topo.db_name}, vhost {topo.vhost}, gateway {topo.gateway_url}", flush=True)
        workload = Workload(Merchant(topo.gateway_url, seeded.app_id, seeded.secret), topo.sandbox_url,
                            topo.gateway_url, topo.tokens, args.seed)  # fmt: skip
        chaos = Chaos(topo, receiver, random.Random(args.seed))
        faults = schedule(args.minutes, args.seed)
        t0, first_day = time.monotonic(), business_day()

        faults_over: list[float] = []

        async def faulting() -> None:
            running: list[asyncio.Task[None]] = []
            for f in faults:
                await asyncio.sleep(max(0.0, t0 + f.at - time.monotonic()))
                running.append(asyncio.create_task(chaos.inject(f)))
            await asyncio.gather(*running)
            faults_over.append(time.monotonic())

        def load_done() -> bool:
            """The set time is up and the last fault ended 5 s ago (so every fault is followed by traffic)."""
            now = time.monotonic()
            return now >= t0 + args.minutes * 60 and bool(faults_over) and now >= faults_over[0] + 5

        print(f"load: {args.rate}/s for {args.minutes} min, {len(faults)} faults", flush=True)
        await asyncio.gather(workload.run(args.rate, load_done), faulting())
        await chaos.heal_all()
        for f in faults:
            # healed: the first create sent after the fault ended that succeeded (whatever else is still going on)
            f.healed = min((done for sent, done in workload.ops.successes if sent >= f.ended), default=None)
        print("draining …", flush=True)
        drained = await drain(topo, receiver, workload.ops)
        for f in faults:
            f.hooks = min((t for t in receiver.times if t >= f.ended), default=None)
        recon, violations = await finish(topo, seeded.accounts, workload.ops, first_day)
        state = await collect(topo.db_url, workload.ops.sim_paid, receiver.bodies, workload.ops.keys, violations,
                              recon)  # fmt: skip
        state.bank_payouts = await bank_view(topo.env, topo.db_url)
        (work / "state.json").write_text(state.to_json())
        if args.state_out:
            Path(args.state_out).write_text(state.to_json())
        verdict = check(state)
        verdict.problems += [f"gave up or unexpected answer: {kind} ×{n} (last errors {workload.ops.last_error})"
                             for kind, n in sorted(workload.ops.failures.items())]  # fmt: skip
        print(table(workload.ops, faults, verdict, drained, t0, receiver), flush=True)
        await workload.aclose()
        failed = not verdict.ok or bool(drained)
        return 1 if failed else 0
    finally:
        await receiver.close()
        await topo.down()
        if failed or args.keep:
            print(f"logs kept in {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, default=10.0, help="how long the load runs (the drain comes after)")
    p.add_argument("--rate", type=float, default=8.0, help="merchant operations started per second")
    p.add_argument("--seed", type=int, default=int.from_bytes(os.urandom(2)), help="fault order and traffic mix")
    p.add_argument("--state-out", help="also write the checked state (JSON, bench/chaos_check.RunState) here")
    p.add_argument("--keep", action="store_true", help="keep the work dir (logs, state.json) after a pass")
    args = p.parse_args(argv)
    print(f"seed {args.seed} started {datetime.now(UTC):%H:%M:%S}Z", flush=True)
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
