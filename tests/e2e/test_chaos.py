"""Issue 20: the chaos run for about a minute — `bench/chaos.py` brings up serve ×2 behind a balancer, worker ×2,
scheduler ×2 and the simulator, drives traffic while every fault kind strikes once, drains and checks.

It touches only its own proxies, scratch database, RabbitMQ vhost and Redis prefix, so it runs in the parallel
suite. The run must pass, every fault must heal, and the real finished state it checked must fail the checker
once damaged (so the pass is not vacuous)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from bench.chaos import FAULTS
from bench.chaos_check import RunState, check
from tests.conftest import AMQP_URL, PG_ADMIN_URL, REDIS_URL, need_service

pytestmark = [pytest.mark.slow, pytest.mark.chaos]
ROOT = Path(__file__).resolve().parents[2]


def _count(out: str, label: str) -> int:
    m = re.search(rf"^  {re.escape(label)}\s+(\d+)$", out, re.MULTILINE)
    return int(m.group(1)) if m else 0


def test_a_minute_of_chaos_loses_and_doubles_nothing(tmp_path: Path) -> None:
    need_service("PostgreSQL", PG_ADMIN_URL, 5432)
    need_service("Redis", REDIS_URL, 6379)
    need_service("RabbitMQ", AMQP_URL, 5672)
    state_file = tmp_path / "state.json"
    done = subprocess.run(
        [sys.executable, "bench/chaos.py", "--minutes", "1", "--rate", "5", "--seed", "20", "--state-out",
         str(state_file)],
        cwd=ROOT, capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-6000:]
    assert "RESULT: PASS" in out and "lost 0, doubled 0, other problems 0" in out, out[-6000:]
    for kind in FAULTS:  # each injected, and the merchant API served again after it
        line = next((ln for ln in out.splitlines() if ln.strip().startswith(kind) and " at " in ln), "")
        assert line and "never" not in line, (kind, out[-4000:])
    assert _count(out, "scan paid") > 20, out[-4000:]
    assert _count(out, "refund partial") + _count(out, "refund full") > 0, out[-4000:]
    assert _count(out, "retried (same key)") > 0, out[-4000:]  # the faults did reach the merchant

    state = RunState.from_json(state_file.read_text())
    assert check(state).ok
    paid = sorted(state.sim_paid)
    assert paid and state.events and state.delivered
    damaged = RunState.from_json(state_file.read_text())
    succeeded = next(e["id"] for e in damaged.events if e["type"] == "pay.succeeded")
    del damaged.delivered[succeeded]
    damaged.journals.append(next(j for j in damaged.journals if j["kind"] == "payment"))
    verdict = check(damaged)
    assert verdict.lost >= 1 and verdict.doubled >= 1, verdict.problems
