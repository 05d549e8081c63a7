"""Breaker state is shared through the cache (Redis in production): an account opened by one process is skipped
by every other process and shows as open in every admin view."""

from __future__ import annotations

from tomato.channel.breakers import BreakerOpen, BreakerRegistry
from tomato.channel.protocol import ChannelResult, ErrorClass


async def _timeout() -> ChannelResult:
    return ChannelResult.unknown(ErrorClass.TIMEOUT, "slow")


async def test_open_in_one_process_is_seen_by_another(cache) -> None:
    a = BreakerRegistry(cache, fail_max=2, reset_timeout_s=60)
    b = BreakerRegistry(cache, fail_max=2, reset_timeout_s=60)
    for _ in range(2):
        await a.call("CA1", _timeout, lambda r: True)
    assert a.view("CA1").state == "open"
    await a.drain_mirror()
    await b.refresh("CA1")
    assert b.view("CA1").state == "open" and not b.is_available("CA1")
    calls = 0

    async def counted() -> ChannelResult:
        nonlocal calls
        calls += 1
        return await _timeout()

    try:
        await b.call("CA1", counted, lambda r: True)
    except BreakerOpen:
        pass
    assert calls == 0  # process b never reached the account another process found broken
