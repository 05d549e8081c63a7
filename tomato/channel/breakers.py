"""Circuit breakers per channel account, one state shared by every process.

With Redis the state — closed or open, the consecutive-failure count, `opened_at` and the single half-open probe
slot — lives in Redis and every call outcome is one atomic script (`breaker_redis.py`); without Redis the same
state machine (`breaker_state.py`) runs in-process. So `fail_max` unwell answers open the account for every
process however they were split, and after the reset timeout exactly one probe goes, from whichever process asks
first. A cancelled call is neither success nor failure: it leaves the count alone, and a cancelled probe only
frees the probe slot for the next caller.

Each registry remembers the last state it saw per account (every call outcome returns it). Routing uses the
remembered state when it is younger than `state_ttl_s` (0.5 s) and reads the store otherwise, so an account
opened by another process leaves this process's routing within half a second. A call asks the store first
("may I go": the store decides who probes) unless the remembered state is closed and that young, so the usual
call costs one round trip, its outcome — and not even that when the account is quiet (closed with no failures, as
seen less than `state_ttl_s` ago): such successes are recorded within `SUCCESS_FLUSH_S` (50 ms), one store call per
account per flush. The price: failures another process records inside that window may be reset by a success that
happened just before them, as if it had happened just after. A success after failures this process saw, every
failure and a probe's outcome are recorded before the call returns. When Redis cannot be reached the registry falls
back to its own in-process state (logged), so payments go on without Redis.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
import weakref
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

from tomato.channel.breaker_redis import RedisBreakerStore
from tomato.channel.breaker_state import CLOSED, MemoryBreakerStore, Op, Shared, Verdict
from tomato.core.cache import Cache, RedisCache
from tomato.core.clock import Clock, SystemClock

log = logging.getLogger(__name__)
T = TypeVar("T")
STATE_TTL_S = 0.5
SUCCESS_FLUSH_S = 0.05


class BreakerOpen(Exception):
    """The account's breaker refused the call: nothing was sent to the channel."""


@dataclass(frozen=True)
class BreakerView:
    state: str  # closed | open | half-open
    fail_counter: int
    opened_at: datetime | None


class BreakerStore(Protocol):
    async def apply(
        self, account_id: str, op: Op, *, now: float, fail_max: int, reset_s: float, token: str
    ) -> tuple[Verdict, Shared]: ...

    async def read(self, account_ids: list[str]) -> dict[str, Shared]: ...


_memory_stores: weakref.WeakKeyDictionary[Cache, MemoryBreakerStore] = weakref.WeakKeyDictionary()


def store_for(cache: Cache) -> BreakerStore:
    """Redis when the cache is Redis; otherwise one in-process store per cache, as Redis keeps one per prefix."""
    if isinstance(cache, RedisCache):
        return RedisBreakerStore(cache.redis, cache.prefix, cache.scripts)
    store = _memory_stores.get(cache)
    if store is None:
        store = _memory_stores[cache] = MemoryBreakerStore()
    return store


