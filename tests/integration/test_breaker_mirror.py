"""Breaker state is shared through the cache (Redis in production): failure counts, the open state and the single
half-open probe are one per account across processes. Each test runs on the in-process store and on Redis, with
two registries standing for two processes; the last test uses two real processes."""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.conftest import REDIS_URL
from tomato.channel.breaker_state import Op
from tomato.channel.breakers import STATE_TTL_S, BreakerOpen, BreakerRegistry, store_for
from tomato.channel.protocol import ChannelResult, ErrorClass
from tomato.core.cache import Cache, RedisCache
from tomato.core.clock import FrozenClock

ACCOUNT = "CA1"
RESET = timedelta(seconds=30)


async def _timeout() -> ChannelResult:
    return ChannelResult.unknown(ErrorClass.TIMEOUT, "slow")


def _unwell(result: ChannelResult) -> bool:
    return result.error is ErrorClass.TIMEOUT


async def _ok() -> ChannelResult:
    return ChannelResult.unknown(ErrorClass.REJECTED, "a definite business answer")


def _two(cache: Cache, clock: FrozenClock, fail_max: int = 3) -> tuple[BreakerRegistry, BreakerRegistry]:
    return tuple(  # type: ignore[return-value]
        BreakerRegistry(cache, fail_max=fail_max, reset_timeout_s=RESET.total_seconds(), clock=clock) for _ in range(2)
    )


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(datetime(2026, 1, 1, tzinfo=UTC))


async def _fail(reg: BreakerRegistry, n: int = 1) -> None:
    for _ in range(n):
        assert (await reg.call(ACCOUNT, _timeout, _unwell)).error is ErrorClass.TIMEOUT


