"""The delivery work queue: wake-up messages carrying a delivery id, now or after a delay.

Messages are hints, the delivery row is the truth: a worker attempts only a delivery that is due and not leased,
and a sweeper re-enqueues anything overdue whose message went missing. So a queue may lose or duplicate messages
(an in-process queue loses everything on a crash) without losing or doubling a webhook attempt.

Backends: `InProcessDeliveryQueue` (embedded, asyncio timers) and `RabbitDeliveryQueue` (`queues_rabbit`:
per-delay TTL queues dead-lettering back into a quorum work queue).
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

log = logging.getLogger(__name__)

JobHandler = Callable[[str], Awaitable[None]]
DELIVERY_ID = re.compile(r"^D[0-9]{1,24}$")


class PoisonMessage(ValueError):
    """A queue message that can never be processed (not a delivery id): dead-lettered, never retried forever."""


def delivery_id_of(raw: str) -> str:
    if not DELIVERY_ID.match(raw):
        raise PoisonMessage(f"not a delivery id: {raw[:64]!r}")
    return raw


class DeliveryQueue(Protocol):
    name: str

    async def start(self) -> None: ...
    async def consume(self, handler: JobHandler, concurrency: int) -> None: ...
    async def enqueue(self, delivery_ids: Sequence[str]) -> None: ...
    async def enqueue_later(self, delivery_id: str, delay_s: float) -> None: ...
    async def close(self) -> None: ...


class InProcessDeliveryQueue:
    """asyncio queue + `call_later`; a failing handler is retried a few times, then left to the sweeper."""

    name = "in-process"

    def __init__(self, retry_delay_s: float = 1.0, max_failures: int = 5) -> None:
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._timers: set[asyncio.TimerHandle] = set()
        self._failures: dict[str, int] = {}
        self._retry_delay_s = retry_delay_s
        self._max_failures = max_failures

    async def start(self) -> None:
        return None

    async def consume(self, handler: JobHandler, concurrency: int) -> None:
        for n in range(max(1, concurrency)):
            self._tasks.append(asyncio.create_task(self._work(handler), name=f"notice-queue:{n}"))

    async def _work(self, handler: JobHandler) -> None:
        while True:
            raw = await self._queue.get()
            try:
                await handler(delivery_id_of(raw))
                self._failures.pop(raw, None)
            except PoisonMessage:
                log.error("dropping poison message %r", raw[:64])
            except Exception:
                n = self._failures[raw] = self._failures.get(raw, 0) + 1
                if n >= self._max_failures:
                    self._failures.pop(raw, None)
                    log.exception("delivery %s failed %d times; left to the sweeper", raw, n)
                else:
                    log.warning("delivery %s failed (%d); retrying", raw, n, exc_info=True)
                    self._later(raw, self._retry_delay_s * n)

    async def enqueue(self, delivery_ids: Sequence[str]) -> None:
        for delivery_id in delivery_ids:
            self._queue.put_nowait(delivery_id)

    async def enqueue_later(self, delivery_id: str, delay_s: float) -> None:
        self._later(delivery_id, delay_s)

    def _later(self, delivery_id: str, delay_s: float) -> None:
        def fire() -> None:
            self._timers.discard(handle)
            self._queue.put_nowait(delivery_id)

        handle = asyncio.get_running_loop().call_later(max(0.0, delay_s), fire)
        self._timers.add(handle)

    async def close(self) -> None:
        for handle in self._timers:
            handle.cancel()
        self._timers.clear()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
