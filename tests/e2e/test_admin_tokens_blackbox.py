"""Issue 19 acceptance 4 on real processes: `tomato serve --workers 2` on PostgreSQL, Redis and RabbitMQ; a token
revoked through the API, or by `tomato admin revoke-token` in another process, is refused by every worker on its
next request, and both revocations are in the audit trail."""

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

from tests.e2e.conftest import free_port, services_env

TRIES = 8  # requests each on a new connection, so both workers' accept loops get their turn


@pytest.fixture
def env(tmp_path: Path) -> Iterator[dict[str, str]]:
    with services_env(tmp_path) as settings:
        yield {**{k: v for k, v in os.environ.items() if not k.startswith("TOMATO_")}, **settings}


def _cli(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tomato.cli", "admin", *args], env=env, cwd=cwd, capture_output=True, text=True
    )


@pytest.fixture
def serve(env: dict[str, str], tmp_path: Path) -> Iterator[str]:
    port = free_port()
    log = (tmp_path / "serve.log").open("wb")
    cmd = [sys.executable, "-m", "tomato.cli", "serve", "--port", str(port), "--workers", "2"]
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError((tmp_path / "serve.log").read_text()[-3000:])
            time.sleep(0.2)
        yield base
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def _statuses(base: str, token: str) -> set[int]:
    return {
        httpx.get(f"{base}/admin/merchants", headers={"Authorization": f"Bearer {token}"}, timeout=10).status_code
        for _ in range(TRIES)
    }


def test_revoked_tokens_are_refused_by_every_worker(env: dict[str, str], tmp_path: Path, serve: str) -> None:
    made = [_cli(env, tmp_path, "create-token", "--role", "operator", "--name", name) for name in ("root", "a", "b")]
    assert all(m.returncode == 0 for m in made), [m.stderr for m in made]
    root, token_a, token_b = (m.stdout.strip().splitlines()[-1] for m in made)
    auth = {"Authorization": f"Bearer {root}"}
    ids = {t["name"]: t["id"] for t in httpx.get(f"{serve}/admin/tokens", headers=auth, timeout=10).json()["data"]}
    assert _statuses(serve, token_a) == {200} and _statuses(serve, token_b) == {200}

    r = httpx.post(f"{serve}/admin/tokens/{ids['a']}/revoke", headers=auth, timeout=10)
    assert r.status_code == 200, r.text
    assert _statuses(serve, token_a) == {401}

    revoked = _cli(env, tmp_path, "revoke-token", ids["b"])
    assert revoked.returncode == 0, revoked.stderr
    assert _statuses(serve, token_b) == {401}
    assert _statuses(serve, root) == {200}

    trail = httpx.get(f"{serve}/admin/audit?action=token.revoke", headers=auth, timeout=10).json()["data"]
    assert [(e["target"], e["via"]) for e in trail] == [(ids["b"], "cli"), (ids["a"], "api")]
    assert trail[1]["actor"] == "operator:root" and trail[1]["actor_token_id"] == ids["root"]
