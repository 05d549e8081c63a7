"""The chaos run's traffic: a merchant and its payers at a set rate — creates on the three channels, payments via the
simulator's payer API, closes, partial and full refunds, payouts, settlement runs and webhook resends.

Every merchant POST carries an Idempotency-Key and is retried with the same key and body on a 5xx, a 429, a 409
IDEMPOTENCY_KEY_CONFLICT (first attempt still running) or a connection error, until it gets a final answer; each
key's final answers are kept so the checker can tell that retries converged on one resource.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import random
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

METHODS = {"alipay": "ALIPAY_QR", "wechat": "WECHAT_NATIVE", "bank": "BANK_WEB"}
RETRY_FOR_S = 240.0  # a request is retried this long: longer than any fault lasts


@dataclass
class Ops:
    """What the workload did and what the simulator said, for the checker."""

    counts: dict[str, int] = field(default_factory=dict)  # operation kind → done
    failures: dict[str, int] = field(default_factory=dict)  # operation kind → gave up / unexpected answer
    sim_paid: dict[str, int] = field(default_factory=dict)  # order_no → amount the payer paid at the simulator
    sim_failed: set[str] = field(default_factory=set)  # orders whose payment the simulator failed (a pay.failed due)
    keys: dict[str, set[str]] = field(default_factory=dict)  # idempotency key → resource ids its answers named
    orders: dict[str, tuple[str, int]] = field(default_factory=dict)  # order_no → (channel, amount)
    refunded: dict[str, int] = field(default_factory=dict)  # order_no → refunds accepted (fen)
    successes: list[tuple[float, float]] = field(default_factory=list)  # (sent, answered) of each successful create
    last_error: dict[str, str] = field(default_factory=dict)
    longest: dict[str, float] = field(default_factory=dict)  # what a retry was for → longest wait for a final answer

    def count(self, kind: str, ok: bool = True) -> None:
        bucket = self.counts if ok else self.failures
        bucket[kind] = bucket.get(kind, 0) + 1


class Merchant:
    """A signed merchant API client (docs/merchant-guide.md, HMAC-SHA256)."""

    def __init__(self, base_url: str, app_id: str, secret: str) -> None:
        self.app_id, self.secret = app_id, secret.encode()
        self.http = httpx.AsyncClient(base_url=base_url, timeout=15,
                                      limits=httpx.Limits(max_connections=32, max_keepalive_connections=8))  # fmt: skip

    def _headers(self, method: str, path: str, body: bytes) -> dict[str, str]:
        ts, nonce = str(int(time.time())), secrets.token_hex(16)
        message = f"{method}\n{path}\n{ts}\n{nonce}\n".encode() + body + b"\n"
        sig = base64.b64encode(hmac.new(self.secret, message, hashlib.sha256).digest()).decode()
        return {"Content-Type": "application/json", "Tomato-App-Id": self.app_id, "Tomato-Timestamp": ts,
                "Tomato-Nonce": nonce, "Tomato-Signature": f"HMAC-SHA256 {sig}"}  # fmt: skip

    async def get(self, path: str) -> httpx.Response:
        return await self.http.get(path, headers=self._headers("GET", path, b""))

    async def post(self, path: str, payload: dict[str, Any], key: str, ops: Ops) -> httpx.Response | None:
        """POST with `key`, retried with the same key and bytes until a final answer; None if it never came."""
        body = json.dumps(payload, separators=(",", ":")).encode()
        first = time.monotonic()
        deadline, delay = first + RETRY_FOR_S, 0.2
        while time.monotonic() < deadline:
            headers = {**self._headers("POST", path, body), "Idempotency-Key": key}
            try:
                r = await self.http.post(path, content=body, headers=headers)
            except httpx.HTTPError as exc:
                ops.last_error[path.split("/")[2]] = type(exc).__name__
                ops.count("retry after a connection error")
            else:
                code = _code(r)
                if r.status_code < 500 and r.status_code != 429 and code != "IDEMPOTENCY_KEY_CONFLICT":
                    if delay > 0.2:  # it was retried: how long until the final answer
                        what = path.split("/")[2]
                        ops.longest[what] = max(ops.longest.get(what, 0.0), time.monotonic() - first)
                    if r.status_code < 300:
                        ops.keys.setdefault(key, set()).add(_resource_id(r.json()))
                    return r
                ops.last_error[path.split("/")[2]] = f"{r.status_code} {code}"
                ops.count(f"retry after {r.status_code} {code}".rstrip())
            ops.count("retried (same key)")
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, 3.0)
        return None

    async def aclose(self) -> None:
        await self.http.aclose()


def _code(r: httpx.Response) -> str:
    try:
        return str(r.json().get("error", {}).get("code", ""))
    except ValueError:
        return ""


def _resource_id(body: dict[str, Any]) -> str:
    for name in ("refund_no", "payout_no", "order_no"):
        if name in body:
            return str(body[name])
    return json.dumps(body, sort_keys=True)


class Workload:
    def __init__(self, merchant: Merchant, sandbox_url: str, gateway_url: str, tokens: dict[str, str],
                 seed: int) -> None:  # fmt: skip
        self.m = merchant
        self.ops = Ops()
        self.rng = random.Random(seed)
        self.sim = httpx.AsyncClient(base_url=sandbox_url, timeout=30)
        self.finance = httpx.AsyncClient(base_url=gateway_url, timeout=30,
                                         headers={"Authorization": f"Bearer {tokens['finance']}"})  # fmt: skip
        self.operator = httpx.AsyncClient(base_url=gateway_url, timeout=30,
                                          headers={"Authorization": f"Bearer {tokens['operator']}"})  # fmt: skip
        self.tasks: set[asyncio.Task[None]] = set()
        self.n = 0
        self.available_hint = 0

    async def run(self, rate: float, done: Callable[[], bool]) -> None:
        """Open loop: `rate` merchant operations a second, each its own task, until `done()`."""
        interval = 1.0 / rate
        next_at = time.monotonic()
        while not done():
            now = time.monotonic()
            if now < next_at:
                await asyncio.sleep(min(next_at - now, 0.5))
                continue
            next_at += interval
            self._spawn(self._one())
        await self.settle_tasks()

    async def settle_tasks(self) -> None:
        while self.tasks:
            await asyncio.gather(*list(self.tasks), return_exceptions=True)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _one(self) -> None:
        self.n += 1
        roll = self.rng.random()
        try:
            if self.n % 40 == 0:
                await self.settle()
            elif self.n % 25 == 0:
                await self.payout()
            elif self.n % 30 == 0:
                await self.resend()
            elif roll < 0.7 or not self.ops.sim_paid:
                await self.order_story()
            else:
                await self.refund()
        except httpx.TransportError:  # a read or admin call (no key to retry with) cut by a fault: not a finding
            self.ops.count("read/admin call cut by a fault")
        except (httpx.HTTPError, ValueError, KeyError) as exc:
            self.ops.count("error", ok=False)
            self.ops.last_error["workload"] = repr(exc)[:200]

    async def order_story(self) -> None:
        channel = self.rng.choice(list(METHODS))
        amount = self.rng.randint(100, 50_000)
        out = f"C{self.n}-{secrets.token_hex(4)}"
        sent = time.monotonic()
        r = await self.m.post("/v1/pay/orders", {"out_trade_no": out, "amount": amount, "currency": "CNY",
                                                 "subject": "chaos", "pay_method": METHODS[channel]},
                              f"o-{out}", self.ops)  # fmt: skip
        if r is None or r.status_code not in (200, 201):
            self.ops.count(f"create {channel}", ok=False)
            if r is not None:
                self.ops.last_error["create"] = f"{r.status_code} {r.text[:200]}"
            return
        self.ops.count(f"create {channel}")
        self.ops.successes.append((sent, time.monotonic()))
        order = r.json()
        order_no = order["order_no"]
        self.ops.orders[order_no] = (channel, amount)
        fate = self.rng.random()
        if fate < 0.1:
            await self.close(order_no)
            return
        if fate < 0.85:
            await self.scan(order_no, amount, "paid")
            if fate < 0.15:
                await self.close(order_no)  # a close racing the payment: 409 or paid_after_close, never lost
        elif fate < 0.9:
            await self.scan(order_no, amount, "failed")

    async def scan(self, order_no: str, amount: int, result: str) -> None:
        for _ in range(30):  # the simulator may not have the trade yet if the create is still in flight there
            try:
                r = await self.sim.post("/sandbox/scan", json={"order_no": order_no, "result": result})
            except httpx.HTTPError:
                await asyncio.sleep(1)
                continue
            if r.status_code == 200:
                self.ops.count(f"scan {result}")
                if r.json()["status"] == "PAID":
                    self.ops.sim_paid[order_no] = amount
                else:
                    self.ops.sim_failed.add(order_no)
                return
            if r.status_code == 409:
                self.ops.count("scan refused (closed)")
                return
            await asyncio.sleep(1)
        self.ops.count("scan", ok=False)

    async def close(self, order_no: str) -> None:
        r = await self.m.post(f"/v1/pay/orders/{order_no}/close", {}, f"c-{order_no}", self.ops)
        ok = r is not None and (r.status_code == 200 or _code(r) == "ORDER_STATE_CONFLICT")
        self.ops.count("close", ok=ok)

    async def refund(self) -> None:
        order_no = self.rng.choice(list(self.ops.sim_paid))
        amount = self.ops.sim_paid[order_no]
        left = amount - self.ops.refunded.get(order_no, 0)
        if left <= 0:
            return
        part = left if self.rng.random() < 0.4 else max(1, left // self.rng.randint(2, 4))
        out = f"F{self.n}-{secrets.token_hex(4)}"
        r = await self.m.post("/v1/refunds", {"order_no": order_no, "out_refund_no": out, "amount": part},
                              f"r-{out}", self.ops)  # fmt: skip
        if r is not None and r.status_code in (200, 201):
            self.ops.refunded[order_no] = self.ops.refunded.get(order_no, 0) + part
            self.ops.count("refund full" if part == left else "refund partial")
        elif r is not None and _code(r) in ("ORDER_STATE_CONFLICT", "REFUND_AMOUNT_EXCEEDED"):
            self.ops.count("refund refused (not yet paid here)")  # the notify has not arrived yet: legitimate
        else:
            self.ops.count("refund", ok=False)

    async def payout(self) -> None:
        r = await self.m.get("/v1/balance")
        if r.status_code != 200 or r.json()["available"] < 200:
            self.ops.count("payout skipped (no balance)")
            return
        amount = self.rng.randint(1, min(r.json()["available"] // 4, 20_000))
        out = f"W{self.n}-{secrets.token_hex(4)}"
        body = {"out_payout_no": out, "amount": amount,
                "bank_account": {"name": "Chaos Ltd", "number": "6222020200112233", "bank": "ICBC"}}  # fmt: skip
        p = await self.m.post("/v1/payouts", body, f"w-{out}", self.ops)
        ok = p is not None and (p.status_code in (200, 201) or _code(p) == "INSUFFICIENT_BALANCE")
        self.ops.count("payout", ok=ok)

    async def settle(self) -> None:
        """Settles everything due up to a week ahead, so today's payments become available for payouts."""
        day = (datetime.now(UTC) + timedelta(days=7)).date().isoformat()
        for _ in range(60):
            try:
                r = await self.finance.post("/admin/settlements/run", json={"date": day})
                if r.status_code == 200:
                    self.ops.count("settlement run")
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(2)
        self.ops.count("settlement run", ok=False)

    async def resend(self) -> None:
        r = await self.operator.get("/admin/deliveries", params={"status": "SUCCEEDED", "limit": 3})
        if r.status_code != 200:
            return
        for d in r.json()["data"]:
            resent = await self.operator.post(f"/admin/deliveries/{d['id']}/resend")
            for _ in range(30):  # 503: the database or Redis is down for a fault; the operator tries again
                if resent.status_code != 503:
                    break
                self.ops.count(f"retry after 503 {_code(resent)}".rstrip())
                await asyncio.sleep(1)
                resent = await self.operator.post(f"/admin/deliveries/{d['id']}/resend")
            self.ops.count("webhook resend", ok=resent.status_code in (200, 409))

    async def aclose(self) -> None:
        for client in (self.sim, self.finance, self.operator):
            await client.aclose()
        await self.m.aclose()
