"""The hot path's Redis scripts over one pipelined connection of our own: EVALSHA and nothing else.

Every signed request makes one script call (`Cache.admit`) and every channel call one more (its breaker outcome).
Through redis-py's asyncio client each costs about 0.09 CPU-ms — its connection pool, command packing, RESP3
parser and timeout machinery — as much as the bare endpoint's whole request. Here a call is pre-packed bytes and
one future resolved by the protocol's parser: a few hundredths of that. The calls made in one loop turn (several
requests' admits under load) leave in one write at its end: on a shared 2-core box a loopback write, which wakes
the server, costs more CPU than the whole call otherwise does.

Same server, same scripts, same answers as redis-py's `Script` (EVALSHA, then EVAL once on NOSCRIPT; bulk strings
decoded as UTF-8 like `decode_responses=True`). Failures raise: `ConnectionError` when the server cannot be reached
or the connection drops (every call still waiting on it fails with it), `TimeoutError` after `timeout_s` (the
connection is dropped then: the server may not answer on it again), `ScriptError` for a Redis error reply. A
cancelled call keeps its place in the pipeline: its answer is read and dropped, the calls after it are unaffected.
Callers fail closed on any of them exactly as before. The next call connects again.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import hashlib
from collections.abc import Sequence
from typing import Any, cast

Reply = Any


class ScriptError(Exception):
    """Redis answered an error (`-ERR …`)."""


class _Incomplete(Exception):
    pass


def _parse(buf: bytearray, pos: int) -> tuple[Reply, int]:
    """One RESP2 reply from `pos`; raises _Incomplete when the buffer does not hold all of it yet."""
    end = buf.find(b"\r\n", pos)
    if end < 0:
        raise _Incomplete
    kind, line = buf[pos], bytes(buf[pos + 1 : end])
    pos = end + 2
    if kind == 0x2B:  # + simple string
        return line.decode(), pos
    if kind == 0x2D:  # - error
        return ScriptError(line.decode(errors="replace")), pos
    if kind == 0x3A:  # : integer
        return int(line), pos
    if kind == 0x24:  # $ bulk string
        size = int(line)
        if size < 0:
            return None, pos
        if len(buf) < pos + size + 2:
            raise _Incomplete
        return bytes(buf[pos : pos + size]).decode(), pos + size + 2
    if kind == 0x2A:  # * array
        count = int(line)
        if count < 0:
            return None, pos
        items = []
        for _ in range(count):
            item, pos = _parse(buf, pos)
            items.append(item)
        return items, pos
    raise ScriptError(f"unexpected reply type {chr(kind)!r}")


def _pack(*parts: str | bytes) -> bytes:
    out = [b"*%d\r\n" % len(parts)]
    for part in parts:
        data = part.encode() if isinstance(part, str) else part
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


class _Protocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.waiting: collections.deque[asyncio.Future[Reply]] = collections.deque()
        self.buf = bytearray()
        self.lost: Exception | None = None
        self.outgoing: list[bytes] = []  # calls of this loop turn, written together at its end

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not an asyncio.Transport subclass

    def data_received(self, data: bytes) -> None:
        self.buf += data
        pos = 0
        while pos < len(self.buf):
            try:
                reply, pos_after = _parse(self.buf, pos)
            except _Incomplete:
                break
            pos = pos_after
            if not self.waiting:  # an answer nobody asked for: the stream is out of step
                self._drop(ConnectionError("Redis answered a request that was not sent"))
                return
            future = self.waiting.popleft()
            if not future.done():
                future.set_result(reply)
        del self.buf[:pos]

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = ConnectionError(f"Redis connection lost: {exc!r}" if exc else "Redis closed the connection")
        while self.waiting:
            future = self.waiting.popleft()
            if not future.done():
                future.set_exception(self.lost)

    def _drop(self, exc: Exception) -> None:
        self.lost = exc
        if self.transport is not None:
            self.transport.abort()

    def send(self, payload: bytes) -> asyncio.Future[Reply]:
        if self.lost is not None or self.transport is None or self.transport.is_closing():
            raise self.lost or ConnectionError("Redis connection closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Reply] = loop.create_future()
        self.waiting.append(future)
        if not self.outgoing:
            loop.call_soon(self._write)
        self.outgoing.append(payload)
        return future

    def _write(self) -> None:
        data, self.outgoing = b"".join(self.outgoing), []
        if self.lost is None and self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)  # else connection_lost has failed (or will fail) every waiting call


class ScriptRunner:
    """Runs registered Lua scripts by SHA on one connection to `host:port` (db `db`, optional AUTH)."""

    def __init__(
        self, host: str, port: int, *, db: int = 0, username: str | None = None, password: str | None = None,
        timeout_s: float = 2.0,
    ) -> None:  # fmt: skip
        self._host, self._port, self._db = host, port, db
        self._username, self._password = username, password
        self._timeout = timeout_s
        self._proto: _Protocol | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._connecting: asyncio.Task[_Protocol] | None = None
        self._scripts: dict[str, bytes] = {}

    def register(self, script: str) -> str:
        sha = hashlib.sha1(script.encode()).hexdigest()  # Redis names scripts by their SHA-1
        self._scripts[sha] = script.encode()
        return sha

    async def run(self, sha: str, keys: Sequence[str], args: Sequence[str | int | float]) -> Reply:
        """EVALSHA `sha` (EVAL once if the server does not know it yet); the decoded reply."""
        tail = [str(len(keys)), *keys, *(repr(a) if isinstance(a, float) else str(a) for a in args)]
        reply = await self._call(_pack("EVALSHA", sha, *tail))
        if isinstance(reply, ScriptError) and str(reply).startswith("NOSCRIPT"):
            reply = await self._call(_pack("EVAL", self._scripts[sha], *tail))
        if isinstance(reply, ScriptError):
            raise reply
        return reply

    async def _call(self, payload: bytes) -> Reply:
        """A cancelled call leaves its place in the connection's queue, so its answer is read and dropped in turn;
        a timed-out one drops the connection (the server may never answer on it again)."""
        proto: _Protocol | None = None
        try:
            async with asyncio.timeout(self._timeout):
                proto = await self._connection()
                return await proto.send(payload)
        except TimeoutError:
            if proto is not None:
                self._forget(proto)
            raise

    async def _connection(self) -> _Protocol:
        loop = asyncio.get_running_loop()
        proto = self._proto
        if proto is not None and proto.lost is None and self._loop is loop:
            return proto
        if proto is not None:
            self._forget(proto)
        if self._connecting is None or self._loop is not loop:
            self._loop = loop
            self._connecting = loop.create_task(self._connect(loop))
        connecting = self._connecting
        try:
            return await asyncio.shield(connecting)
        finally:
            if connecting.done() and self._connecting is connecting:
                self._connecting = None

    async def _connect(self, loop: asyncio.AbstractEventLoop) -> _Protocol:
        async with asyncio.timeout(self._timeout):
            return await self._handshake(loop)

    async def _handshake(self, loop: asyncio.AbstractEventLoop) -> _Protocol:
        try:
            _, proto = await loop.create_connection(_Protocol, self._host, self._port)
        except OSError as exc:
            raise ConnectionError(f"Redis at {self._host}:{self._port} unreachable: {exc}") from exc
        setup = []
        if self._password:
            setup.append(_pack("AUTH", *([self._username] if self._username else []), self._password))
        if self._db:
            setup.append(_pack("SELECT", str(self._db)))
        for payload in setup:
            reply = await proto.send(payload)
            if isinstance(reply, ScriptError):
                self._forget(proto)
                raise reply
        self._proto = proto
        return proto

    def _forget(self, proto: _Protocol) -> None:
        if self._proto is proto:
            self._proto = None
        with contextlib.suppress(Exception):  # its loop may be gone (a test's loop): nothing left to close then
            proto._drop(ConnectionError("connection given up"))

    async def close(self) -> None:
        if self._proto is not None:
            self._forget(self._proto)


def runner_for(redis: Any) -> ScriptRunner | None:
    """A runner on the same server as a redis-py client, or None when it is not a plain TCP connection (TLS, Unix
    socket …): then redis-py keeps doing the calls."""
    pool = getattr(redis, "connection_pool", None)
    kwargs: dict[str, Any] = dict(getattr(pool, "connection_kwargs", {}) or {})
    connection_class = getattr(pool, "connection_class", None)
    if connection_class is None or connection_class.__name__ != "Connection" or "host" not in kwargs:
        return None
    timeout = kwargs.get("socket_timeout") or 2.0
    return ScriptRunner(
        str(kwargs["host"]), int(kwargs.get("port", 6379)), db=int(kwargs.get("db", 0) or 0),
        username=kwargs.get("username"), password=kwargs.get("password"), timeout_s=float(timeout),
    )  # fmt: skip
