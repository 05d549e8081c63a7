"""Issue 2 acceptance 1-2: `tomato serve` on the embedded default and on the real services; readiness follows
RabbitMQ going away and coming back while liveness stays up."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import free_port
from tests.e2e.conftest import services_env as stack_services_env


def _serve(cwd: Path, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    log = (cwd / "serve.log").open("ab")
    proc = subprocess.Popen([sys.executable, "-m", "tomato.cli", "serve", "--port", str(port)], cwd=cwd, env=env,
                            stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return proc, base
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise AssertionError((cwd / "serve.log").read_text()[-3000:])
        time.sleep(0.1)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=15) == 0


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("TOMATO_")}


def test_embedded_default_creates_its_database(tmp_path: Path) -> None:
    proc, base = _serve(tmp_path, _clean_env())
    try:
        ready = httpx.get(f"{base}/readyz", timeout=5)
        assert ready.status_code == 200
        checks = ready.json()["checks"]
        assert checks == {
            "database": {"backend": "sqlite", "up": True},
            "cache": {"backend": "memory", "up": True},
            "bus": {"backend": "in-process", "up": True},
        }
        assert (tmp_path / "tomato.db").exists()
    finally:
        _stop(proc)


@pytest.fixture
def services_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    """A database, Redis prefix and RabbitMQ vhost of the test's own (dropped afterwards)."""
    with stack_services_env(tmp_path) as env:
        yield {**_clean_env(), **env}


def _rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", *args], check=True, capture_output=True, timeout=120)


def test_real_services_and_readiness_when_rabbitmq_stops(tmp_path: Path, services_env: dict[str, str]) -> None:
    upgrade = subprocess.run([sys.executable, "-m", "tomato.cli", "db", "upgrade"], cwd=tmp_path, env=services_env,
                             capture_output=True, text=True)  # fmt: skip
    assert upgrade.returncode == 0, upgrade.stderr
    proc, base = _serve(tmp_path, services_env)
    try:
        ready = httpx.get(f"{base}/readyz", timeout=5).json()
        assert ready["status"] == "ready"
        assert {k: (v["backend"], v["up"]) for k, v in ready["checks"].items()} == {
            "database": ("postgresql", True),
            "cache": ("redis", True),
            "bus": ("rabbitmq", True),
        }
        _rabbitmqctl("stop_app")
        try:
            deadline = time.monotonic() + 30
            while (down := httpx.get(f"{base}/readyz", timeout=10)).status_code != 503:
                assert time.monotonic() < deadline, down.text
                time.sleep(0.2)
            assert down.json()["checks"]["bus"] == {"backend": "rabbitmq", "up": False}
            assert down.json()["checks"]["database"]["up"] is True
            assert httpx.get(f"{base}/healthz", timeout=5).status_code == 200
        finally:
            _rabbitmqctl("start_app")
            _rabbitmqctl("await_startup")
        deadline = time.monotonic() + 60
        while httpx.get(f"{base}/readyz", timeout=10).status_code != 200:  # the robust connection comes back
            assert time.monotonic() < deadline
            time.sleep(0.2)
    finally:
        _stop(proc)
