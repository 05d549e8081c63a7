"""Issue 2 acceptance 1-2: `tomato serve` on the embedded default and on the real services; readiness follows
RabbitMQ going away and coming back while liveness stays up. Issue 15: unsafe setups refuse to start."""

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

from tests.conftest import AMQP_URL, PG_ADMIN_URL, REDIS_URL, need_service
from tests.e2e.conftest import _create_pg_db, _drop_pg_db, free_port
from tomato.core.crypto import SecretBox


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
    need_service("PostgreSQL", PG_ADMIN_URL, 5432)
    need_service("Redis", REDIS_URL, 6379)
    need_service("RabbitMQ", AMQP_URL, 5672)
    name, url = _create_pg_db()
    env = {**_clean_env(), "TOMATO_DATABASE_URL": url, "TOMATO_REDIS_URL": REDIS_URL,
           "TOMATO_AMQP_URL": AMQP_URL, "TOMATO_AMQP_PREFIX": name, "TOMATO_REDIS_PREFIX": f"{name}:",
           "TOMATO_SECRET_KEYS": SecretBox.generate_ring("e2e")}  # fmt: skip
    try:
        yield env
    finally:
        _drop_pg_db(name)


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
