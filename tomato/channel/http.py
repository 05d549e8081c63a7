"""The HTTP client every adapter gets: httpx's API, explicit timeouts, a guard against calls inside a DB transaction,
and a small HTTP/1.1 client (`wire.py`) carrying the bytes.

Adapters see an `httpx.AsyncClient` (tests swap its transport for the in-process simulator or use respx). In
production its transport is `WireTransport`: httpcore costs ~10× aiohttp's client CPU per request here, and aiohttp
about three times `wire.py`'s (measured in bench/), and a channel call is on every create-order. The transport raises
httpx's exception tree, so `transport_result` tells "never left us" (connect failures) from "may have been done"
(everything later).

The adapters' hot calls build their bytes and hand them to `send_bytes`: on the production client (`ChannelClient`
over `WireTransport`) they go straight to the wire with the same headers, timeouts, transaction guard and error
tree, skipping httpx's request/response models (about 8 % of a create-order's gateway CPU); on any other transport
(the simulator in tests, respx) they go through httpx as before.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from tomato.channel.protocol import ChannelResult, ErrorClass
from tomato.channel.wire import MAX_CONNECTIONS, Timeouts, WireClient
from tomato.core.db import forbid_http_in_transaction, in_transaction


@dataclass(frozen=True)
class RawResponse:
    status_code: int
    content: bytes


class WireTransport(httpx.AsyncBaseTransport):
    """An httpx transport on one `WireClient` (its pools bound to the loop that first uses them)."""

    def __init__(self, max_connections: int = MAX_CONNECTIONS) -> None:
        self._wire = WireClient(max_connections)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        timeouts: dict[str, Any] = request.extensions.get("timeout", {})
        limits = Timeouts(timeouts.get("pool"), timeouts.get("connect"), timeouts.get("read"))
        body = await request.aread()
        headers: list[tuple[str, str]] = []
        framed = bool(body)
        for k, v in request.headers.raw:  # httpx's own, Host included; the body's framing is set again below
            if k.lower() in (b"content-length", b"transfer-encoding"):
                framed = True
                continue
            headers.append((k.decode("latin-1"), v.decode("latin-1")))
        if framed:  # a streamed body httpx would have sent chunked is sent whole
            headers.append(("Content-Length", str(len(body))))
        answer = await self._wire.request(request.method, str(request.url), body or None, headers, limits,
                                          add_framing=False)  # fmt: skip
        return httpx.Response(answer.status_code, headers=answer.headers, stream=httpx.ByteStream(answer.content),
                              request=request, extensions={"http_version": b"HTTP/1.1"})  # fmt: skip

    async def send_raw(
        self, method: str, url: str, content: bytes | None, headers: list[tuple[str, str]], limits: Timeouts
    ) -> RawResponse:
        """The same exchange without httpx's models: the bytes in, the status and the (decoded) body out."""
        answer = await self._wire.request(method, url, content, headers, limits)
        body = answer.content
        encoding = next((v for k, v in answer.headers if k.lower() == b"content-encoding"), b"identity")
        if encoding.strip().lower() != b"identity":  # decoded as httpx decodes
            decoded = httpx.Response(answer.status_code, headers=answer.headers, stream=httpx.ByteStream(body))
            body = await decoded.aread()
        return RawResponse(answer.status_code, body)

    async def aclose(self) -> None:
        await self._wire.aclose()


async def _guard(request: httpx.Request) -> None:
    forbid_http_in_transaction(f"channel {request.method} {request.url.host}")


class ChannelClient(httpx.AsyncClient):
    """The adapters' client: httpx's API, plus `fast` — the wire transport when it is the one carrying the bytes
    (production), for `send_bytes`."""

    def __init__(self, timeout_s: float, transport: httpx.AsyncBaseTransport | None = None) -> None:
        carrier = transport if transport is not None else WireTransport()
        timeout = httpx.Timeout(timeout_s, connect=min(timeout_s, 3.0))
        super().__init__(timeout=timeout, event_hooks={"request": [_guard]}, transport=carrier,
                         follow_redirects=False, trust_env=False)  # fmt: skip
        self.fast = carrier if isinstance(carrier, WireTransport) else None
        # what httpx would send with every request (Accept, Accept-Encoding, Connection, User-Agent)
        self.default_headers = list(self.headers.multi_items())
        self.fast_timeout = Timeouts(timeout.pool, timeout.connect, timeout.read)


def guarded_client(timeout_s: float, transport: httpx.AsyncBaseTransport | None = None) -> httpx.AsyncClient:
    """`transport` None: the production wire transport."""
    return ChannelClient(timeout_s, transport)


async def send_bytes(
    client: httpx.AsyncClient, method: str, url: str, content: bytes | None, headers: Mapping[str, str]
) -> RawResponse:
    """One request whose URL (already encoded) and body the adapter built; raises httpx's transport errors.

    Straight to the wire on the production client, through httpx on any other (the simulator's ASGI transport,
    respx): the same bytes reach the wire either way."""
    fast = client.fast if isinstance(client, ChannelClient) else None
    if fast is None:
        response = await client.request(method, url, content=content, headers=dict(headers))
        return RawResponse(response.status_code, response.content)
    assert isinstance(client, ChannelClient)
    if in_transaction():
        forbid_http_in_transaction(f"channel {method} {urlsplit(url).hostname}")
    merged = {k.lower(): (k, v) for k, v in client.default_headers}
    for k, v in headers.items():
        merged[k.lower()] = (k, v)
    return await fast.send_raw(method, url, content, list(merged.values()), client.fast_timeout)


def transport_result(exc: httpx.TransportError) -> ChannelResult:
    """Connect failures never left us (another account may be tried); anything later may have been done."""
    if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout):
        return ChannelResult.unknown(ErrorClass.CONNECT, f"{type(exc).__name__}: {exc}")
    if isinstance(exc, httpx.TimeoutException):
        return ChannelResult.unknown(ErrorClass.TIMEOUT, f"{type(exc).__name__}: {exc}")
    return ChannelResult.unknown(ErrorClass.SERVER, f"{type(exc).__name__}: {exc}")
