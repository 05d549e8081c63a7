"""The HTTP client every adapter gets: httpx's API, explicit timeouts, a guard against calls inside a DB transaction,
and aiohttp carrying the bytes.

Adapters see an `httpx.AsyncClient` (tests swap its transport for the in-process simulator or use respx). In
production its transport is `AiohttpTransport`: httpcore costs ~10× aiohttp's client CPU per request here
(measured in bench/), and a channel call is on every create-order. The transport keeps httpx's exception tree, so
`transport_result` tells "never left us" (connect failures) from "may have been done" (everything later).

The adapters' hot calls build their bytes and hand them to `send_bytes`: on the production client (`ChannelClient`
over `AiohttpTransport`) they go straight to aiohttp with the same headers, timeouts, transaction guard and error
tree, skipping httpx's request/response models (about 8 % of a create-order's gateway CPU); on any other transport
(the simulator in tests, respx) they go through httpx as before.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
import httpx
from yarl import URL

from tomato.channel.protocol import ChannelResult, ErrorClass
from tomato.core.db import forbid_http_in_transaction, in_transaction

MAX_CONNECTIONS = 32
# Below the 5 s idle timeout common servers (uvicorn, nginx's default 75 s is longer) close keep-alive
# connections at, so a request is not sent on a connection the server is closing.
KEEPALIVE_S = 4.0


@dataclass(frozen=True)
class RawResponse:
    status_code: int
    content: bytes


class AiohttpTransport(httpx.AsyncBaseTransport):
    """An httpx transport on one aiohttp session (created in the running loop on first use)."""

    def __init__(self, max_connections: int = MAX_CONNECTIONS) -> None:
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=self._max_connections, keepalive_timeout=KEEPALIVE_S)
            # httpx sets the headers it wants (Accept-Encoding included) and decodes the body itself
            self._session = aiohttp.ClientSession(
                connector=connector, auto_decompress=False, skip_auto_headers=("User-Agent", "Accept-Encoding")
            )
        return self._session

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        timeouts: dict[str, Any] = request.extensions.get("timeout", {})
        connect, read = timeouts.get("connect"), timeouts.get("read")
        pool = timeouts.get("pool")
        timeout = aiohttp.ClientTimeout(total=None, connect=_sum(pool, connect), sock_connect=connect, sock_read=read)
        body = await request.aread()
        try:
            async with self._client().request(
                request.method,
                URL(str(request.url), encoded=True),
                data=body or None,
                headers=request.headers.multi_items(),
                allow_redirects=False,
                timeout=timeout,
            ) as response:
                content = await response.read()
                return httpx.Response(
                    response.status,
                    headers=response.raw_headers,
                    stream=httpx.ByteStream(content),
                    request=request,
                    extensions={"http_version": b"HTTP/1.1"},
                )
        except (aiohttp.ClientError, OSError) as exc:  # TimeoutError is an OSError
            raise _as_httpx(exc, request) from exc

    async def send_raw(
        self,
        method: str,
        url: str,
        content: bytes | None,
        headers: list[tuple[str, str]],
        limits: aiohttp.ClientTimeout,
    ) -> RawResponse:
        """The same exchange without httpx's models: the bytes in, the status and the (decoded) body out."""
        try:
            async with self._client().request(
                method,
                URL(url, encoded=True),
                data=content or None,
                headers=headers,
                allow_redirects=False,
                timeout=limits,
            ) as response:
                body = await response.read()
                if response.headers.get("Content-Encoding", "identity") != "identity":  # decoded as httpx decodes
                    decoded = httpx.Response(
                        response.status, headers=response.raw_headers, stream=httpx.ByteStream(body)
                    )
                    body = await decoded.aread()
                return RawResponse(response.status, body)
        except (aiohttp.ClientError, OSError) as exc:
            raise _as_httpx(exc, None) from exc

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def _as_httpx(exc: BaseException, request: httpx.Request | None) -> httpx.TransportError:
    """aiohttp's failure as the httpx error it stands for: connect failures apart from everything later."""
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return httpx.ConnectTimeout(str(exc) or "connect timed out", request=request)
    if isinstance(exc, aiohttp.ClientConnectorError):
        return httpx.ConnectError(str(exc), request=request)
    if isinstance(exc, TimeoutError | aiohttp.ServerTimeoutError):
        return httpx.ReadTimeout(str(exc) or "read timed out", request=request)
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return httpx.RemoteProtocolError(str(exc) or "server disconnected", request=request)
    if isinstance(exc, aiohttp.ClientPayloadError | aiohttp.ClientResponseError):
        return httpx.RemoteProtocolError(str(exc), request=request)
    return httpx.ReadError(str(exc) or type(exc).__name__, request=request)


def _sum(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a + b


async def _guard(request: httpx.Request) -> None:
    forbid_http_in_transaction(f"channel {request.method} {request.url.host}")


class ChannelClient(httpx.AsyncClient):
    """The adapters' client: httpx's API, plus `fast` — the aiohttp transport when it is the one carrying the bytes
    (production), for `send_bytes`."""

    def __init__(self, timeout_s: float, transport: httpx.AsyncBaseTransport | None = None) -> None:
        carrier = transport if transport is not None else AiohttpTransport()
        timeout = httpx.Timeout(timeout_s, connect=min(timeout_s, 3.0))
        super().__init__(timeout=timeout, event_hooks={"request": [_guard]}, transport=carrier,
                         follow_redirects=False, trust_env=False)  # fmt: skip
        self.fast = carrier if isinstance(carrier, AiohttpTransport) else None
        # what httpx would send with every request (Accept, Accept-Encoding, Connection, User-Agent)
        self.default_headers = list(self.headers.multi_items())
        self.fast_timeout = aiohttp.ClientTimeout(
            total=None,
            connect=_sum(timeout.pool, timeout.connect),
            sock_connect=timeout.connect,
            sock_read=timeout.read,
        )


def guarded_client(timeout_s: float, transport: httpx.AsyncBaseTransport | None = None) -> httpx.AsyncClient:
    """`transport` None: the production aiohttp transport."""
    return ChannelClient(timeout_s, transport)


async def send_bytes(
    client: httpx.AsyncClient, method: str, url: str, content: bytes | None, headers: Mapping[str, str]
) -> RawResponse:
    """One request whose URL (already encoded) and body the adapter built; raises httpx's transport errors.

    Straight to aiohttp on the production client, through httpx on any other (the simulator's ASGI transport,
    respx): the same bytes reach the wire either way."""
    fast = client.fast if isinstance(client, ChannelClient) else None
    if fast is None:
        response = await client.request(method, url, content=content, headers=dict(headers))
        return RawResponse(response.status_code, response.content)
    assert isinstance(client, ChannelClient)
    if in_transaction():
        forbid_http_in_transaction(f"channel {method} {URL(url, encoded=True).host}")
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