class BreakerRegistry:
    def __init__(
        self,
        cache: Cache,
        *,
        fail_max: int,
        reset_timeout_s: float,
        clock: Clock | None = None,
        state_ttl_s: float = STATE_TTL_S,
    ) -> None:
        """`clock` is wall time (breakers never follow a test's frozen business clock unless given it)."""
        self._store = store_for(cache)
        self._fallback = MemoryBreakerStore()
        self._fail_max = fail_max
        self._reset = reset_timeout_s
        self._clock: Clock = clock or SystemClock()
        self._ttl = state_ttl_s
        self._known: dict[str, tuple[Shared, float]] = {}
        self._pending: set[asyncio.Task[None]] = set()
        self._due: set[str] = set()  # accounts with a deferred success (`_defer_success`)
        self._flush_timer: asyncio.TimerHandle | None = None
        self._flush_loop: asyncio.AbstractEventLoop | None = None
        self._fallback_in_use = False

    # --- calls ----------------------------------------------------------------------------------------

    async def call(self, account_id: str, fn: Callable[[], Awaitable[T]], counts_as_failure: Callable[[T], bool]) -> T:
        """Runs `fn` under the account's breaker; raises BreakerOpen when refused (no call made)."""
        token = ""  # a probe's, drawn only when the store is asked "may I go" (not on the closed hot path)
        store, verdict = self._store, Verdict.GO
        if not self._surely_closed(account_id):
            token = uuid.uuid4().hex
            try:
                store, verdict = await self._apply(self._store, account_id, Op.ACQUIRE, token)
            except asyncio.CancelledError:  # the store may have given us the probe slot: hand it back
                self._spawn(self._apply(self._store, account_id, Op.RELEASE, token))
                raise
        if verdict is Verdict.REFUSED:
            raise BreakerOpen(f"channel account {account_id}: breaker open")
        mine = token if verdict is Verdict.PROBE else ""
        try:
            result = await fn()
        except asyncio.CancelledError:
            if mine:  # free the slot without delaying the cancellation; the slot's expiry covers a lost release
                self._spawn(self._apply(store, account_id, Op.RELEASE, mine))
            raise
        except Exception:
            await self._settle(store, account_id, Op.FAILURE, mine)
            raise
        failed = counts_as_failure(result)
        if not failed and not mine and self._quiet(account_id):
            self._defer_success(account_id)
            return result
        await self._settle(store, account_id, Op.FAILURE if failed else Op.SUCCESS, mine)
        return result

    def _quiet(self, account_id: str) -> bool:
        """Closed with no failures, as this process saw it less than `state_ttl_s` ago: a success there can only
        reset failures other processes recorded since, so it may be recorded a moment later."""
        state = self._state(account_id)
        return state.state == CLOSED and state.failures == 0 and self._fresh(account_id, self._now())

    def _defer_success(self, account_id: str) -> None:
        """Successes on quiet accounts go to the store together within `SUCCESS_FLUSH_S`: one script call per account
        per flush instead of one per channel call (about 4 % of a create-order's gateway CPU). The flush also renews
        the remembered state, so a busy account stays "surely closed" without extra reads."""
        self._due.add(account_id)
        loop = asyncio.get_running_loop()
        if self._flush_timer is None or self._flush_loop is not loop:  # none pending, or one on a loop now gone
            self._flush_timer, self._flush_loop = loop.call_later(SUCCESS_FLUSH_S, self._flush_due), loop

    def _flush_due(self) -> None:
        self._flush_timer = None
        due, self._due = self._due, set()
        for account_id in due:
            self._spawn(self._apply(self._store, account_id, Op.SUCCESS, ""))

    def _surely_closed(self, account_id: str) -> bool:
        """The hot path's shortcut: a closed state read less than `state_ttl_s` ago needs no "may I go" round trip.

        It cannot skip a probe: the breaker opened after that read, so its reset timeout (never shorter than the
        ttl) has not passed. The one cost: for up to `state_ttl_s` after another process opens the breaker this
        process may still send calls, whose answers then change nothing."""
        now = self._now()
        return self._reset >= self._ttl and self._fresh(account_id, now) and self._state(account_id).state == CLOSED

    async def _settle(self, store: BreakerStore, account_id: str, op: Op, probe_token: str) -> None:
        if not probe_token:
            await self._apply(store, account_id, op, probe_token)
            return
        # shielded: the probe's answer closes or reopens the breaker even if its caller is cancelled meanwhile
        await asyncio.shield(self._spawn(self._apply(store, account_id, op, probe_token)))

    async def _apply(self, store: BreakerStore, account_id: str, op: Op, token: str) -> tuple[BreakerStore, Verdict]:
        """One transition on the shared store, or on the in-process fallback while the shared one fails."""
        before = self._known.get(account_id, (Shared(), 0.0))[0].state
        kw: dict[str, Any] = {"now": self._now(), "fail_max": self._fail_max, "reset_s": self._reset, "token": token}
        try:
            verdict, state = await store.apply(account_id, op, **kw)
        except Exception:
            if store is self._fallback:
                raise
            self._degraded(True)
            store = self._fallback
            verdict, state = await store.apply(account_id, op, **kw)
        else:
            if store is self._store:
                self._degraded(False)
        self._remember(account_id, state)
        if state.state != before and op is not Op.ACQUIRE:
            log.warning("breaker of %s: %s -> %s", account_id, before, state.state)
        return store, verdict

    def _spawn(self, coro: Coroutine[Any, Any, object]) -> asyncio.Task[None]:
        async def run() -> None:
            try:
                await coro
            except Exception:
                log.warning("could not record a breaker outcome (a probe's slot expires on its own)")

        task = asyncio.get_running_loop().create_task(run())
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)
        return task

    async def drain(self) -> None:
        """Records deferred successes now and waits for outcomes still being recorded, e.g. a cancelled probe's
        release (shutdown, tests)."""
        if self._flush_timer is not None:
            self._flush_timer.cancel()
            self._flush_due()
        while self._pending:
            await asyncio.gather(*list(self._pending), return_exceptions=True)

    # --- what routing and the admin views see -------------------------------------------------------------

    async def available(self, account_ids: Sequence[str]) -> set[str]:
        """The accounts a call may go to now: closed, or half-open with the probe slot free. Reads the store (one
        round trip for all) for accounts whose remembered state is older than `state_ttl_s`."""
        now = self._now()
        stale = [a for a in dict.fromkeys(account_ids) if not self._fresh(a, now)]
        if stale:
            await self._read(stale)
        return {a for a in account_ids if self._state(a).admits(now, self._reset)}

    def is_available(self, account_id: str) -> bool:
        """The remembered state only (no I/O): False while open and the reset timeout has not elapsed."""
        return self._state(account_id).admits(self._now(), self._reset)

    def view(self, account_id: str) -> BreakerView:
        """The remembered state (no I/O; `refresh` first for the store's)."""
        s = self._state(account_id)
        state = s.state
        if s.half_open(self._now(), self._reset):
            state = "half-open"
        opened = datetime.fromtimestamp(s.opened_at, UTC) if s.state != CLOSED else None
        return BreakerView(state, s.failures, opened)

    async def refresh(self, account_id: str) -> None:
        """Reads the store's state now (the admin view), regardless of its age."""
        await self._read([account_id])

    async def _read(self, account_ids: list[str]) -> None:
        try:
            states = await self._store.read(account_ids)
        except Exception:
            self._degraded(True)
            states = await self._fallback.read(account_ids)
        else:
            self._degraded(False)
        for account_id, state in states.items():
            self._remember(account_id, state)

    def _degraded(self, now_degraded: bool) -> None:
        """Logs the switch to this process's own state while the shared store fails, and back (not every call)."""
        if now_degraded and not self._fallback_in_use:
            log.warning("breaker store unreachable: this process uses its own breaker state until it is back")
        elif not now_degraded and self._fallback_in_use:
            log.warning("breaker store reachable again: breaker state is shared again")
        self._fallback_in_use = now_degraded

    def _remember(self, account_id: str, state: Shared) -> None:
        self._known[account_id] = (state, self._now())

    def _fresh(self, account_id: str, now: float) -> bool:
        known = self._known.get(account_id)
        return known is not None and 0 <= now - known[1] < self._ttl

    def _state(self, account_id: str) -> Shared:
        known = self._known.get(account_id)
        return Shared() if known is None else known[0]

    def _now(self) -> float:
        return self._clock.timestamp()
