"""The merchant's side of `tomato demo`, written from docs/api.md and docs/webhooks.md alone: a client that signs
every request and verifies every response, and a webhook endpoint that verifies every delivery with the function
docs/webhooks.md gives merchants. The demo plays the merchant with these on purpose instead of reusing the
gateway's own signing code, so what it shows is what an integration written from the docs would see."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
from aiohttp import web

SIGNATURE_WINDOW_S = 300  # docs/webhooks.md: refuse a webhook timestamp further than this from our clock


class ResponseRefused(Exception):
    """An answer the merchant side cannot accept: unsigned, badly signed, or not the status that was expected."""


def _hmac_b64(secret: str, message: bytes) -> str:
    return base64.b64encode(hmac.new(secret.encode(), message, hashlib.sha256).digest()).decode()


def verify_webhook(headers: Mapping[str, str], body: bytes, secrets: Sequence[str], now: float | None = None) -> bool:
    """True when the webhook is fresh and one of its signatures matches one of our secrets (docs/webhooks.md,
    "Verifying the signature": the same function the docs give merchants, comparisons in constant time)."""
    timestamp = headers["Tomato-Timestamp"]
    if abs((time.time() if now is None else now) - int(timestamp)) > SIGNATURE_WINDOW_S:
        return False
    message = f"{timestamp}\n{headers['Tomato-Nonce']}\n".encode() + body + b"\n"
    expected = ["HMAC-SHA256 " + _hmac_b64(s, message) for s in secrets]
    presented = headers["Tomato-Signature"].split(",")
    return any(hmac.compare_digest(p, e) for p in presented for e in expected)


@dataclass
class SignedClient:
    """An HMAC app's client: `METHOD\\nPATH_AND_QUERY\\nTIMESTAMP\\nNONCE\\nBODY\\n` signed with the app secret;
    every answer must carry a valid signature over `TIMESTAMP\\nNONCE\\nBODY\\n` or it is refused."""

    http: httpx.AsyncClient
    app_id: str
    secret: str

    async def call(self, method: str, path: str, payload: Any = None, *, expect: Sequence[int] = (200,)) -> Any:
        """Sends one signed request and returns the verified JSON answer; another status raises with its error."""
        body = b"" if payload is None else json.dumps(payload).encode()
        ts, nonce = str(int(time.time())), secrets.token_hex(16)
        message = f"{method}\n{path}\n{ts}\n{nonce}\n".encode() + body + b"\n"
        headers = {
            "Tomato-App-Id": self.app_id,
            "Tomato-Timestamp": ts,
            "Tomato-Nonce": nonce,
            "Tomato-Signature": "HMAC-SHA256 " + _hmac_b64(self.secret, message),
            "Content-Type": "application/json",
        }
        response = await self.http.request(method, path, content=body, headers=headers)
        self._verify(response)
        if response.status_code not in expect:
            raise ResponseRefused(f"{method} {path} answered {response.status_code}: {_error_of(response)}")
        return response.json()

    def _verify(self, response: httpx.Response) -> None:
        signature = response.headers.get("Tomato-Signature")
        if signature is None:
            raise ResponseRefused(f"unsigned answer {response.status_code}: {_error_of(response)}")
        message = (
            f"{response.headers.get('Tomato-Timestamp', '')}\n{response.headers.get('Tomato-Nonce', '')}\n".encode()
            + response.content
            + b"\n"
        )
        if not hmac.compare_digest(signature, "HMAC-SHA256 " + _hmac_b64(self.secret, message)):
            raise ResponseRefused(f"the answer's signature does not verify ({response.status_code})")


def _error_of(response: httpx.Response) -> str:
    try:
        error = response.json()["error"]
        return f"{error['code']} {error['message']}"
    except (ValueError, KeyError, TypeError):
        return response.text[:200]


@dataclass(frozen=True)
class Webhook:
    event_id: str
    type: str
    data: dict[str, Any]
    verified: bool


@dataclass
class WebhookReceiver:
    """A merchant's webhook endpoint on loopback: verifies each delivery with `verify_webhook` and the app secret,
    answers 200 to a verified one and 401 to any other (so the platform would retry), and records them all."""

    secret: str
    received: list[Webhook] = field(default_factory=list)
    url: str = ""
    _runner: web.AppRunner | None = None
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def start(self, host: str = "127.0.0.1") -> str:
        app = web.Application()
        app.router.add_post("/webhooks", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://{host}:{port}/webhooks"
        return self.url

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        try:
            verified = verify_webhook(request.headers, body, [self.secret])
        except (KeyError, ValueError):  # a header missing or not a number: not ours
            verified = False
        try:
            event = json.loads(body) if verified else {}
        except ValueError:
            event, verified = {}, False
        self.received.append(
            Webhook(str(event.get("id", "")), str(event.get("type", "")), dict(event.get("data") or {}), verified)
        )
        self._changed.set()
        return web.Response(status=200 if verified else 401, text="ok" if verified else "bad signature")

    def events(self, type_: str) -> dict[str, Webhook]:
        """Verified deliveries of one event type by the id of their object (order, refund or payout number)."""
        key = {"pay": "order_no", "refund": "refund_no", "payout": "payout_no"}[type_.split(".")[0]]
        return {str(w.data.get(key)): w for w in self.received if w.verified and w.type == type_}

    @property
    def rejected(self) -> int:
        return sum(1 for w in self.received if not w.verified)

    async def wait_until(self, predicate: Callable[[], bool], timeout_s: float) -> bool:
        """Waits for deliveries until `predicate` holds (True) or `timeout_s` passes (False)."""
        try:
            async with asyncio.timeout(timeout_s):
                while not predicate():
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            return predicate()
        return True
