"""A small HTTP/1.1 client for the channel calls: keep-alive connections per origin, request bytes in, status,
headers and body out, the answer parsed by httptools (the parser uvicorn uses).

A create-order makes one channel call; aiohttp's client machinery (sessions, tracing, cookie jar, multidicts, its
timer handles) cost about 6 % of the gateway's CPU per order there, this about a third of that (bench/create_order.py
--profile). It does only what the channels need: no redirects, no cookies, no proxies, no streaming — whole bodies
both ways, as every channel answer is a small JSON or form document (a bill file is a few MB at most).

Failures are httpx's exceptions, because `http.transport_result` tells "never sent" from "may have been done" by
them: waiting for a free connection too long is `PoolTimeout` and a connection that could not be opened is
`ConnectError`/`ConnectTimeout` (nothing left us); no complete answer in time is `ReadTimeout`, and a connection
closed or an answer that does not parse is `RemoteProtocolError` (the request may have been acted on).
"""

from __future__ import annotations

import asyncio
import ssl
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httptools
import httpx

MAX_CONNECTIONS = 32  # per origin
# Below the 5 s idle timeout common servers (uvicorn; nginx's default 75 s is longer) close keep-alive connections
# at, so a request is not sent on a connection the server is closing.
KEEPALIVE_S = 4.0


@dataclass(frozen=True)
class Timeouts:
    """Seconds (None: no limit): waiting for a free connection, opening one, and the whole answer after sending."""

    pool: float | None
    connect: float | None
    read: float | None


@dataclass(frozen=True)
class Answer:
    status_code: int
    headers: list[tuple[bytes, bytes]]
    content: bytes


