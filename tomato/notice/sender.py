"""POSTing one signed webhook (API.md §2) and describing what happened, never raising for the merchant's faults.

* success = a 2xx within 5 s in total (resolve, connect, send, status line); redirects are not followed;
* connections go through the SSRF guard's pinned backend (`core.netguard`): the resolved address is checked and
  is the one connected to;
* only the first KiB of the response body is read (a merchant answering 1 GB costs nothing);
* several small httpx pools: httpx's CPU cost per request grows with a pool's size (baselines.md, encode/httpx#3215:
  every request scans every pooled connection, and every request waiting for a connection), so many clients with
  few connections each; in-flight requests are capped at the pools' total size and each goes to the least busy
  client, so no request ever queues inside httpcore;
* refuses to run inside a unit of work (no HTTP inside a DB transaction).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import httpx

from tomato.core.clock import utcnow
from tomato.core.crypto import random_token
from tomato.core.db import forbid_http_in_transaction
from tomato.core.netguard import AddressNotAllowed, Allowed, PinnedTransport

log = logging.getLogger(__name__)

USER_AGENT = "TomatoPay-Webhooks/1"


@dataclass(frozen=True)
class Outcome:
    started_at: datetime
    latency_ms: int
    http_status: int | None
    response_body: str | None
    error_class: str | None
    error_message: str | None

    @property
    def succeeded(self) -> bool:
        return self.http_status is not None and 200 <= self.http_status < 300 and self.error_class is None


def webhook_headers(event_id: str, timestamp: str, nonce: str, signature: str) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "Tomato-Event-Id": event_id,
        "Tomato-Timestamp": timestamp,
        "Tomato-Nonce": nonce,
        "Tomato-Signature": signature,
    }


def new_nonce() -> str:
    """24 characters of [A-Za-z0-9] (API.md: 16–64 alphanumerics)."""
    return random_token(24).replace("-", "a").replace("_", "b")[:24]


@functools.lru_cache(maxsize=4096)
def _parsed(url: str) -> httpx.URL:
    """Merchants have few URLs and httpx parses one in ~60 µs: parse each once (httpx.URL is immutable)."""
    return httpx.URL(url)


class WebhookSender:
    def __init__(
        self,
        allowed: Allowed,
        *,
        timeout_s: float = 5.0,
        clients: int = 8,
        connections_per_client: int = 8,
        body_limit: int = 1024,
        transport_factory: Callable[[], httpx.AsyncBaseTransport] | None = None,
    ) -> None:
        self._timeout_s = timeout_s
        self._body_limit = body_limit
        ssl_context = httpx.create_ssl_context(trust_env=False)  # loading the CA bundle once, not per client
        self._pools: list[httpx.AsyncBaseTransport] = [
            transport_factory()
            if transport_factory is not None
            else PinnedTransport(allowed, max_connections=connections_per_client, ssl_context=ssl_context)
            for _ in range(max(1, clients))
        ]
        self._load = [0] * len(self._pools)
        self._slots = asyncio.Semaphore(len(self._pools) * max(1, connections_per_client))
        self._timeouts = httpx.Timeout(timeout_s).as_dict()

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> Outcome:
        """A 2xx status line within the timeout is a success; the body is read only as far as time allows."""
        forbid_http_in_transaction(f"webhook POST {url[:80]}")
        status: int | None = None
        head = b""
        error: BaseException | None = None
        async with self._slots:
            index = min(range(len(self._load)), key=self._load.__getitem__)
            self._load[index] += 1
            started_at, t0 = utcnow(), time.perf_counter()  # waiting for a slot is not the merchant's latency
            try:
                async with asyncio.timeout(self._timeout_s):
                    # straight to the transport: no client-side redirects (never followed), auth, cookies or
                    # URL merging to pay for; no Accept-Encoding is sent, so the body comes uncompressed
                    request = httpx.Request("POST", _parsed(url), content=body, headers=headers,
                                            extensions={"timeout": self._timeouts})  # fmt: skip
                    response = await self._pools[index].handle_async_request(request)
                    try:
                        status = response.status_code
                        async for chunk in response.stream:  # type: ignore[union-attr]
                            head += chunk
                            if len(head) >= self._body_limit:
                                break
                    finally:
                        await response.aclose()
            except (TimeoutError, httpx.HTTPError, httpx.InvalidURL, AddressNotAllowed, OSError, ValueError) as exc:
                error = exc  # after the status line arrived, a failure reading the body changes nothing
            except Exception as exc:  # still the attempt's outcome: logged loudly, never raised into the worker
                log.exception("unexpected error posting a webhook to %s", url[:80])
                error = exc
            finally:
                self._load[index] -= 1
        latency_ms = int((time.perf_counter() - t0) * 1000)
        if status is None:
            assert error is not None
            name = "Timeout" if isinstance(error, TimeoutError | httpx.TimeoutException) else type(error).__name__
            return Outcome(started_at, latency_ms, None, None, name, str(error)[:256] or name)
        text = head[: self._body_limit].decode("utf-8", errors="replace")
        if not 200 <= status < 300:
            return Outcome(started_at, latency_ms, status, text, "HTTPStatus", f"HTTP {status}")
        return Outcome(started_at, latency_ms, status, text, None, None)

    async def aclose(self) -> None:
        await asyncio.gather(*(p.aclose() for p in self._pools), return_exceptions=True)
