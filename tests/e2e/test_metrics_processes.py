"""Issue 19 acceptance 5, with real processes on PostgreSQL, Redis and RabbitMQ:

- one scrape of `/metrics` on `tomato serve --workers 2` reports the requests of both workers (a per-worker series
  from each, and counters summed over them), also after a worker was killed and replaced; the metrics directory is
  private to the run and removed when serve exits;
- `tomato worker --metrics-port` shows the webhook backlog rising while the merchant's receiver is down and falling
  after it comes back; `tomato scheduler --metrics-port` counts its job runs; `tomato dev` shows all of it on its
  gateway's `/metrics`.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import free_port, running_dev
from tests.e2e.conftest import services_env as stack_services_env
from tests.fixtures.merchant_client import MerchantClient
from tests.fixtures.webhook_receiver import Received, ThreadedReceiver

pytestmark = pytest.mark.services

SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})? (\S+)$")


def samples(text: str, name: str) -> dict[str, float]:
    """`{labels: value}` of every sample of `name` in Prometheus text."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        m = SAMPLE.match(line)
        if m and m.group(1) == name:
            out[m.group(2) or ""] = float(m.group(3))
    return out


def pids(text: str) -> dict[int, float]:
    """Requests per live serve worker: `tomato_serve_process_requests{pid="…"}`."""
    found = samples(text, "tomato_serve_process_requests")
    return {int(re.search(r'pid="(\d+)"', labels).group(1)): v for labels, v in found.items()}  # type: ignore[union-attr]


