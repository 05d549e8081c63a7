"""The chaos run's topology: a scratch PostgreSQL database, RabbitMQ vhost and Redis prefix of its own; proxies in
front of each shared service; `tomato serve` ×2 behind a round-robin balancer, `tomato worker` ×2,
`tomato scheduler` ×2 and `tomato sandbox`; seeded through the admin API and the simulator's registration API,
the way an operator wires a real deployment.

Every process is its own session (so SIGKILL takes it whole) and can be killed and started again by name.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import asyncpg
import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from bench._common import Service, Services, free_port
from bench.chaos_net import Proxy

PG = ("127.0.0.1", 5432)
REDIS = ("127.0.0.1", 6379)
AMQP = ("127.0.0.1", 5672)
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
VHOST_PREFIX = "tomato-test-chaos-"  # the test suite's prefix: `.ci/purge_rabbitmq.py` removes leftovers
SIM_FEE_PPM = 3_800  # what `tomato sandbox` charges by default; channel accounts cost the same, so fees reconcile
TOMATO = [sys.executable, "-m", "tomato.cli"]
ROOT = Path(__file__).resolve().parents[1]


class TopologyError(RuntimeError):
    pass


@dataclass
class Seeded:
    mch_no: str
    app_id: str
    secret: str
    accounts: dict[str, str]  # channel → channel account id
    finance_token: str
    operator_token: str


@dataclass
class Topology:
    work: Path
    run_id: str
    db_name: str = ""
    vhost: str = ""
    proxies: dict[str, Proxy] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)  # process name → its HTTP port (serve-1, serve-2, sandbox)
    services: Services | None = None
    procs: dict[str, Service] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.proxies['lb'].port}"

    @property
    def sandbox_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['sandbox']}"

    @property
    def db_url(self) -> str:
        """The scratch database directly (not through the proxy): for the checker, after the run."""
        return f"postgresql://postgres@127.0.0.1:5432/{self.db_name}"

    # --- set-up ----------------------------------------------------------------------------------------------

    async def up(self, *, webhook_time_scale: float = 60.0) -> None:
        self.db_name = f"tomato_chaos_{os.getpid()}_{self.run_id}"
        await _pg(f'CREATE DATABASE "{self.db_name}"')
        self.vhost = f"{VHOST_PREFIX}{self.run_id}"
        _rabbitmqctl("add_vhost", self.vhost)
        _rabbitmqctl("set_permissions", "-p", self.vhost, "guest", ".*", ".*", ".*")
        for name, target in (("pg", PG), ("redis", REDIS), ("amqp", AMQP)):
            self.proxies[name] = Proxy([target])
            await self.proxies[name].start()
        self.ports = {"serve-1": free_port(), "serve-2": free_port(), "sandbox": free_port()}
        self.proxies["lb"] = Proxy([("127.0.0.1", self.ports["serve-1"]), ("127.0.0.1", self.ports["serve-2"])])
        await self.proxies["lb"].start()
        self.tokens = {"operator": f"chaos-op-{secrets.token_hex(16)}", "finance": f"chaos-fin-{secrets.token_hex(16)}"}
        env = {k: v for k, v in os.environ.items() if not k.startswith("TOMATO_")}
        env.update({
            "TOMATO_DATABASE_URL": f"postgresql+asyncpg://postgres@127.0.0.1:{self.proxies['pg'].port}/{self.db_name}",
            "TOMATO_REDIS_URL": f"redis://127.0.0.1:{self.proxies['redis'].port}/0",
            "TOMATO_REDIS_PREFIX": f"chaos:{self.run_id}:",
            "TOMATO_AMQP_URL": f"amqp://guest:guest@127.0.0.1:{self.proxies['amqp'].port}/{quote(self.vhost, safe='')}",
            "TOMATO_AMQP_PREFIX": f"chaos{self.run_id}",
            "TOMATO_SECRET_KEYS": "k1:" + base64.b64encode(secrets.token_bytes(32)).decode(),
            "TOMATO_ADMIN_TOKENS": ",".join(f"{r}:{t}" for r, t in self.tokens.items()),
            "TOMATO_PUBLIC_URL": self.gateway_url,
            "TOMATO_WEBHOOK_ALLOWED_NETWORKS": "127.0.0.0/8",
            "TOMATO_WEBHOOK_TIME_SCALE": str(webhook_time_scale),
            "TOMATO_COMPENSATION_TIME_SCALE": "60",
            "TOMATO_BREAKER_RESET_TIMEOUT_S": "5",
            "TOMATO_CHANNEL_TIMEOUT_S": "3",
            "TOMATO_RATE_LIMIT_RPS": "100000",
            "TOMATO_RATE_LIMIT_BURST": "100000",
            "TOMATO_DATA_DIR": str(self.work / "data"),
        })  # fmt: skip
        self.env = env
        done = await self.tomato("db", "upgrade")
        if done.returncode != 0:
            raise TopologyError(f"tomato db upgrade failed:\n{done.stdout}\n{done.stderr}")
        (self.work / "logs").mkdir(exist_ok=True)
        self.services = Services(self.work / "logs")  # one log per process start: <name>.<unix time>.log
        for name in ("sandbox", "serve-1", "serve-2", "worker-1", "worker-2", "scheduler-1", "scheduler-2"):
            self.start(name)
        for name in ("sandbox", "serve-1", "serve-2"):
            await self.wait_ready(name)

    async def tomato(self, *args: str) -> subprocess.CompletedProcess[str]:
        """A one-off `tomato` command, off the event loop: the proxies it goes through run on this loop."""
        return await asyncio.to_thread(subprocess.run, [*TOMATO, *args], env=self.env, cwd=self.work,
                                       capture_output=True, text=True, timeout=300, check=False)  # fmt: skip

    def argv(self, name: str) -> list[str]:
        role = name.split("-")[0]
        if role == "sandbox":
            return [*TOMATO, "sandbox", "--port", str(self.ports[name]), "--time-scale", "60"]
        if role == "serve":
            return [*TOMATO, "serve", "--port", str(self.ports[name])]
        return [*TOMATO, role]

    def start(self, name: str) -> Service:
        assert self.services is not None
        service = self.services.start(f"{name}.{int(time.time())}", self.argv(name), self.env, ROOT)
        self.procs[name] = service
        return service

    async def wait_ready(self, name: str, timeout_s: float = 90) -> None:
        path = "/healthz" if name == "sandbox" else "/readyz"
        url = f"http://127.0.0.1:{self.ports[name]}{path}"
        deadline = time.monotonic() + timeout_s
        async with httpx.AsyncClient(timeout=3) as client:
            while time.monotonic() < deadline:
                service = self.procs[name]
                if not service.alive():
                    raise TopologyError(f"{name} exited:\n{service.log_tail()}")
                try:
                    if (await client.get(url)).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.3)
        raise TopologyError(f"{name} not ready after {timeout_s}s:\n{self.procs[name].log_tail()}")

    def kill(self, name: str) -> None:
        """SIGKILL to the whole process group: no shutdown hook runs."""
        service = self.procs[name]
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(service.pid, signal.SIGKILL)
        service.popen.wait(timeout=10)

    async def down(self) -> None:
        if self.services is not None:  # SIGTERM, then the processes drain through the proxies on this loop
            await asyncio.to_thread(self.services.stop_all)
        for proxy in self.proxies.values():
            await proxy.cut()
        if self.db_name:
            try:
                await _pg(f'DROP DATABASE IF EXISTS "{self.db_name}" WITH (FORCE)')
            except Exception as exc:  # keep tearing down
                print(f"could not drop {self.db_name}: {exc}", file=sys.stderr)
        if self.vhost:
            try:
                _rabbitmqctl("delete_vhost", self.vhost)
            except Exception as exc:
                print(f"could not delete vhost {self.vhost}: {exc}", file=sys.stderr)
        await _redis_cleanup(f"chaos:{self.run_id}:")

    # --- seeding ---------------------------------------------------------------------------------------------

    async def seed(self, notify_url: str) -> Seeded:
        """Simulator accounts on the three channels with routing rules, and a merchant with an HMAC app on a
        0.60 % fee plan — through the admin API only."""
        op = {"Authorization": f"Bearer {self.tokens['operator']}"}
        async with httpx.AsyncClient(base_url=self.gateway_url, headers=op, timeout=30) as admin, \
                httpx.AsyncClient(base_url=self.sandbox_url, timeout=30) as sim:  # fmt: skip
            keys = _ok(await sim.get("/sandbox/keys"), 200)
            accounts: dict[str, str] = {}
            for channel, config in (await _channel_configs(sim, keys, self.sandbox_url)).items():
                body = {"channel": channel, "name": f"chaos {channel}", "config": config, "cost_ppm": SIM_FEE_PPM}
                accounts[channel] = _ok(await admin.post("/admin/channel-accounts", json=body), 201)["id"]
            methods = {"alipay": ["ALIPAY_QR"], "wechat": ["WECHAT_NATIVE"], "bank": ["BANK_WEB"]}
            for channel, account_id in accounts.items():
                rule = {"rank": 0, "pay_methods": methods[channel],
                        "candidates": [{"channel_account_id": account_id, "priority": 1, "weight": 100}]}  # fmt: skip
                _ok(await admin.post("/admin/routing-rules", json=rule), 201)
            merchant = _ok(await admin.post("/admin/merchants", json={"name": "Chaos Merchant"}), 201)
            every = [m for ms in methods.values() for m in ms]
            plan = _ok(await admin.post("/admin/fee-plans", json={
                "name": "chaos 0.60 %", "rates": dict.fromkeys(every, 6000), "refund_fee": "proportional"}), 201)
            _ok(await admin.post(f"/admin/merchants/{merchant['mch_no']}/fee-plan", json={"fee_plan_id": plan["id"]}),
                200)
            app = _ok(await admin.post(f"/admin/merchants/{merchant['mch_no']}/apps",
                                       json={"name": "chaos", "notify_url": notify_url, "pay_methods": every}), 201)
        return Seeded(merchant["mch_no"], app["app"]["app_id"], app["secret"], accounts, self.tokens["finance"],
                      self.tokens["operator"])


async def _channel_configs(sim: httpx.AsyncClient, keys: dict[str, str], sandbox_url: str) -> dict[str, Any]:
    """Each channel's account config, its merchant-side key registered at the simulator first."""
    from tomato.channel.sandbox.bank import BankSimulator  # the simulator's own URL layout

    out: dict[str, Any] = {}
    key, pub = _rsa_pair()
    alipay_id = f"2021{secrets.randbelow(10**12):012d}"
    _ok(await sim.post("/sandbox/apps", json={"channel": "alipay", "merchant_id": alipay_id, "public_key_pem": pub}),
        200)
    out["alipay"] = {"app_id": alipay_id, "private_key_pem": key, "alipay_public_key_pem": keys["alipay"],
                     "gateway_url": f"{sandbox_url}/alipay/gateway.do"}  # fmt: skip
    key, pub = _rsa_pair()
    mchid, serial, v3 = f"19{secrets.randbelow(10**8):08d}", secrets.token_hex(20).upper(), secrets.token_hex(16)
    _ok(await sim.post("/sandbox/apps", json={"channel": "wechat", "merchant_id": mchid, "serial_no": serial,
                                              "api_v3_key": v3, "public_key_pem": pub}), 200)  # fmt: skip
    out["wechat"] = {"mchid": mchid, "appid": f"wx{secrets.token_hex(8)}", "serial_no": serial, "private_key_pem": key,
                     "api_v3_key": v3, "platform_public_key_pem": keys["wechat"],
                     "platform_public_key_id": keys["wechat_public_key_id"], "base_url": sandbox_url}  # fmt: skip
    key, pub = _rsa_pair()
    mer_id, cert_id = f"777290{secrets.randbelow(10**9):09d}", str(10**10 + secrets.randbelow(9 * 10**10))
    _ok(await sim.post("/sandbox/apps", json={"channel": "bank", "merchant_id": mer_id, "cert_id": cert_id,
                                              "public_key_pem": pub}), 200)  # fmt: skip
    out["bank"] = {"mer_id": mer_id, "cert_id": cert_id, "private_key_pem": key, "bank_public_key_pem": keys["bank"],
                   **BankSimulator.urls(sandbox_url)}  # fmt: skip
    return out


