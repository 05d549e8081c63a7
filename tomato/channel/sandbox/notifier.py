"""Background delivery of channel notifies with the channel's retry schedule, divided by `time_scale`.

A channel simulator builds a `Notification` (URL, body, headers, what counts as acknowledged, the gaps between
sends); the notifier applies the channel's notify faults, sends in background tasks, and records every attempt.
It uses its own plain httpx client: the simulator stands outside the platform.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:
    from tomato.channel.sandbox.state import SandboxState

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Notification:
    channel: str
    url: str
    body: bytes
    headers: dict[str, str]
    accepted: Callable[[httpx.Response], bool]  # the channel's rule for "the merchant acknowledged"
    gaps_s: tuple[float, ...]  # unscaled waits between sends: len(gaps_s) + 1 sends at most
    notify_id: str


@dataclass(frozen=True)
class Attempt:
    channel: str
    notify_id: str
    url: str
    number: int  # 1-based within its delivery; duplicates count as their own delivery
    status_code: int | None  # None when the request failed
    accepted: bool


class Notifier:
    def __init__(
        self, state: SandboxState, *, transport: httpx.AsyncBaseTransport | None = None, timeout_s: float = 5.0
    ) -> None:
        self._state = state
        self._transport = transport
        self._timeout_s = timeout_s
        self._client: httpx.AsyncClient | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.attempts: list[Attempt] = []

    def send(self, notification: Notification) -> None:
        """Schedule delivery, honouring `drop_notify` and `duplicate_notify` of the channel."""
        faults = self._state.faults[notification.channel]
        if faults.drop_notify:
            log.info("sandbox %s notify %s dropped by fault", notification.channel, notification.notify_id)
            return
        self._spawn(self._deliver(notification, notification.gaps_s))
        for _ in range(max(0, faults.duplicate_notify)):
            self._spawn(self._deliver(notification, ()))

    def later(self, delay_s: float, action: Callable[[], None]) -> None:
        """Run `action` after `delay_s` in a tracked task (a channel finishing work in the background, e.g. a
        payout): `drain()` waits for it and `aclose()` cancels it, like a delivery."""

        async def run() -> None:
            await asyncio.sleep(delay_s)
            action()

        self._spawn(run())

    @property
    def pending(self) -> int:
        return len(self._tasks)

    async def drain(self) -> None:
        """Wait until every scheduled delivery (including retries) has finished."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def aclose(self) -> None:
        """Cancel pending deliveries and close the client (app shutdown)."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(
                timeout=httpx.Timeout(self._timeout_s), transport=self._transport, follow_redirects=False
            )
        return self._client

    async def _deliver(self, n: Notification, gaps_s: tuple[float, ...]) -> None:
        for number in range(1, len(gaps_s) + 2):
            if await self._attempt(n, number):
                return
            if number <= len(gaps_s):
                await asyncio.sleep(gaps_s[number - 1] / self._state.time_scale)
        log.info("sandbox %s notify %s gave up after %d sends", n.channel, n.notify_id, len(gaps_s) + 1)

    async def _attempt(self, n: Notification, number: int) -> bool:
        status: int | None = None
        accepted = False
        try:
            response = await self._http().post(n.url, content=n.body, headers=n.headers)
            status = response.status_code
            accepted = n.accepted(response)
        except httpx.HTTPError as exc:
            log.info("sandbox %s notify %s send %d failed: %s", n.channel, n.notify_id, number, type(exc).__name__)
        self.attempts.append(Attempt(n.channel, n.notify_id, n.url, number, status, accepted))
        return accepted
