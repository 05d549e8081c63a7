"""core.resp: the hot path's own Redis script connection answers exactly as redis-py's Script does, and fails the
way the callers fail closed on (unreachable, dropped, silent server, error reply), connecting again afterwards."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest

from tests.conftest import REDIS_URL
from tests.e2e.conftest import free_port
from tomato.core.cache import RedisCache
from tomato.core.resp import ScriptError, ScriptRunner, runner_for

pytestmark = pytest.mark.services

ECHO = "return {KEYS[1], ARGV[1], tonumber(ARGV[2]) * 2, false, redis.call('SET', KEYS[1], ARGV[1])}"


def fresh(script: str) -> str:
    """A script Redis has never seen (its first call takes the NOSCRIPT → EVAL path)."""
    return f"-- {secrets.token_hex(8)}\n{script}"


async def test_answers_as_redis_py_script_does_and_loads_an_unknown_script(redis_cache: RedisCache) -> None:
    runner = runner_for(redis_cache.redis)
    assert runner is not None
    try:
        script = fresh(ECHO)
        key = redis_cache.prefix + "echo"
        sha = runner.register(script)
        ours = await runner.run(sha, [key], ["中 x", 1.5])  # first: NOSCRIPT, then EVAL
        theirs = await redis_cache.redis.register_script(script)(keys=[key], args=["中 x", 1.5])
        assert ours == theirs == [key, "中 x", 3, None, "OK"]
        assert await redis_cache.redis.get(key) == "中 x"  # in the client's own db
        answers = await asyncio.gather(*(runner.run(sha, [f"{key}:{i}"], [str(i), i]) for i in range(200)))
        assert [a[1:3] for a in answers] == [[str(i), 2 * i] for i in range(200)]  # pipelined, each its own answer
        with pytest.raises(ScriptError, match="boom"):
            await runner.run(runner.register(fresh("return redis.error_reply('boom')")), [], [])
        assert (await runner.run(sha, [key], ["again", 1]))[1] == "again"  # the connection is still in step
    finally:
        await runner.close()


async def test_an_unreachable_server_is_a_connection_error() -> None:
    runner = ScriptRunner("127.0.0.1", free_port(), timeout_s=2)
    with pytest.raises(ConnectionError):
        await runner.run(runner.register("return 1"), [], [])


Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@asynccontextmanager
async def fake_redis(handler: Handler) -> AsyncIterator[int]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()


async def test_a_silent_server_times_out_and_a_dropped_connection_fails_its_calls_then_both_reconnect() -> None:
    connections: list[str] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        mode = "silent" if not connections else "drop" if len(connections) == 1 else "answer"
        connections.append(mode)
        while chunk := await reader.read(65536):
            if mode == "drop":
                writer.close()
                return
            if mode == "answer":
                writer.write(b":7\r\n" * chunk.count(b"EVALSHA"))
                await writer.drain()

    async with fake_redis(handler) as port:
        runner = ScriptRunner("127.0.0.1", port, timeout_s=0.3)
        sha = runner.register("return 7")
        with pytest.raises(TimeoutError):
            await runner.run(sha, [], [])
        with pytest.raises(ConnectionError):
            await runner.run(sha, [], [])
        assert await runner.run(sha, [], []) == 7
        assert connections == ["silent", "drop", "answer"]
        await runner.close()


async def test_the_cache_and_the_breakers_use_it_for_a_plain_tcp_redis() -> None:
    cache = RedisCache.from_url(REDIS_URL, f"tomato-test:{secrets.token_hex(4)}:")
    try:
        assert cache.scripts is not None
    finally:
        await cache.close()


async def test_a_cancelled_call_leaves_the_calls_after_it_their_own_answers(redis_cache: RedisCache) -> None:
    runner = runner_for(redis_cache.redis)
    assert runner is not None
    try:
        slow = runner.register(fresh("local t = redis.call('TIME') local n = 0 while n < 200000 do n = n + 1 end "
                                     "return 'slow'"))  # fmt: skip
        quick = runner.register(fresh("return ARGV[1]"))
        assert await runner.run(slow, [], []) == "slow"  # loaded
        assert await runner.run(quick, [], ["warm"]) == "warm"
        cancelled = asyncio.create_task(runner.run(slow, [], []))
        after = asyncio.create_task(runner.run(quick, [], ["mine"]))
        async with asyncio.timeout(5):  # until both are written; the slow one's answer comes first
            while runner._proto is None or len(runner._proto.waiting) < 2:
                await asyncio.sleep(0)
        cancelled.cancel()
        assert await after == "mine"
        with pytest.raises(asyncio.CancelledError):
            await cancelled
        assert await runner.run(quick, [], ["still in step"]) == "still in step"
    finally:
        await runner.close()
