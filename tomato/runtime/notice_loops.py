"""Runs the notice context in a process: event consumer, delivery worker and sweeper on the container's backends.

`start_notice(c, stop)` subscribes and starts everything before it returns (call it before the relay starts, so
an in-process bus never publishes to nobody) and hands back one task for `BackgroundLoops.tasks`; `run_notice`
is the same as a single coroutine. On `stop` (or cancellation) they shut down in order — stop sweeping, drain
the delivery queue's in-flight attempts, close the batchers and the HTTP clients. A broker that is down at start
is retried in the background; until then wake-ups fail to publish and the sweeper catches up from the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from tomato.bootstrap import Container
from tomato.notice.consumers import PATTERNS, EventConsumer
from tomato.notice.queues import DeliveryQueue, InProcessDeliveryQueue
from tomato.notice.schedule import NoticeConfig
from tomato.notice.sender import WebhookSender
from tomato.notice.service import NoticeService
from tomato.notice.sweeper import Sweeper
from tomato.notice.targets import PayTargets, TargetLookup
from tomato.notice.worker import DeliveryWorker

log = logging.getLogger(__name__)

EVENTS_QUEUE = "notice.events"


def build_queue(c: Container, config: NoticeConfig) -> DeliveryQueue:
    if c.settings.amqp_url:
        from tomato.notice.queues_rabbit import RabbitDeliveryQueue

        return RabbitDeliveryQueue(c.settings.amqp_url, c.settings.amqp_prefix, config.schedule.tiers_ms())
    return InProcessDeliveryQueue()


class NoticeRuntime:
    def __init__(self, c: Container, config: NoticeConfig | None = None, targets: TargetLookup | None = None) -> None:
        self.c = c
        self.config = config or NoticeConfig.from_settings(c.settings)
        cfg = self.config
        self.queue = build_queue(c, cfg)
        self.sender = WebhookSender(
            cfg.allowed_networks, timeout_s=cfg.http_timeout_s, connections=cfg.http_connections,
            body_limit=cfg.response_body_bytes,
        )  # fmt: skip
        lookup = targets or PayTargets(c.pay)
        self.worker = DeliveryWorker(c.db, c.ids, c.merchants, self.queue, self.sender, cfg)
        self.consumer = EventConsumer(c.db, c.ids, c.merchants, lookup, self.queue, cfg, local=self.worker)
        self.sweeper = Sweeper(c.db, self.queue, self.consumer, cfg, self.worker.lag)
        self.service = NoticeService(c.db, self.queue)
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        self.consumer.start()
        self.worker.start()
        await self.queue.consume(self.worker.handle, self.config.concurrency)
        await self._retrying("notice queue", self.queue.start)
        await self._retrying(
            "notice event subscription",
            lambda: self.c.bus.subscribe(EVENTS_QUEUE, PATTERNS, self.consumer.handle, prefetch=self.config.batch_size),
        )
        self._tasks.append(asyncio.create_task(self.sweeper.run(self._stop), name="notice-sweeper"))

    async def _retrying(self, what: str, step: Callable[[], Awaitable[None]]) -> None:
        """Try once now; if the broker is down, keep trying in the background (the sweeper covers meanwhile)."""
        try:
            await asyncio.wait_for(step(), timeout=10)
            return
        except Exception:
            log.warning("%s failed at start; retrying in the background", what, exc_info=True)

        async def again() -> None:
            delay = 1.0
            while not self._stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), delay)
                if self._stop.is_set():
                    return
                try:
                    await asyncio.wait_for(step(), timeout=10)
                    log.info("%s done", what)
                    return
                except Exception:
                    delay = min(delay * 2, 30.0)

        self._tasks.append(asyncio.create_task(again(), name=f"retry:{what}"))

    async def aclose(self) -> None:
        self._stop.set()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        await self.queue.close()  # drains attempts in flight (RabbitMQ) before the batchers go away
        await self.worker.close()
        await self.consumer.close()
        await self.sender.aclose()


async def start_notice(c: Container, stop: asyncio.Event, config: NoticeConfig | None = None) -> asyncio.Task[None]:
    """Starts webhooks now — subscribed to the bus before this returns, so start it before the relay — and
    returns the task that shuts them down in order once `stop` is set or the task is cancelled."""
    runtime = NoticeRuntime(c, config)
    try:
        await runtime.start()
    except BaseException:
        await runtime.aclose()
        raise

    async def supervise() -> None:
        try:
            await stop.wait()
        finally:
            await runtime.aclose()

    return asyncio.create_task(supervise(), name="notice")


async def run_notice(c: Container, stop: asyncio.Event, config: NoticeConfig | None = None) -> None:
    """One background task: webhooks for this process until `stop` is set or the task is cancelled."""
    runtime = NoticeRuntime(c, config)
    try:
        await runtime.start()
        await stop.wait()
    finally:
        await runtime.aclose()
