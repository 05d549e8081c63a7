"""core.loadonce: concurrent misses share one load, invalidation is immediate, failures are not cached."""

from __future__ import annotations

import asyncio

import pytest

from tomato.core.loadonce import LoadOnce


class Source:
    """A load that waits for `release` and counts how often it ran."""

    def __init__(self) -> None:
        self.calls = 0
        self.release = asyncio.Event()
        self.value = "v1"
        self.fail: Exception | None = None
        self.started: asyncio.Queue[int] = asyncio.Queue()  # one item per load that began

    async def load(self) -> str:
        self.calls += 1
        self.started.put_nowait(self.calls)
        value = self.value
        await self.release.wait()
        if self.fail is not None:
            raise self.fail
        return value


async def test_concurrent_misses_share_one_load_and_then_hit_the_cache() -> None:
    cache: LoadOnce[str, str] = LoadOnce(60)
    src = Source()
    waiters = [asyncio.create_task(cache.get("k", src.load)) for _ in range(20)]
    await asyncio.wait_for(src.started.get(), 5)
    src.release.set()
    assert await asyncio.gather(*waiters) == ["v1"] * 20
    assert src.calls == 1
    assert await cache.get("k", src.load) == "v1" and src.calls == 1
    assert await cache.get("other", src.load) == "v1" and src.calls == 2  # per key


async def test_an_expired_value_is_loaded_again() -> None:
    cache: LoadOnce[str, str] = LoadOnce(0)
    src = Source()
    src.release.set()
    assert await cache.get("k", src.load) == "v1"
    src.value = "v2"
    assert await cache.get("k", src.load) == "v2" and src.calls == 2


async def test_a_drop_during_a_load_is_seen_by_every_later_caller() -> None:
    cache: LoadOnce[str, str] = LoadOnce(60)
    src = Source()
    early = asyncio.create_task(cache.get("k", src.load))
    assert await asyncio.wait_for(src.started.get(), 5) == 1
    src.value = "v2"  # the change is committed, then the cache is told
    cache.drop("k")
    late = asyncio.create_task(cache.get("k", src.load))  # must not join the load that read before the change
    assert await asyncio.wait_for(src.started.get(), 5) == 2
    src.release.set()
    assert await early == "v1" and await late == "v2"
    assert await cache.get("k", src.load) == "v2" and src.calls == 2  # the stale load did not fill the cache
    cache.clear()
    assert await cache.get("k", src.load) == "v2" and src.calls == 3


async def test_a_failed_load_reaches_every_waiter_and_is_not_cached() -> None:
    cache: LoadOnce[str, str] = LoadOnce(60)
    src = Source()
    src.fail = LookupError("unknown")
    waiters = [asyncio.create_task(cache.get("k", src.load)) for _ in range(3)]
    await asyncio.wait_for(src.started.get(), 5)
    src.release.set()
    for w in waiters:
        with pytest.raises(LookupError):
            await w
    src.fail = None
    assert await cache.get("k", src.load) == "v1" and src.calls == 2


async def test_fresh_loads_on_its_own_and_a_cancelled_waiter_leaves_the_load_to_the_others() -> None:
    cache: LoadOnce[str, str] = LoadOnce(60)
    src = Source()
    first = asyncio.create_task(cache.get("k", src.load))
    second = asyncio.create_task(cache.get("k", src.load))
    await asyncio.wait_for(src.started.get(), 5)
    first.cancel()
    fresh = asyncio.create_task(cache.get("k", src.load, fresh=True))
    assert await asyncio.wait_for(src.started.get(), 5) == 2  # the shared load and the fresh one
    src.release.set()
    assert await second == "v1" and await fresh == "v1"
    with pytest.raises(asyncio.CancelledError):
        await first