def _rsa_pair() -> tuple[str, str]:
    k = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()).decode()  # fmt: skip
    public = k.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo).decode()  # fmt: skip
    return private, public


def _ok(response: httpx.Response, status: int) -> Any:
    if response.status_code != status:
        raise TopologyError(f"{response.request.method} {response.request.url} → {response.status_code}: "
                            f"{response.text[:800]}")  # fmt: skip
    return response.json()


async def _pg(sql: str) -> None:
    conn = await asyncpg.connect(PG_ADMIN)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def _rabbitmqctl(*args: str) -> None:
    if shutil.which("rabbitmqctl") is None:
        raise TopologyError("rabbitmqctl not found: the run needs a RabbitMQ vhost of its own")
    done = subprocess.run(["rabbitmqctl", *args], capture_output=True, text=True, timeout=60, check=False)
    if done.returncode != 0:
        raise TopologyError(f"rabbitmqctl {' '.join(args)}: {done.stderr.strip() or done.stdout.strip()}")


async def _redis_cleanup(prefix: str) -> None:
    import redis.asyncio as aioredis

    client = aioredis.Redis(host=REDIS[0], port=REDIS[1])
    try:
        keys = [k async for k in client.scan_iter(match=prefix + "*", count=1000)]
        if keys:
            await client.delete(*keys)
    except Exception as exc:
        print(f"could not clean Redis prefix {prefix}: {exc}", file=sys.stderr)
    finally:
        await client.aclose()
