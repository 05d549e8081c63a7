"""Issue 2 acceptance 1-2: `tomato serve` on the embedded default and on the real services, liveness staying up
while backends go away. Issue 15: readiness stays 200 (degraded) without RabbitMQ, 503 without the database;
unsafe setups refuse to start."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from tests.conftest import PG_ADMIN_URL, REDIS_URL
from tests.e2e.conftest import free_port
from tests.e2e.conftest import services_env as stack_services_env
from tests.fixtures.tcp_proxy import ThreadedTcpProxy


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
        assert ready.json()["status"] == "ready"
        assert checks == {
            "database": {"backend": "sqlite", "up": True, "status": "up"},
            "cache": {"backend": "memory", "up": True, "status": "up"},
            "bus": {"backend": "in-process", "up": True, "status": "up"},
        }
        assert (tmp_path / "tomato.db").exists()
    finally:
        _stop(proc)


@pytest.fixture
def services_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    """A database, Redis prefix and RabbitMQ vhost of the test's own (dropped afterwards)."""
    with stack_services_env(tmp_path) as env:
        yield {**_clean_env(), **env}


def _wait_readyz(base: str, until: Callable[[httpx.Response], bool], timeout_s: float = 60) -> httpx.Response:
    deadline = time.monotonic() + timeout_s
    while not until(r := httpx.get(f"{base}/readyz", timeout=10)):
        assert time.monotonic() < deadline, r.text
        time.sleep(0.2)
    return r


def _host_port(url: str, default: int) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or default


def test_real_services_and_readiness_when_a_backend_goes(tmp_path: Path, services_env: dict[str, str]) -> None:
    """RabbitMQ and PostgreSQL are reached through proxies the test cuts: the shared services keep running."""
    upgrade = subprocess.run([sys.executable, "-m", "tomato.cli", "db", "upgrade"], cwd=tmp_path, env=services_env,
                             capture_output=True, text=True)  # fmt: skip
    assert upgrade.returncode == 0, upgrade.stderr
    bus = ThreadedTcpProxy(*_host_port(services_env["TOMATO_AMQP_URL"], 5672))
    db = ThreadedTcpProxy(*_host_port(PG_ADMIN_URL, 5432))
    amqp = urlsplit(services_env["TOMATO_AMQP_URL"])._replace(netloc=f"guest:guest@127.0.0.1:{bus.port}").geturl()
    db_url = urlsplit(services_env["TOMATO_DATABASE_URL"])
    env = {**services_env, "TOMATO_AMQP_URL": amqp,
           "TOMATO_DATABASE_URL": db_url._replace(netloc=f"postgres@127.0.0.1:{db.port}").geturl()}  # fmt: skip
    proc, base = _serve(tmp_path, env)
    try:
        ready = httpx.get(f"{base}/readyz", timeout=5)
        assert ready.status_code == 200 and ready.json()["status"] == "ready", ready.text
        assert {k: (v["backend"], v["up"], v["status"]) for k, v in ready.json()["checks"].items()} == {
            "database": ("postgresql", True, "up"),
            "cache": ("redis", True, "up"),
            "bus": ("rabbitmq", True, "up"),
        }

        bus.cut()  # RabbitMQ gone: the outbox holds the events, so serve stays ready and says it is degraded
        down = _wait_readyz(base, lambda r: not r.json()["checks"]["bus"]["up"])
        assert down.status_code == 200 and down.json()["status"] == "degraded", down.text
        assert down.json()["checks"]["bus"] == {"backend": "rabbitmq", "up": False, "status": "degraded"}
        assert down.json()["checks"]["database"]["up"] is True
        assert httpx.get(f"{base}/healthz", timeout=5).status_code == 200
        bus.restore()
        _wait_readyz(base, lambda r: r.json()["status"] == "ready")  # the robust connection comes back

        db.cut()  # the database gone: not ready
        gone = _wait_readyz(base, lambda r: r.status_code != 200)
        assert gone.status_code == 503 and gone.json()["status"] == "unavailable", gone.text
        assert gone.json()["checks"]["database"] == {"backend": "postgresql", "up": False, "status": "down"}
        assert httpx.get(f"{base}/healthz", timeout=5).status_code == 200
        db.restore()
        _wait_readyz(base, lambda r: r.status_code == 200 and r.json()["status"] == "ready")
    finally:
        bus.restore()
        db.restore()
        _stop(proc)
        bus.close()
        db.close()


DEAD_PG = "postgresql+asyncpg://postgres@127.0.0.1:1/nowhere"  # never reached: the refusal comes first
KEYS = "k1:" + "A" * 43 + "="


@pytest.mark.parametrize(
    ("args", "env", "needs"),
    [
        (["serve", "--workers", "2"], {}, "TOMATO_REDIS_URL"),
        (["serve"], {"TOMATO_DATABASE_URL": DEAD_PG, "TOMATO_SECRET_KEYS": KEYS}, "TOMATO_REDIS_URL"),
        (["serve"], {"TOMATO_DATABASE_URL": DEAD_PG, "TOMATO_REDIS_URL": REDIS_URL}, "TOMATO_SECRET_KEYS"),
        (["dev"], {"TOMATO_DATABASE_URL": DEAD_PG, "TOMATO_SECRET_KEYS": KEYS}, "TOMATO_REDIS_URL"),
        (["worker"], {"TOMATO_DATABASE_URL": DEAD_PG}, "TOMATO_SECRET_KEYS"),
        (["scheduler"], {"TOMATO_DATABASE_URL": DEAD_PG}, "TOMATO_SECRET_KEYS"),
    ],
)
def test_unsafe_setups_refuse_to_start(tmp_path: Path, args: list[str], env: dict[str, str], needs: str) -> None:
    if args[0] in ("serve", "dev"):
        args = [*args, "--port", str(free_port())]
    cmd = [sys.executable, "-m", "tomato.cli", *args]
    proc = subprocess.Popen(cmd, cwd=tmp_path, env={**_clean_env(), **env}, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    try:
        out, _ = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # its own session: uvicorn's worker processes go too
        proc.communicate()
        raise AssertionError(f"{' '.join(args)} started instead of refusing") from None
    text = out.decode()
    assert proc.returncode == 2, text
    assert "refuses to start" in text and needs in text, text
    assert "Traceback" not in text
