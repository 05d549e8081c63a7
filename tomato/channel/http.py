"""The HTTP client every adapter gets: httpx's API, explicit timeouts, a guard against calls inside a DB transaction,
and aiohttp carrying the bytes.

Adapters see an `httpx.AsyncClient` (tests swap its transport for the in-process simulator or use respx). In
production its transport is `AiohttpTransport`: httpcore costs ~10× aiohttp's client CPU per request here
(measured in bench/), and a channel call is on every create-order. The transport keeps httpx's exception tree, so
`transport_result` tells "never left us" (connect failures) from "may have been done" (everything later).
"""

from __future__ import annotations

from typing import Any

import aiohttp
import httpx
from yarl import URL

from tomato.channel.protocol import ChannelResult, ErrorClass
from tomato.core.db import forbid_http_in_transaction

MAX_CONNECTIONS = 32
# Below the 5 s idle timeout common servers (uvicorn, nginx's default 75 s is longer) close keep-alive
# connections at, so a request is not sent on a connection the server is closing.
KEEPALIVE_S = 4.0


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
        timeout = aiohttp.ClientTimeout(
            total=None, connect=_sum(pool, connect), sock_connect=connect, sock_read=read
        )
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
        except aiohttp.ConnectionTimeoutError as exc:
            raise httpx.ConnectTimeout(str(exc) or "connect timed out", request=request) from exc
        except aiohttp.ClientConnectorError as exc:
            raise httpx.ConnectError(str(exc), request=request) from exc
        except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
            raise httpx.ReadTimeout(str(exc) or "read timed out", request=request) from exc
        except aiohttp.ServerDisconnectedError as exc:
            raise httpx.RemoteProtocolError(str(exc) or "server disconnected", request=request) from exc
        except (aiohttp.ClientPayloadError, aiohttp.ClientResponseError) as exc:
            raise httpx.RemoteProtocolError(str(exc), request=request) from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise httpx.ReadError(str(exc) or type(exc).__name__, request=request) from exc

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def _sum(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a + b


async def _guard(request: httpx.Request) -> None:
    forbid_http_in_transaction(f"channel {request.method} {request.url.host}")


def guarded_client(timeout_s: float, transport: httpx.AsyncBaseTransport | None = None) -> httpx.AsyncClient:
    """`transport` None: the production aiohttp transport."""
    return httpx.AsyncClient(
        timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 3.0)),
        event_hooks={"request": [_guard]},
        transport=transport if transport is not None else AiohttpTransport(),
        follow_redirects=False,
        trust_env=False,
    )


def transport_result(exc: httpx.TransportError) -> ChannelResult:
    """Connect failures never left us (another account may be tried); anything later may have been done."""
    if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout):
        return ChannelResult.unknown(ErrorClass.CONNECT, f"{type(exc).__name__}: {exc}")
    if isinstance(exc, httpx.TimeoutException):
        return ChannelResult.unknown(ErrorClass.TIMEOUT, f"{type(exc).__name__}: {exc}")
    return ChannelResult.unknown(ErrorClass.SERVER, f"{type(exc).__name__}: {exc}")