class _Connection(asyncio.Protocol):
    """One keep-alive connection; at most one exchange at a time (`exchange`)."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        self._parser = httptools.HttpResponseParser(self)
        self._waiter: asyncio.Future[None] | None = None
        self._headers: list[tuple[bytes, bytes]] = []
        self._body: list[bytes] = []
        self._headers_done = False
        self._status = 0
        self._framed = False  # Content-Length or chunked: the answer ends on its own, not at the connection's close

    # --- asyncio.Protocol -------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not an asyncio.Transport subclass

    def data_received(self, data: bytes) -> None:
        if self._waiter is None:  # bytes nobody asked for: the connection is out of step, never reuse it
            self._abort()
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(httpx.RemoteProtocolError(f"malformed HTTP answer: {exc}"))
            self._abort()

    def eof_received(self) -> bool:
        self.closed = True
        if self._waiter is not None and self._headers_done and not self._framed:
            self.on_message_complete()  # an answer delimited by the connection's close
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        reason = f": {exc!r}" if exc else ""
        self._fail(httpx.RemoteProtocolError(f"server closed the connection before answering in full{reason}"))

    # --- httptools callbacks ------------------------------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name, value))
        lowered = name.lower()
        if lowered == b"content-length" or (lowered == b"transfer-encoding" and b"chunked" in value.lower()):
            self._framed = True

    def on_headers_complete(self) -> None:
        self._headers_done = True
        self._status = self._parser.get_status_code()

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        if not self._parser.should_keep_alive():  # read here: the parser resets for the next message after this
            self.closed = True
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    # --- use ----------------------------------------------------------------------------------------------

    def usable(self, now: float) -> bool:
        transport = self.transport
        return not self.closed and transport is not None and not transport.is_closing() and (
            now - self.idle_since < KEEPALIVE_S
        )

    async def exchange(self, request: bytes, read_timeout: float | None) -> Answer:
        """Writes the request and waits for the whole answer (ReadTimeout after `read_timeout` seconds)."""
        assert self.transport is not None
        self._waiter = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        try:
            async with asyncio.timeout(read_timeout):
                await self._waiter
        except TimeoutError:
            self._abort()
            raise httpx.ReadTimeout(f"no complete answer within {read_timeout} s") from None
        except BaseException:
            self._abort()  # cancelled mid-exchange: the connection's state is unknown
            raise
        answer = Answer(self._status, self._headers, b"".join(self._body))
        self._reset()
        return answer

    def _reset(self) -> None:
        self._waiter = None
        self._headers, self._body = [], []
        self._headers_done = self._framed = False

    def _fail(self, exc: Exception) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(exc)

    def _abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


@dataclass
class _Origin:
    key: tuple[str, str, int]
    slots: asyncio.Semaphore
    idle: list[_Connection] = field(default_factory=list)


class WireClient:
    """Keep-alive pools per (scheme, host, port), each at most `max_connections` connections, bound to the loop
    that first used them (a new loop starts new pools)."""

    def __init__(self, max_connections: int = MAX_CONNECTIONS, ssl_context: ssl.SSLContext | None = None) -> None:
        self._max = max_connections
        self._ssl = ssl_context
        self._origins: dict[tuple[str, str, int], _Origin] = {}
        self._loop: asyncio.AbstractEventLoop | None = None

    async def request(
        self, method: str, url: str, body: bytes | None, headers: list[tuple[str, str]], timeouts: Timeouts,
        *, add_framing: bool = True,
    ) -> Answer:  # fmt: skip
        """`url` is sent as it is (already encoded). `add_framing`: add Host and Content-Length to `headers` (off
        when the caller's headers carry them, as httpx's do)."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise httpx.UnsupportedProtocol(f"not an http(s) URL: {url[:100]!r}")
        secure = parts.scheme == "https"
        port = parts.port or (443 if secure else 80)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        lines = [f"{method} {target} HTTP/1.1"]
        if add_framing:
            lines.append(f"Host: {parts.netloc.rpartition('@')[2]}")
        for name, value in headers:
            if "\r" in name or "\n" in name or "\r" in value or "\n" in value:
                raise ValueError(f"header {name!r} holds a line break")
            lines.append(f"{name}: {value}")
        if add_framing and (body is not None or method in ("POST", "PUT", "PATCH")):
            lines.append(f"Content-Length: {len(body or b'')}")
        payload = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b"")
        origin = self._origin((parts.scheme, parts.hostname, port))
        try:
            if origin.slots.locked():  # wait for a free connection, at most `pool` seconds
                async with asyncio.timeout(timeouts.pool):
                    await origin.slots.acquire()
            else:  # one is free: taken at once, no timer
                await origin.slots.acquire()
        except TimeoutError:
            raise httpx.PoolTimeout(f"no free connection to {parts.hostname} within {timeouts.pool} s") from None
        connection: _Connection | None = None
        try:
            connection = self._idle(origin) or await self._connect(parts.hostname, port, secure, timeouts.connect)
            answer = await connection.exchange(payload, timeouts.read)
        finally:
            origin.slots.release()
            if connection is not None:
                self._put_back(origin, connection)
        return answer

    def _origin(self, key: tuple[str, str, int]) -> _Origin:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            self._origins, self._loop = {}, loop
        origin = self._origins.get(key)
        if origin is None:
            origin = self._origins[key] = _Origin(key, asyncio.Semaphore(self._max))
        return origin

    @staticmethod
    def _idle(origin: _Origin) -> _Connection | None:
        now = time.monotonic()
        while origin.idle:
            connection = origin.idle.pop()  # the most recently used: the least likely to be closing
            if connection.usable(now):
                return connection
            connection.close()
        return None

    def _put_back(self, origin: _Origin, connection: _Connection) -> None:
        if connection.closed or self._origins.get(origin.key) is not origin:  # closed, or the pools were closed
            connection.close()
            return
        connection.idle_since = time.monotonic()
        origin.idle.append(connection)

    async def _connect(self, host: str, port: int, secure: bool, limit_s: float | None) -> _Connection:
        loop = asyncio.get_running_loop()
        context: Any = None
        if secure:
            if self._ssl is None:
                self._ssl = ssl.create_default_context()
            context = self._ssl
        try:
            async with asyncio.timeout(limit_s):
                _, connection = await loop.create_connection(
                    _Connection, host, port, ssl=context, server_hostname=host if secure else None
                )
        except TimeoutError:
            raise httpx.ConnectTimeout(f"could not connect to {host}:{port} within {limit_s} s") from None
        except (OSError, ssl.SSLError) as exc:
            raise httpx.ConnectError(f"could not connect to {host}:{port}: {exc}") from exc
        return connection

    async def aclose(self) -> None:
        """Closes the idle connections; busy ones close when their exchange ends."""
        origins, self._origins = self._origins, {}
        for origin in origins.values():
            while origin.idle:
                origin.idle.pop().close()
