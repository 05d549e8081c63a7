"""The event bus: durable topic routing of outbox events to consumers.

`publish` returns only when the broker has confirmed every message (RabbitMQ publisher confirms), so the relay
marks rows sent only after a confirm. It returns the ids of the messages no queue took (no subscription matched,
or RabbitMQ returned the mandatory message): those went nowhere, and the relay leaves their rows unsent.
Consumers are called with each message and the message is acknowledged only after the handler returns (after its
own commit); a handler that raises gets the message redelivered.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Protocol

from tomato.core.outbox import BusMessage

log = logging.getLogger(__name__)

Handler = Callable[[BusMessage], Awaitable[None]]


class EventBus(Protocol):
    name: str

    async def start(self) -> None: ...
    async def publish(self, messages: list[BusMessage]) -> set[str]: ...
    async def subscribe(self, queue: str, patterns: list[str], handler: Handler, *, prefetch: int = 100) -> None: ...
    async def ping(self) -> bool: ...
    async def close(self) -> None: ...


def topic_matches(pattern: str, routing_key: str) -> bool:
    """AMQP topic semantics: `*` is exactly one word, `#` is zero or more words."""
    return _match(pattern.split("."), routing_key.split("."))


def _match(pattern: list[str], words: list[str]) -> bool:
    if not pattern:
        return not words
    head, rest = pattern[0], pattern[1:]
    if head == "#":
        return any(_match(rest, words[i:]) for i in range(len(words) + 1))
    if not words:
        return False
    return (head == "*" or head == words[0]) and _match(rest, words[1:])


class InProcessBus:
    """The embedded backend: asyncio queues per subscription, same topic semantics, retries on handler errors."""

    name = "in-process"

    def __init__(self, redelivery_delay_s: float = 1.0, max_delay_s: float = 60.0) -> None:
        self._subs: list[tuple[list[str], asyncio.Queue[BusMessage]]] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._delay = redelivery_delay_s
        self._max_delay = max_delay_s
        self._failures: dict[str, int] = {}

    async def start(self) -> None:
        return None

    async def publish(self, messages: list[BusMessage]) -> set[str]:
        unroutable: set[str] = set()
        for message in messages:
            routed = False
            for patterns, queue in self._subs:
                if any(topic_matches(p, message.type) for p in patterns):
                    queue.put_nowait(message)
                    routed = True
            if not routed:
                unroutable.add(message.id)
        return unroutable

    async def subscribe(self, queue: str, patterns: list[str], handler: Handler, *, prefetch: int = 100) -> None:
        q: asyncio.Queue[BusMessage] = asyncio.Queue()
        self._subs.append((patterns, q))
        for n in range(max(1, min(prefetch, 8))):
            self._tasks.append(asyncio.create_task(self._consume(q, handler), name=f"bus:{queue}:{n}"))

    async def _consume(self, q: asyncio.Queue[BusMessage], handler: Handler) -> None:
        while True:
            message = await q.get()
            try:
                await handler(message)
                self._failures.pop(message.id, None)
            except asyncio.CancelledError:
                q.put_nowait(message)
                raise
            except Exception:
                # never dropped (the outbox row is already marked sent): retried with a growing delay instead
                n = self._failures[message.id] = self._failures.get(message.id, 0) + 1
                delay = min(self._max_delay, self._delay * 2 ** (n - 1))
                log.exception("consumer failed on %s (%d times); redelivering in %.1f s", message.id, n, delay)
                asyncio.get_running_loop().call_later(delay, q.put_nowait, message)

    async def ping(self) -> bool:
        return True

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
