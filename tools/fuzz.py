"""Property-based fuzzing of the HTTP API from its own OpenAPI document (Schemathesis), run by `.ci/run`.

Starts a throwaway `tomato dev` stack (embedded SQLite and in-process queues, in a temporary directory, on free
loopback ports), then runs Schemathesis against `GET /openapi.json`:

- every `/v1` operation, signed by the app of the dev credentials (tools/fuzz_hooks.py);
- every `/admin` operation three times: with the operator token, with the finance token and with no token;
- `/healthz`, `/readyz` and `/metrics` once, unauthenticated.

Each run generates positive and negative data (examples, coverage and fuzzing phases) and applies the checks
`not_a_server_error`, `status_code_conformance`, `content_type_conformance` and `response_schema_conformance`;
any failure fails the script (exit 1) and prints the gateway's log. Nothing is excluded from the document's
operations. What the document does not list is not fuzzed here, and why:

- `/callbacks/…` (channel notifies): their bodies are signed by a channel's key, so generated data could only ever
  test the signature refusal; they are covered by the adapters' and the callback tests instead;
- `/cashier/…`: HTML pages for a payer's browser, covered by the cashier and browser tests;
- `/sandbox/…`: the channel simulator, a test double that is not part of the product's API.

Usage: `.venv/bin/python tools/fuzz.py [--examples N] [--seed S] [--services | --inherit-env]`. The whole run stays
within a few minutes on two cores (the default budget); `--examples` trades time for depth. `--services` (what
`.ci/run` uses) runs the stack on PostgreSQL and Redis instead — a database and a key prefix of its own, removed
afterwards; `--inherit-env` keeps the TOMATO_* settings of the environment (a PostgreSQL database is migrated
first).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"
RUN_TIMEOUT_S = 150  # one Schemathesis run; the default budget takes well under half of it


PG_ADMIN_URL = os.environ.get("TOMATO_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("TOMATO_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@contextlib.contextmanager
def services() -> Iterator[dict[str, str]]:
    """A database of its own on the test PostgreSQL (dropped afterwards) and a Redis key prefix of its own (deleted
    afterwards): the settings of a production-like `tomato dev`, where the issue's NUL parameters were 500s."""
    import asyncpg
    import redis

    from tomato.core.crypto import SecretBox

    name = f"tomato_fuzz_{os.getpid()}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(PG_ADMIN_URL)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    prefix = f"{name}:"
    base = PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
    try:
        yield {
            "TOMATO_DATABASE_URL": f"{base}/{name}",
            "TOMATO_REDIS_URL": REDIS_URL,
            "TOMATO_REDIS_PREFIX": prefix,
            "TOMATO_SECRET_KEYS": SecretBox.generate_ring("fuzz"),
        }
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        client = redis.Redis.from_url(REDIS_URL)
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        for start in range(0, len(keys), 1000):
            client.delete(*keys[start : start + 1000])
        client.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_dev(
    workdir: Path, log: Path, inherit: bool, backends: dict[str, str]
) -> tuple[subprocess.Popen[bytes], dict[str, object]]:
    port, sandbox_port = free_port(), free_port()
    creds = workdir / "credentials.json"
    env = {k: v for k, v in os.environ.items() if inherit or not k.startswith("TOMATO_")}  # default: embedded
    env |= backends
    env["TOMATO_LOG_LEVEL"] = "WARNING"
    if env.get("TOMATO_DATABASE_URL", "sqlite").split(":")[0].startswith("postgresql"):
        subprocess.run([str(BIN / "tomato"), "db", "upgrade"], cwd=workdir, env=env, check=True)
    command = [str(BIN / "tomato"), "dev", "--port", str(port), "--sandbox-port", str(sandbox_port)]
    command += ["--credentials-out", str(creds)]
    with log.open("wb") as out:
        proc = subprocess.Popen(command, cwd=workdir, env=env, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 90
    while not creds.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            stop(proc)
            sys.stderr.write(log.read_text(errors="replace")[-4000:])
            raise SystemExit("tomato dev did not start")
        time.sleep(0.2)
    return proc, json.loads(creds.read_text())


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def schemathesis(
    name: str,
    base_url: str,
    paths: str,
    examples: int,
    seed: int,
    headers: list[str],
    env: dict[str, str],
    workdir: Path,
) -> bool:
    command = [
        str(BIN / "schemathesis"),
        "run",
        f"{base_url}/openapi.json",
        "--checks",
        CHECKS,
        "--mode",
        "all",
        "--phases",
        "examples,coverage,fuzzing",
        "--max-examples",
        str(examples),
        "--seed",
        str(seed),
        "--include-path-regex",
        paths,
        "--workers",  # one: CPython 3.11's ast.parse is not thread-safe, and Hypothesis calls it to describe filters
        "1",
        "--request-timeout",
        "20",
        "--suppress-health-check",
        "all",
        "--no-color",
    ]
    for header in headers:
        command += ["--header", header]
    print(f"\n== fuzz: {name} ==", flush=True)
    started = time.monotonic()
    try:
        # in the temporary directory: Schemathesis keeps a cache (.schemathesis/) where it runs
        result = subprocess.run(command, cwd=workdir, env=env, timeout=RUN_TIMEOUT_S)
        ok = result.returncode == 0
    except subprocess.TimeoutExpired:
        print(f"fuzz: {name} ran past {RUN_TIMEOUT_S} s", flush=True)
        ok = False
    print(f"== fuzz: {name}: {'ok' if ok else 'FAILED'} in {time.monotonic() - started:.0f} s ==", flush=True)
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=50, help="fuzzing-phase examples per /admin operation")
    parser.add_argument("--seed", type=int, default=16, help="Hypothesis seed (fixed: a CI failure reproduces)")
    parser.add_argument(
        "--services",
        action="store_true",
        help="PostgreSQL and Redis (a throwaway database and key prefix, at TOMATO_TEST_PG_URL, TOMATO_TEST_REDIS_URL)",
    )
    parser.add_argument(
        "--inherit-env",
        action="store_true",
        help="keep TOMATO_* settings (e.g. a fresh PostgreSQL database, Redis) instead of the embedded backends",
    )
    args = parser.parse_args()
    chosen: contextlib.AbstractContextManager[dict[str, str]] = (
        services() if args.services else contextlib.nullcontext({})
    )
    with tempfile.TemporaryDirectory(prefix="tomato-fuzz-") as tmp, chosen as backends:
        workdir = Path(tmp)
        log = workdir / "dev.log"
        proc, creds = start_dev(workdir, log, args.inherit_env, backends)
        try:
            base = str(creds["base_url"])
            tokens = creds["admin_tokens"]
            assert isinstance(tokens, dict)
            env = {**os.environ, "SCHEMATHESIS_HOOKS": str(ROOT / "tools" / "fuzz_hooks.py")}
            env |= {"TOMATO_FUZZ_APP_ID": str(creds["app_id"]), "TOMATO_FUZZ_APP_SECRET": str(creds["app_secret"])}
            accounts = creds["channel_accounts"]
            assert isinstance(accounts, dict)
            known = {"mch_no": creds["mch_no"], "app_id": creds["app_id"], "account_id": accounts["alipay"]}
            env["TOMATO_FUZZ_KNOWN"] = json.dumps(known)
            # a refused token is answered before anything else is read, so those runs need fewer examples
            few = max(5, args.examples // 5)
            runs = [
                ("/v1, signed", "^/v1/", [], args.examples * 2),
                ("/admin, operator token", "^/admin/", [f"Authorization: Bearer {tokens['operator']}"], args.examples),
                ("/admin, finance token", "^/admin/", [f"Authorization: Bearer {tokens['finance']}"], few),
                ("/admin, no token; health", "^/(admin/|healthz|readyz|metrics)", [], few),
            ]
            results = [schemathesis(n, base, p, count, args.seed, h, env, workdir) for n, p, h, count in runs]
        finally:
            stop(proc)
        text = log.read_text(errors="replace")
        if "unhandled error" in text:  # a 500 the checks did not see (gateway.errors logs every one)
            print("fuzz: the gateway logged an unhandled error", flush=True)
            results.append(False)
        if not all(results) or proc.returncode not in (0, -signal.SIGTERM):
            sys.stderr.write("\n== tomato dev log (last 8 KiB) ==\n" + log.read_text(errors="replace")[-8192:])
            return 1
    print("\nfuzz: 0 failures", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
