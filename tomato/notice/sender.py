"""POSTing one signed webhook (docs/webhooks.md) and describing what happened, never raising for the merchant's faults.

* success = a 2xx within 5 s in total (resolve, connect, send, status line); redirects are not followed;
* SSRF (`core.netguard`): a literal address in the URL is checked before anything is sent (`check_host`), a name
  is resolved and checked by the connector's `CheckedResolver`, and the connection goes to the checked address;
* only the first KiB of the response body is read (a merchant answering 1 GB costs nothing); no Accept-Encoding
  is sent and nothing is decompressed;
* one aiohttp session over one keep-alive connection pool: aiohttp costs ~0.06 client CPU-ms per request where
  httpx/httpcore cost 0.6–1.5 (measured in bench/). In-flight requests are capped at the pool's size, so no request
  waits for a connection inside aiohttp and an attempt's latency is the merchant's alone;
* refuses to run inside a unit of work (no HTTP inside a DB transaction).

An attempt that got no status line is recorded with one of these error classes: `Timeout` (5 s passed),
`AddressNotAllowed` (the SSRF guard refused the address), `ConnectError` (the name did not resolve, or no TCP or
TLS connection could be made), `ProtocolError` (the peer closed the connection or answered something that is
not HTTP/1.x), `NetworkError` (the connection failed while sending or waiting), `InvalidURL`; anything else is
logged and recorded under its exception's class name. A status line outside 2xx is `HTTPStatus`.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from dataclasses import dataclass
from datetime import datetime

import aiohttp
from yarl import URL

from tomato.core.clock import utcnow
from tomato.core.crypto import random_token
from tomato.core.db import forbid_http_in_transaction
from tomato.core.netguard import AddressNotAllowed, Allowed, CheckedResolver, check_host

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
    """24 characters of [A-Za-z0-9] (the contract: 16–64 alphanumerics)."""
    return random_token(24).replace("-", "a").replace("_", "b")[:24]


def error_class(exc: BaseException) -> str:
    """The attempt log's name for a failure before a status line arrived (see the module docstring)."""
    if isinstance(exc, TimeoutError):  # aiohttp's own timeouts subclass it too
        return "Timeout"
    if isinstance(exc, AddressNotAllowed):
        return "AddressNotAllowed"
    if isinstance(exc, aiohttp.InvalidURL | ValueError):
        return "InvalidURL"
    if isinstance(exc, aiohttp.ClientConnectorError):  # DNS, TCP and TLS failures while connecting
        return "ConnectError"
    if isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientPayloadError | aiohttp.ClientResponseError):
        return "ProtocolError"
    if isinstance(exc, aiohttp.ClientError | OSError):
        return "NetworkError"
    return type(exc).__name__


class WebhookSender:
    def __init__(
        self,
        allowed: Allowed,
        *,
        timeout_s: float = 5.0,
        connections: int = 64,
        body_limit: int = 1024,
        # idle connections close before common server idle timeouts (Node's 5 s) do: a POST is never retried, so
        # reusing a connection the merchant is just closing would fail the attempt
        keepalive_s: float = 4.0,
    ) -> None:
        self._allowed = allowed
        self._timeout_s = timeout_s
        self._body_limit = body_limit
        self._connections = max(1, connections)
        self._keepalive_s = keepalive_s
        self._slots = asyncio.Semaphore(self._connections)
        self._session: aiohttp.ClientSession | None = None
        # merchants have few URLs: parse and check each once per sender (the allow-list never changes)
        self._target = functools.lru_cache(maxsize=4096)(self._parse)

    def _session_now(self) -> aiohttp.ClientSession:
        """Built on first use, inside the running loop (aiohttp binds a session to it)."""
        if self._session is None:
            connector = aiohttp.TCPConnector(
                limit=self._connections, limit_per_host=0, keepalive_timeout=self._keepalive_s,
                resolver=CheckedResolver(self._allowed), ttl_dns_cache=10,
            )  # fmt: skip
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=aiohttp.ClientTimeout(total=None),  # ours wraps the whole attempt, body read included
                auto_decompress=False,
                skip_auto_headers=("Accept-Encoding",),
                trust_env=False,  # never a proxy from the environment: it would do its own resolving
                raise_for_status=False,
            )
        return self._session

    def _parse(self, url: str) -> URL:
        parsed = URL(url)
        if parsed.scheme not in ("http", "https") or not parsed.raw_host:
            raise aiohttp.InvalidURL(url)
        _ = parsed.port  # a malformed port raises ValueError
        check_host(parsed.raw_host, self._allowed)  # aiohttp connects to address literals without resolving
        return parsed

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> Outcome:
        """A 2xx status line within the timeout is a success; the body is read only as far as time allows."""
        forbid_http_in_transaction(f"webhook POST {url[:80]}")
        status: int | None = None
        head = b""
        error: BaseException | None = None
        async with self._slots:
            started_at, t0 = utcnow(), time.perf_counter()  # waiting for a slot is not the merchant's latency
            try:
                async with asyncio.timeout(self._timeout_s):
                    target = self._target(url)
                    response = await self._session_now().post(target, data=body, headers=headers, allow_redirects=False)
                    try:
                        status = response.status
                        while len(head) < self._body_limit:
                            chunk = await response.content.read(self._body_limit - len(head))
                            if not chunk:
                                break
                            head += chunk
                    finally:
                        if response.content.at_eof():
                            response.release()  # the whole body was read: the connection is kept alive
                        else:
                            response.close()  # the rest is never read: drop the connection
            except (TimeoutError, aiohttp.ClientError, AddressNotAllowed, OSError, ValueError) as exc:
                error = exc  # after the status line arrived, a failure reading the body changes nothing
            except Exception as exc:  # still the attempt's outcome: logged loudly, never raised into the worker
                log.exception("unexpected error posting a webhook to %s", url[:80])
                error = exc
        latency_ms = int((time.perf_counter() - t0) * 1000)
        if status is None:
            assert error is not None
            name = error_class(error)
            return Outcome(started_at, latency_ms, None, None, name, str(error)[:256] or name)
        text = head[: self._body_limit].decode("utf-8", errors="replace")
        if not 200 <= status < 300:
            return Outcome(started_at, latency_ms, status, text, "HTTPStatus", f"HTTP {status}")
        return Outcome(started_at, latency_ms, status, text, None, None)

    async def aclose(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()