def wait_for(what: str, check: Callable[[], bool], timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def start(cmd: list[str], cwd: Path, env: dict[str, str], name: str) -> subprocess.Popen[bytes]:
    log = (cwd / f"{name}.log").open("ab")
    return subprocess.Popen([sys.executable, "-m", "tomato.cli", *cmd], cwd=cwd, env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip


def stop(proc: subprocess.Popen[bytes], cwd: Path, name: str) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise AssertionError(f"{name} did not stop:\n{(cwd / f'{name}.log').read_text()[-3000:]}") from None
        assert code == 0, (cwd / f"{name}.log").read_text()[-3000:]


def up(url: str, proc: subprocess.Popen[bytes], cwd: Path, name: str) -> None:
    def answers() -> bool:
        assert proc.poll() is None, (cwd / f"{name}.log").read_text()[-3000:]
        try:
            return httpx.get(url, timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    wait_for(f"{name} at {url}", answers)


@pytest.fixture
def services(tmp_path: Path) -> Iterator[dict[str, str]]:
    with stack_services_env(tmp_path) as env:
        yield {**{k: v for k, v in os.environ.items() if not k.startswith("TOMATO_")}, **env}


def _unsigned_burst(base: str, n: int) -> None:
    """`n` requests on `n` fresh connections at once, so the kernel hands them to whichever worker accepts first."""

    async def run() -> None:
        limits = httpx.Limits(max_keepalive_connections=0)
        async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as http:
            answers = await asyncio.gather(*(http.get("/v1/pay/orders/P1") for _ in range(n)))
        assert {r.status_code for r in answers} == {401}  # unsigned: refused, but counted like any request

    asyncio.run(run())


def test_one_scrape_reports_every_serve_worker(tmp_path: Path, services: dict[str, str]) -> None:
    private_tmp = tmp_path / "tmp"
    private_tmp.mkdir()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = start(["serve", "--port", str(port), "--workers", "2"], tmp_path, {**services, "TMPDIR": str(private_tmp)},
                 "serve")  # fmt: skip
    try:
        up(f"{base}/healthz", proc, tmp_path, "serve")
        [metrics_dir] = list(private_tmp.glob("tomato-metrics-*"))
        assert (metrics_dir.stat().st_mode & 0o777) == 0o700  # private to the run
        sent = 0

        def both_answered() -> bool:
            nonlocal sent
            _unsigned_burst(base, 24)
            sent += 24
            answered = pids(httpx.get(f"{base}/metrics", timeout=10).text)
            return len([n for n in answered.values() if n > 0]) >= 2

        wait_for("requests answered by both workers", both_answered, timeout_s=90)
        scraped: dict[str, str] = {}

        def whole() -> bool:
            """One scrape, answered by either worker, has every request of both (a worker counts a request right
            after sending its answer, so the last ones may take a moment)."""
            text = scraped["text"] = httpx.get(f"{base}/metrics", timeout=10).text
            counted = samples(text, "tomato_http_requests_total")
            mine = sum(v for k, v in counted.items() if "/v1/pay/orders/{order_no}" in k)
            return mine == sent and sum(pids(text).values()) == sum(counted.values())

        wait_for("one scrape to count every request of both workers", whole)
        workers = pids(scraped["text"])
        assert len(workers) == 2 and all(n > 0 for n in workers.values()), workers

        victim = next(iter(workers))
        os.kill(victim, signal.SIGKILL)  # uvicorn starts a replacement; the dead worker's series must go

        def replaced() -> bool:
            _unsigned_burst(base, 8)
            now = pids(httpx.get(f"{base}/metrics", timeout=10).text)
            return victim not in now and len(now) == 2

        wait_for("the killed worker forgotten and replaced", replaced, timeout_s=90)
        after = samples(httpx.get(f"{base}/metrics", timeout=10).text, "tomato_http_requests_total")
        assert sum(v for k, v in after.items() if "/v1/pay/orders/{order_no}" in k) >= sent  # its counts stay
    finally:
        stop(proc, tmp_path, "serve")
    assert not list(private_tmp.glob("tomato-metrics-*"))  # removed when serve exits


def _scan_paid(creds: dict[str, str], order: dict[str, object]) -> None:
    pay_data = order["pay_data"]
    assert isinstance(pay_data, dict)
    r = httpx.post(f"{creds['sandbox_url']}/sandbox/scan", json={"content": pay_data["value"], "result": "paid"})
    assert r.status_code == 200, r.text


def test_worker_metrics_show_the_webhook_backlog_rise_and_fall(tmp_path: Path) -> None:
    receiver_down = True

    def respond(_: Received) -> int:
        return 503 if receiver_down else 200

    receiver = ThreadedReceiver(respond)
    try:
        with running_dev("services", tmp_path, ["--notify-url", receiver.url]) as stack:
            env = {**stack.env, "TOMATO_WEBHOOK_TIME_SCALE": "60",
                   "TOMATO_WEBHOOK_ALLOWED_NETWORKS": "127.0.0.0/8"}  # fmt: skip
            worker_port, scheduler_port = free_port(), free_port()
            worker = start(["worker", "--metrics-port", str(worker_port)], tmp_path, env, "worker")
            scheduler = start(["scheduler"], tmp_path, {**env, "TOMATO_SCHEDULER_METRICS_PORT": str(scheduler_port)},
                              "scheduler")  # fmt: skip
            try:
                worker_metrics = f"http://127.0.0.1:{worker_port}/metrics"
                up(worker_metrics, worker, tmp_path, "worker")

                def backlog() -> float:
                    return samples(httpx.get(worker_metrics, timeout=10).text, "tomato_webhook_backlog")[""]

                assert backlog() == 0
                creds = stack.creds

                async def pay(n: int) -> list[dict[str, object]]:
                    async with httpx.AsyncClient(base_url=creds["base_url"], timeout=30) as http:
                        client = MerchantClient(http, creds["app_id"], secret=creds["app_secret"])
                        made = [await client.create_order(pay_method="ALIPAY_QR") for _ in range(n)]
                    assert all(r.status_code == 201 for r in made), [r.text for r in made]
                    return [r.json() for r in made]

                for order in asyncio.run(pay(3)):
                    _scan_paid(creds, order)
                wait_for("the backlog to rise while the receiver is down", lambda: backlog() >= 3)
                wait_for("the receiver to be tried", lambda: len(receiver.snapshot()) >= 3)
                text = httpx.get(worker_metrics, timeout=10).text
                assert samples(text, "tomato_webhook_failed_deliveries")[""] == 0  # retrying, not given up
                assert "tomato_outbox_unsent_events" in text and "tomato_ledger_booking_lag_events" in text

                receiver_down = False
                wait_for("the backlog to fall once the receiver is back", lambda: backlog() == 0, timeout_s=90)
                delivered = {r.event_id for r in receiver.snapshot()}
                assert len(delivered) >= 3

                scheduler_metrics = f"http://127.0.0.1:{scheduler_port}/metrics"
                up(scheduler_metrics, scheduler, tmp_path, "scheduler")

                def job_runs() -> float:
                    runs = samples(httpx.get(scheduler_metrics, timeout=10).text, "tomato_job_runs_total")
                    return sum(v for k, v in runs.items() if 'job="pay.expiry"' in k)

                wait_for("the scheduler to count its job runs", lambda: job_runs() >= 1)

                dev = httpx.get(f"{creds['base_url']}/metrics", timeout=10).text  # one process shows it all
                assert samples(dev, "tomato_webhook_backlog")[""] == 0
                assert samples(dev, "tomato_http_requests_total") and samples(dev, "tomato_job_runs_total")
            finally:
                stop(worker, tmp_path, "worker")
                stop(scheduler, tmp_path, "scheduler")
    finally:
        receiver.close()
