"""Circuit breakers per channel account (pybreaker), safe under asyncio.

pybreaker is used only through `with breaker.calling():` around the awaited call — its `call`, decorator and
`call_async` do not work with coroutines. `asyncio.CancelledError` is excluded so a cancelled request never counts
as a failure. pybreaker lets every concurrent caller through when half-open; a per-account asyncio lock lets
exactly one probe through instead. The state is mirrored to the cache (Redis when configured) so other
processes and the admin view see an account opened anywhere.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import pybreaker

from tomato.core.cache import Cache

log = logging.getLogger(__name__)
T = TypeVar("T")
MIRROR_TTL_S = 3600.0
MIRROR_READ_EVERY_S = 0.5


class BreakerOpen(Exception):
    """The account's breaker refused the call: nothing was sent to the channel."""


class ChannelFault(Exception):
    """Raised inside the guarded block to make a timeout/5xx result count as a failure."""


@dataclass(frozen=True)
class BreakerView:
    state: str  # closed | open | half-open
    fail_counter: int
    opened_at: datetime | None


class _Mirror(pybreaker.CircuitBreakerListener):
    def __init__(self, registry: BreakerRegistry, account_id: str) -> None:
        self._registry, self._account = registry, account_id

    def state_change(self, cb: pybreaker.CircuitBreaker, old: Any, new: Any) -> None:
        log.warning("breaker of %s: %s -> %s", self._account, getattr(old, "name", old), new.name)
        self._registry.schedule_mirror(self._account, cb)


class BreakerRegistry:
    def __init__(self, cache: Cache, *, fail_max: int, reset_timeout_s: float) -> None:
        self._cache = cache
        self._fail_max = fail_max
        self._reset = reset_timeout_s
        self._breakers: dict[str, pybreaker.CircuitBreaker] = {}
        self._probe_locks: dict[str, asyncio.Lock] = {}
        self._mirror_read_at: dict[str, float] = {}
        self._pending: set[asyncio.Task[None]] = set()

    def breaker(self, account_id: str) -> pybreaker.CircuitBreaker:
        cb = self._breakers.get(account_id)
        if cb is None:
            cb = pybreaker.CircuitBreaker(
                fail_max=self._fail_max,
                reset_timeout=self._reset,
                exclude=[asyncio.CancelledError, BreakerOpen],
                name=account_id,
                listeners=[_Mirror(self, account_id)],
            )
            self._breakers[account_id] = cb
            self._probe_locks[account_id] = asyncio.Lock()
        return cb

    def view(self, account_id: str) -> BreakerView:
        cb = self.breaker(account_id)
        return BreakerView(cb.current_state, cb.fail_counter, cb._state_storage.opened_at)  # noqa: SLF001

    def is_available(self, account_id: str) -> bool:
        """False while open and the reset timeout has not elapsed (routing skips such accounts)."""
        cb = self.breaker(account_id)
        if cb.current_state != pybreaker.STATE_OPEN:
            return True
        opened = cb._state_storage.opened_at  # noqa: SLF001
        return opened is None or datetime.now(UTC) >= opened + timedelta(seconds=self._reset)

    async def call(self, account_id: str, fn: Callable[[], Awaitable[T]], counts_as_failure: Callable[[T], bool]) -> T:
        """Runs `fn` under the account's breaker; raises BreakerOpen when refused (no call made)."""
        await self._sync_from_mirror(account_id)
        cb = self.breaker(account_id)
        probe = cb.current_state == pybreaker.STATE_HALF_OPEN or (
            cb.current_state == pybreaker.STATE_OPEN and self.is_available(account_id)
        )
        if not probe:
            return await self._guarded(cb, fn, counts_as_failure)
        lock = self._probe_locks[account_id]
        if lock.locked():
            raise BreakerOpen(f"channel account {account_id}: a probe is already in flight")
        async with lock:
            return await self._guarded(cb, fn, counts_as_failure)

    @staticmethod
    async def _guarded(
        cb: pybreaker.CircuitBreaker, fn: Callable[[], Awaitable[T]], counts_as_failure: Callable[[T], bool]
    ) -> T:
        result: T | None = None
        try:
            with cb.calling():
                result = await fn()
                if counts_as_failure(result):
                    raise ChannelFault()
        except (ChannelFault, pybreaker.CircuitBreakerError) as exc:
            if result is not None:  # the call happened (and failed, possibly tripping the breaker): report it
                return result
            raise BreakerOpen(f"channel account {cb.name}: breaker open") from exc
        assert result is not None
        return result

    # --- mirroring ------------------------------------------------------------------------------------

    def schedule_mirror(self, account_id: str, cb: pybreaker.CircuitBreaker) -> None:
        try:
            task = asyncio.get_running_loop().create_task(self._write_mirror(account_id, cb))
        except RuntimeError:
            return
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def drain_mirror(self) -> None:
        """Waits for pending mirror writes (shutdown, tests)."""
        while self._pending:
            await asyncio.gather(*list(self._pending), return_exceptions=True)

    async def _write_mirror(self, account_id: str, cb: pybreaker.CircuitBreaker) -> None:
        opened = cb._state_storage.opened_at  # noqa: SLF001
        value = {"state": cb.current_state, "opened_at": opened.isoformat() if opened else None}
        try:
            await self._cache.set(f"breaker:{account_id}", json.dumps(value), MIRROR_TTL_S)
        except Exception:
            log.warning("could not mirror breaker state of %s", account_id)

    async def refresh(self, account_id: str) -> None:
        """Adopts the mirrored state now (the admin view), regardless of the read interval."""
        self._mirror_read_at.pop(account_id, None)
        await self._sync_from_mirror(account_id)

    async def _sync_from_mirror(self, account_id: str) -> None:
        """Adopts an `open` seen by another process (at most every half second per account)."""
        now = time.monotonic()
        if now - self._mirror_read_at.get(account_id, -MIRROR_READ_EVERY_S) < MIRROR_READ_EVERY_S:
            return
        self._mirror_read_at[account_id] = now
        try:
            raw = await self._cache.get(f"breaker:{account_id}")
        except Exception:
            return
        if raw is None:
            return
        mirrored = json.loads(raw)
        cb = self.breaker(account_id)
        if mirrored["state"] == pybreaker.STATE_OPEN and cb.current_state == pybreaker.STATE_CLOSED:
            opened_at = datetime.fromisoformat(mirrored["opened_at"]) if mirrored["opened_at"] else datetime.now(UTC)
            if datetime.now(UTC) < opened_at + timedelta(seconds=self._reset):
                cb._state_storage.opened_at = opened_at  # noqa: SLF001
                cb._state_storage.state = pybreaker.STATE_OPEN  # noqa: SLF001