class Stalled:
    """A channel call that hangs until released, so a test can cancel it in flight."""

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.release = asyncio.Event()
        self.calls = 0

    async def __call__(self) -> ChannelResult:
        self.calls += 1
        self.started.set()
        await self.release.wait()
        return await _timeout()

    async def cancel_in_flight(self, reg: BreakerRegistry) -> None:
        self.started.clear()
        task = asyncio.create_task(reg.call(ACCOUNT, self, _unwell))
        await asyncio.wait_for(self.started.wait(), 5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await reg.drain()


async def _refused(reg: BreakerRegistry) -> bool:
    calls = 0

    async def counted() -> ChannelResult:
        nonlocal calls
        calls += 1
        return await _ok()

    try:
        await reg.call(ACCOUNT, counted, _unwell)
    except BreakerOpen:
        assert calls == 0  # nothing was sent
        return True
    return False


async def test_open_in_one_process_is_seen_by_another(cache: Cache) -> None:
    a = BreakerRegistry(cache, fail_max=2, reset_timeout_s=60)
    b = BreakerRegistry(cache, fail_max=2, reset_timeout_s=60)
    await _fail(a, 2)
    assert a.view(ACCOUNT).state == "open"
    await b.refresh(ACCOUNT)
    assert b.view(ACCOUNT).state == "open" and not b.is_available(ACCOUNT)
    assert await _refused(b)  # process b never reached the account another process found broken


async def test_failures_split_across_processes_open_it_for_all(cache: Cache, clock: FrozenClock) -> None:
    a, b = _two(cache, clock, fail_max=3)
    await _fail(a, 2)
    await _fail(b)
    assert b.view(ACCOUNT).state == "open" and b.view(ACCOUNT).fail_counter == 3
    clock.advance(timedelta(seconds=STATE_TTL_S))  # a's remembered state ages out
    assert await a.available([ACCOUNT]) == set() and await b.available([ACCOUNT]) == set()
    assert await _refused(a) and await _refused(b)


async def test_a_success_anywhere_resets_the_shared_count(cache: Cache, clock: FrozenClock) -> None:
    a, b = _two(cache, clock, fail_max=3)
    await _fail(a, 2)
    await b.call(ACCOUNT, _ok, _unwell)  # a business answer: the channel is well
    await _fail(a, 2)
    assert a.view(ACCOUNT).state == "closed" and a.view(ACCOUNT).fail_counter == 2


async def test_cancelled_calls_keep_the_failure_count(cache: Cache, clock: FrozenClock) -> None:
    a, b = _two(cache, clock, fail_max=3)
    stalled = Stalled()
    await _fail(a, 2)
    await stalled.cancel_in_flight(a)
    await stalled.cancel_in_flight(b)
    assert stalled.calls == 2
    await b.refresh(ACCOUNT)
    assert b.view(ACCOUNT).fail_counter == 2
    await _fail(b)
    assert b.view(ACCOUNT).state == "open"


async def test_one_probe_across_processes_and_a_cancelled_probe_frees_its_slot(
    cache: Cache, clock: FrozenClock
) -> None:
    a, b = _two(cache, clock, fail_max=1)
    await _fail(a)
    assert await _refused(b)
    clock.advance(RESET)
    stalled = Stalled()
    probe = asyncio.create_task(a.call(ACCOUNT, stalled, _unwell))
    await asyncio.wait_for(stalled.started.wait(), 5)
    assert await _refused(b) and await _refused(a)  # the one probe is in flight: nobody else goes
    probe.cancel()
    with pytest.raises(asyncio.CancelledError):
        await probe
    await a.drain()
    await b.refresh(ACCOUNT)
    assert b.view(ACCOUNT).state == "half-open"  # the cancelled probe closed nothing
    assert (await b.call(ACCOUNT, _timeout, _unwell)).error is ErrorClass.TIMEOUT  # its slot was free: b probes
    assert b.view(ACCOUNT).state == "open"
    assert await _refused(a)


async def test_a_successful_probe_closes_it_for_everyone(cache: Cache, clock: FrozenClock) -> None:
    a, b = _two(cache, clock, fail_max=2)
    await _fail(b, 2)
    clock.advance(RESET)
    stalled = Stalled()
    probe = asyncio.create_task(b.call(ACCOUNT, stalled, lambda r: False))  # this probe's answer is healthy
    await asyncio.wait_for(stalled.started.wait(), 5)
    assert await _refused(a)
    stalled.release.set()
    await probe
    assert b.view(ACCOUNT).state == "closed" and b.view(ACCOUNT).fail_counter == 0
    clock.advance(timedelta(seconds=STATE_TTL_S))
    assert await a.available([ACCOUNT]) == {ACCOUNT} and a.view(ACCOUNT).state == "closed"


async def test_a_probe_slot_left_by_a_dead_process_expires(cache: Cache, clock: FrozenClock) -> None:
    a, b = _two(cache, clock, fail_max=1)
    await _fail(a)
    clock.advance(RESET)
    store = store_for(cache)  # a third process takes the probe slot, then dies without reporting
    await store.apply(ACCOUNT, Op.ACQUIRE, now=clock.timestamp(), fail_max=1, reset_s=RESET.total_seconds(), token="x")
    assert await _refused(a) and await _refused(b)
    clock.advance(RESET)
    assert not await _refused(b)  # one reset timeout later the slot is free again


async def test_routing_follows_another_process_within_the_state_ttl(cache: Cache, clock: FrozenClock) -> None:
    a, b = _two(cache, clock, fail_max=1)
    assert await b.available([ACCOUNT, "CA2"]) == {ACCOUNT, "CA2"}
    await _fail(a)
    clock.advance(timedelta(seconds=STATE_TTL_S))  # b's remembered "closed" is now too old to route on
    assert await b.available([ACCOUNT, "CA2"]) == {"CA2"}
    assert b.view(ACCOUNT).state == "open" and b.view(ACCOUNT).opened_at == clock.now() - timedelta(seconds=0.5)
    assert await _refused(b)


async def test_a_call_inside_the_state_ttl_changes_nothing_and_refreshes_the_view(
    cache: Cache, clock: FrozenClock
) -> None:
    a, b = _two(cache, clock, fail_max=1)
    c = _two(cache, clock, fail_max=1)[0]
    assert await b.available([ACCOUNT]) == await c.available([ACCOUNT]) == {ACCOUNT}
    await _fail(a)
    opened_at = a.view(ACCOUNT).opened_at
    clock.advance(timedelta(seconds=0.1))
    # b and c remember "closed" from less than STATE_TTL_S ago: their calls skip the "may I go" round trip and are
    # sent; answers of calls made before they knew change nothing (no close, no second opening), and the reply
    # tells each of them the breaker is open
    assert not await _refused(b)
    await _fail(c)
    await b.drain()  # b's success was on an account it saw quiet: recorded at the next flush (≤ SUCCESS_FLUSH_S)
    assert b.view(ACCOUNT).state == c.view(ACCOUNT).state == "open"  # learnt from the replies, no read
    for reg in (a, b, c):
        await reg.refresh(ACCOUNT)
        assert reg.view(ACCOUNT).state == "open" and reg.view(ACCOUNT).opened_at == opened_at
    assert await b.available([ACCOUNT]) == await c.available([ACCOUNT]) == set()
    assert await _refused(b) and await _refused(c)


async def test_successes_on_a_quiet_account_reach_the_store_together_and_after_failures_at_once(
    cache: Cache, clock: FrozenClock
) -> None:
    reg = _two(cache, clock)[0]
    inner, applied = reg._store, []

    class Counting:
        async def apply(self, account_id: str, op: Op, **kw: Any) -> Any:
            applied.append(op)
            return await inner.apply(account_id, op, **kw)

        async def read(self, account_ids: list[str]) -> Any:
            return await inner.read(account_ids)

    reg._store = Counting()
    assert await reg.available([ACCOUNT]) == {ACCOUNT}  # seen closed, no failures: quiet
    for _ in range(5):
        await reg.call(ACCOUNT, _ok, _unwell)
    assert applied == []  # nothing sent yet: the successes wait for the flush
    async with asyncio.timeout(5):
        while not applied:  # the flush timer fires on its own
            await asyncio.sleep(0.01)
    await reg.drain()
    assert applied == [Op.SUCCESS]  # five successes, one store call
    await _fail(reg)
    assert applied == [Op.SUCCESS, Op.FAILURE] and reg.view(ACCOUNT).fail_counter == 1  # a failure: at once
    await reg.call(ACCOUNT, _ok, _unwell)
    assert applied[-1] is Op.SUCCESS and reg.view(ACCOUNT).fail_counter == 0  # a success after it: at once too


async def test_unreachable_redis_falls_back_to_the_process_own_state(clock: FrozenClock) -> None:
    cache = RedisCache.from_url("redis://127.0.0.1:1/0", "tomato-test-down:")
    reg = BreakerRegistry(cache, fail_max=2, reset_timeout_s=30, clock=clock)
    try:
        assert await reg.available([ACCOUNT]) == {ACCOUNT}
        await _fail(reg, 2)  # the calls still go (payments never wait on Redis) and still count
        assert reg.view(ACCOUNT).state == "open" and await _refused(reg)
    finally:
        await cache.close()


# --- two real processes on one Redis prefix ------------------------------------------------------------------------

PROCESS = """
import asyncio, json, sys
from datetime import UTC, datetime
from tomato.channel.breakers import BreakerOpen, BreakerRegistry
from tomato.core.cache import RedisCache

class SetClock:  # the parent sends the time with every command
    t = 0.0
    def now(self): return datetime.fromtimestamp(self.t, UTC)
    def timestamp(self): return self.t

def say(**kw): print(json.dumps(kw), flush=True)

async def main(url, prefix):
    cache = RedisCache.from_url(url, prefix)
    clock = SetClock()
    reg = BreakerRegistry(cache, fail_max=4, reset_timeout_s=30, clock=clock)
    reader = asyncio.StreamReader()
    loop = asyncio.get_running_loop()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    probe = {}

    async def failing():
        return False

    async def probing():
        say(event="probing")
        await probe["finish"].wait()
        return probe["ok"]

    async def run_probe():
        try:
            await reg.call("CA1", probing, lambda ok: not ok)
            say(event="done", state=reg.view("CA1").state)
        except BreakerOpen:
            say(event="refused")
        except asyncio.CancelledError:
            await reg.drain()
            say(event="cancelled", state=reg.view("CA1").state)

    while line := await reader.readline():
        cmd = json.loads(line)
        clock.t = cmd["now"]
        if cmd["op"] == "fail":
            for _ in range(cmd["n"]):
                await reg.call("CA1", failing, lambda ok: not ok)
            say(state=reg.view("CA1").state, failures=reg.view("CA1").fail_counter)
        elif cmd["op"] == "route":
            say(available="CA1" in await reg.available(["CA1"]), state=reg.view("CA1").state)
        elif cmd["op"] == "probe":
            probe.update(finish=asyncio.Event(), ok=False)
            probe["task"] = asyncio.create_task(run_probe())
        elif cmd["op"] == "finish":
            probe["ok"] = cmd["ok"]
            probe["finish"].set()
        elif cmd["op"] == "cancel":
            probe["task"].cancel()
    await cache.close()

asyncio.run(main(sys.argv[1], sys.argv[2]))
"""


class Proc:
    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    async def send(self, op: str, now: float, **kw: Any) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write((json.dumps({"op": op, "now": now, **kw}) + "\n").encode())
        await self.proc.stdin.drain()

    async def read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = await asyncio.wait_for(self.proc.stdout.readline(), 30)
        assert line, "the process exited"
        return json.loads(line)  # type: ignore[no-any-return]

    async def ask(self, op: str, now: float, **kw: Any) -> dict[str, Any]:
        await self.send(op, now, **kw)
        return await self.read()


async def test_two_processes_share_counts_open_state_and_the_single_probe(redis_cache: RedisCache) -> None:
    procs = [
        Proc(
            await asyncio.create_subprocess_exec(
                sys.executable, "-c", PROCESS, REDIS_URL, redis_cache.prefix,
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            )
        )
        for _ in range(2)
    ]  # fmt: skip
    a, b = procs
    t0 = 1_800_000_000.0
    try:
        # fail_max = 4 unwell answers in total, split 2 + 2: open in both, and both routings skip the account
        assert await a.ask("fail", t0, n=2) == {"state": "closed", "failures": 2}
        assert await b.ask("fail", t0, n=1) == {"state": "closed", "failures": 3}
        assert await b.ask("fail", t0, n=1) == {"state": "open", "failures": 4}
        for p in procs:
            assert await p.ask("route", t0 + 1) == {"available": False, "state": "open"}
        # after the reset timeout both ask at once: exactly one probe goes
        for p in procs:
            await p.send("probe", t0 + 31)
        events = [await p.read() for p in procs]
        assert sorted(e["event"] for e in events) == ["probing", "refused"]
        prober, other = (a, b) if events[0]["event"] == "probing" else (b, a)
        # the probe is cancelled: the breaker stays half-open and the slot is free for the other process
        assert await prober.ask("cancel", t0 + 31) == {"event": "cancelled", "state": "half-open"}
        await other.send("probe", t0 + 31)
        assert await other.read() == {"event": "probing"}
        assert await prober.ask("probe", t0 + 31) == {"event": "refused"}
        # that probe fails: open again in both
        await other.send("finish", t0 + 31, ok=False)
        assert await other.read() == {"event": "done", "state": "open"}
        for p in procs:
            assert await p.ask("route", t0 + 32) == {"available": False, "state": "open"}
        # the next probe succeeds: closed in both
        await prober.send("probe", t0 + 62)
        assert await prober.read() == {"event": "probing"}
        await prober.send("finish", t0 + 62, ok=True)
        assert await prober.read() == {"event": "done", "state": "closed"}
        for p in procs:
            assert await p.ask("route", t0 + 63) == {"available": True, "state": "closed"}
    finally:
        for p in procs:
            assert p.proc.stdin is not None
            p.proc.stdin.close()
        assert [await asyncio.wait_for(p.proc.wait(), 30) for p in procs] == [0, 0]
