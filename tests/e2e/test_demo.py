"""Issue 19 acceptance 1: `tomato demo` as a user runs it — a subprocess in an empty directory — tells the whole story,
exits 0 with the summary table and every channel account MATCHED, and `tomato ledger check` on what it left is clean;
a second run in the same directory works too; a failing step exits non-zero and is named. Once more on PostgreSQL,
Redis and RabbitMQ."""

from __future__ import annotations

import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

import httpx

from tests.e2e.conftest import services_env

STEPS = 11
CHANNELS = ("alipay", "wechat", "bank")


def _env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The user's environment without any TOMATO_ setting of the test run: the demo picks its own backends."""
    return {**{k: v for k, v in os.environ.items() if not k.startswith("TOMATO_")}, **(extra or {})}


def _tomato(cwd: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tomato.cli", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=180)  # fmt: skip


def _demo(cwd: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return _tomato(cwd, env, "demo", "--port", "0", "--sandbox-port", "0", *args)


def _merchants(db: Path) -> int:
    with closing(sqlite3.connect(db)) as conn:
        return int(conn.execute("SELECT count(*) FROM merchants").fetchone()[0])


def _figures(stdout: str) -> dict[str, int]:
    """The summary table: `  <name>  <fen>  <¥yuan>` per row."""
    rows = re.findall(r"^  (\S.*?)\s+(-?\d+)\s+-?¥[\d,]+\.\d\d$", stdout, re.M)
    return {name: int(fen) for name, fen in rows}


def _assert_told_the_whole_story(done: subprocess.CompletedProcess[str]) -> dict[str, int]:
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    for n in range(1, STEPS + 1):
        assert re.search(rf"^\[\s*{n}/{STEPS}\] ", out, re.M), f"no progress line for step {n}:\n{out}"
    assert "FAILED" not in out
    for channel in CHANNELS:  # every account of the run reconciled MATCHED, each with rows to match
        assert re.search(rf"{channel} MATCHED [1-9]\d*/[1-9]", out), out
    figures = _figures(out)
    assert figures["paid"] == 12_800 + 8_800 + 100_000
    assert figures["refunded"] == 3_000
    assert 0 < figures["fees (less the refund's share)"] < figures["paid"] // 100
    assert figures["balance: pending"] == 0
    assert figures["settled to available"] == figures["paid"] - figures["fees (less the refund's share)"] - 3_000
    assert 0 < figures["paid out"] < figures["settled to available"]
    assert figures["balance: available"] == figures["settled to available"] - figures["paid out"]
    assert re.search(r"^  webhooks: 5 events in \d+ deliveries, every signature verified$", out, re.M), out
    return figures


def test_demo_tells_the_story_twice_and_leaves_a_clean_ledger(tmp_path: Path) -> None:
    first = _demo(tmp_path, _env())
    _assert_told_the_whole_story(first)
    # the settings the demo prints are the ones that read what it left
    where = re.search(r"data: (TOMATO_DATABASE_URL=\S+) (TOMATO_DATA_DIR=\S+)", first.stdout)
    assert where is not None, first.stdout
    settings = dict(s.split("=", 1) for s in where.groups())
    assert (tmp_path / ".tomato" / "demo" / "demo.db").is_file()
    check = _tomato(tmp_path, _env(settings), "ledger", "check")
    assert check.returncode == 0 and check.stdout.strip().splitlines()[-1] == "ok", check.stdout + check.stderr

    again = _demo(tmp_path, _env())  # the same directory: a fresh start again
    _assert_told_the_whole_story(again)
    assert _merchants(tmp_path / ".tomato" / "demo" / "demo.db") == 1  # the first run's data is gone


def test_a_kept_data_dir_is_reused_by_the_next_run(tmp_path: Path) -> None:
    """--data-dir keeps the database: the second run adds a new demo merchant beside the first one's data."""
    for _ in range(2):
        _assert_told_the_whole_story(_demo(tmp_path, _env(), "--data-dir", "kept"))
    assert _merchants(tmp_path / "kept" / "demo.db") == 2
    settings = {"TOMATO_DATABASE_URL": "sqlite+aiosqlite:///kept/demo.db", "TOMATO_DATA_DIR": "kept"}
    check = _tomato(tmp_path, _env(settings), "ledger", "check")
    assert check.returncode == 0 and check.stdout.strip().splitlines()[-1] == "ok", check.stdout + check.stderr


def test_keep_leaves_the_stack_serving_until_ctrl_c(tmp_path: Path) -> None:
    log = tmp_path / "demo.out"
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "tomato.cli", "demo", "--port", "0", "--sandbox-port", "0",
                                 "--keep"], cwd=tmp_path, env=_env(), stdout=out, stderr=subprocess.STDOUT)  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while "Ctrl-C stops it" not in (text := log.read_text()):
            assert proc.poll() is None and time.monotonic() < deadline, text
            time.sleep(0.1)
        while not re.search(r"finance token +\S+", text):  # the lines after it may still be on their way
            assert time.monotonic() < deadline, text
            time.sleep(0.05)
            text = log.read_text()
        api = re.search(r"^  API +(http://\S+)$", text, re.M)
        assert api is not None, text
        assert re.search(rf"^  console +{re.escape(api[1])}/console$", text, re.M), text
        assert re.search(r"^  operator token +tpk_operator_\S+$", text, re.M), text
        finance = re.search(r"^  finance token +(\S+)$", text, re.M)
        assert finance is not None
        # the stack still serves the data of the story: the finance token reads the reconciliation batches
        r = httpx.get(f"{api[1]}/admin/reconciliation/batches", headers={"Authorization": f"Bearer {finance[1]}"})
        assert r.status_code == 200 and len(r.json()["data"]) >= 3, r.text
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=15) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_port_in_use_fails_the_first_step_by_name(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = _tomato(tmp_path, _env(), "demo", "--port", "0", "--sandbox-port", str(port))
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"tomato demo failed at step 1 (start the stack): cannot listen on 127.0.0.1:{port} (--sandbox-port)" in (
        done.stdout
    )


def test_a_simulator_charging_other_fees_fails_reconciliation_by_name(tmp_path: Path) -> None:
    """The simulated channels bill 0.50 % while the accounts are booked at 0.38 %: every statement row's fee differs,
    so the day cannot reconcile MATCHED — the demo checks the batches it shows instead of printing them."""
    done = _demo(tmp_path, _env({"TOMATO_SANDBOX_FEE_PPM": "5000"}))
    assert done.returncode == 1, done.stdout + done.stderr
    failed = [line for line in done.stdout.splitlines() if line.startswith("tomato demo failed")]
    assert len(failed) == 1, done.stdout
    assert failed[0].startswith("tomato demo failed at step 9 (reconciliation of the day"), failed
    assert "DISCREPANCIES" in failed[0] and "FEE_MISMATCH" in failed[0]
    assert "[ 8/11] payout from available (bank)" in done.stdout  # everything before it went through


def test_demo_on_postgresql_redis_and_rabbitmq(tmp_path: Path) -> None:
    with services_env(tmp_path) as services:
        done = _demo(tmp_path, _env(services))
        assert "(PostgreSQL, Redis, RabbitMQ)" in done.stdout.splitlines()[0], done.stdout
        _assert_told_the_whole_story(done)
        check = _tomato(tmp_path, _env(services), "ledger", "check")
        assert check.returncode == 0 and check.stdout.strip().splitlines()[-1] == "ok", check.stdout + check.stderr
