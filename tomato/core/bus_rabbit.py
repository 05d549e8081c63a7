"""RabbitMQ backend of the event bus (aio-pika): durable topology, publisher confirms, bounded consumers.

Why it looks the way it does (docs/operations.md, scaling out):

* `publish` returns only after the broker confirmed *every* message; anything else (nack, timeout, connection
  down, a confirm lost with the connection) raises `BusPublishError`, so the relay never marks an unconfirmed
  row sent. Messages are `mandatory`: one that no queue is bound for comes back (basic.return before its ack)
  and `publish` returns its id as unroutable, so it is not taken for delivered either (queues are declared by
  the consumers; until one has, the events wait in the outbox). The robust connection restores channels and
  consumers after a drop but never replays a failed publish; the relay's next round does that (duplicates are
  possible, consumers dedupe on the event id).
* Messages are persistent and the exchanges/queues durable; aio-pika's defaults are neither.
* Consumer queues are quorum queues with a dead-letter exchange; a message is acked only after the handler
  returned. A failing handler gets the message back (`basic.reject(requeue=True)`; since RabbitMQ 4.3 only a
  reject, not a nack, increments `x-delivery-count`) until `max_deliveries`, then it is rejected without requeue
  and lands in `<prefix>.<queue>.dead`. We never use `message.process()`: it rejects on `CancelledError`, which
  would dead-letter healthy messages at shutdown.
* Handlers run in their own tasks (bounded by a semaphore), so one slow or poisoned message never blocks the
  others and a channel close does not cancel a handler half-way through its commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable
from dataclasses import dataclass
from functools import partial
from typing import Any, cast
from urllib.parse import parse_qs, urlsplit

import aio_pika
import aiormq
from aio_pika.abc import (
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustChannel,
    AbstractRobustConnection,
)
from aio_pika.exceptions import PublishError
from pamqp.commands import Basic

from tomato.core.amqp_writes import coalesce_writes
from tomato.core.bus import Handler
from tomato.core.outbox import BusMessage

log = logging.getLogger(__name__)

# Broker-side backstop for messages that never reach our reject (e.g. a handler that kills the process each time).
# Fixed, because RabbitMQ refuses to re-declare a queue with different arguments.
BROKER_DELIVERY_LIMIT = 20


class BusPublishError(RuntimeError):
    """Some message of the batch was not confirmed by the broker; the caller must not mark it sent."""


@dataclass
class _Subscription:
    queue: str
    patterns: tuple[str, ...]
    handler: Handler
    prefetch: int
    slots: asyncio.Semaphore
    channel: AbstractRobustChannel | None = None
    amqp_queue: AbstractQueue | None = None
    consumer_tag: str | None = None


class RabbitBus:
    """EventBus over RabbitMQ: topic exchange `<prefix>.events`, dead-letter exchange `<prefix>.dlx`."""

    name = "rabbitmq"

    def __init__(
        self,
        url: str,
        prefix: str,
        *,
        max_in_flight: int = 100,
        publish_timeout_s: float = 15.0,
        connect_timeout_s: float = 5.0,
        reconnect_interval_s: float = 2.0,
        max_deliveries: int = 5,
        retry_delay_s: float = 0.5,
        retry_delay_max_s: float = 5.0,
        drain_timeout_s: float = 10.0,
        heartbeat_s: int = 15,
    ) -> None:
        if not 1 <= max_deliveries <= BROKER_DELIVERY_LIMIT:
            raise ValueError(f"max_deliveries must be between 1 and {BROKER_DELIVERY_LIMIT}")
        self._url = url
        self.prefix = prefix
        self.exchange_name = f"{prefix}.events"
        self.dlx_name = f"{prefix}.dlx"
        self._max_in_flight = max(1, max_in_flight)
        self._publish_timeout_s = publish_timeout_s
        self._connect_timeout_s = connect_timeout_s
        self._reconnect_interval_s = reconnect_interval_s
        self._max_deliveries = max_deliveries
        self._retry_delay_s = retry_delay_s
        self._retry_delay_max_s = retry_delay_max_s
        self._drain_timeout_s = drain_timeout_s
        self._heartbeat_s = heartbeat_s
        self._connection: AbstractRobustConnection | None = None
        self._channel: AbstractRobustChannel | None = None
        self._exchange: AbstractExchange | None = None
        self._subs: list[_Subscription] = []
        self._inflight: set[asyncio.Task[None]] = set()
        self._closing = False
        self._start_lock = asyncio.Lock()

    # --- names ---------------------------------------------------------------------------------------------

    def queue_name(self, queue: str) -> str:
        return f"{self.prefix}.{queue}"

    def dead_queue_name(self, queue: str) -> str:
        return f"{self.prefix}.{queue}.dead"

    # --- lifecycle -----------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect, declare the exchanges and attach pending subscriptions; safe to call again after a failure.

        The robust connection is built by hand (what `connect_robust` does) so that a failed or cancelled start
        closes it: otherwise its background reconnect task would outlive the attempt.
        """
        async with self._start_lock:
            if self._connection is not None and not self._connection.is_closed:
                return
            self._closing = False
            extra: dict[str, Any] = {}
            if "heartbeat" not in parse_qs(urlsplit(self._url).query):
                extra["heartbeat"] = self._heartbeat_s  # a silent network partition is noticed in ~heartbeat s
            connection = aio_pika.RobustConnection(
                aio_pika.connection.make_url(self._url, **extra),
                reconnect_interval=self._reconnect_interval_s,
                client_properties={"connection_name": f"tomato:{self.prefix}"},
            )
            coalesce_writes(connection)
            try:
                await connection.connect(timeout=self._connect_timeout_s)
                channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
                exchange = await channel.declare_exchange(
                    self.exchange_name, aio_pika.ExchangeType.TOPIC, durable=True
                )
                await channel.declare_exchange(self.dlx_name, aio_pika.ExchangeType.DIRECT, durable=True)
                self._connection, self._channel, self._exchange = connection, channel, exchange
                for sub in self._subs:
                    await self._attach(connection, sub)
            except BaseException:
                self._connection = self._channel = self._exchange = None
                await _bounded(connection.close(), 2.0)
                raise

    async def close(self) -> None:
        """Stop consuming, let running handlers finish (bounded), then close; unacked messages go back."""
        connected = await self.ping()
        self._closing = True
        for sub in self._subs:
            if connected and sub.amqp_queue is not None and sub.consumer_tag is not None:
                await _bounded(sub.amqp_queue.cancel(sub.consumer_tag), 2.0)
            sub.amqp_queue = sub.channel = None
            sub.consumer_tag = None
        if self._inflight:
            _, pending = await asyncio.wait(set(self._inflight), timeout=self._drain_timeout_s)
            for task in pending:  # never acked, so the broker redelivers them once the channel closes
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        connection, self._connection = self._connection, None
        self._channel = self._exchange = None
        if connection is not None:
            await _bounded(connection.close(), 5.0)

    async def ping(self) -> bool:
        """Readiness: True only while the connection and the publisher channel are open; never waits."""
        connection = self._connection
        if connection is None or self._closing or connection.is_closed or not connection.connected.is_set():
            return False
        transport = connection.transport
        if transport is None or transport.connection.is_closed:
            return False
        channel = self._channel
        return channel is not None and not channel.is_closed

    # --- publishing ----------------------------------------------------------------------------------------

    async def publish(self, messages: list[BusMessage]) -> set[str]:
        """Publish with a confirm window of `max_in_flight`; returns, once every message was acked or returned,
        the ids of the returned (unroutable) ones."""
        if not messages:
            return set()
        exchange, robust = self._exchange, self._channel
        if exchange is None or robust is None or not await self.ping():
            raise BusPublishError(f"RabbitMQ is not connected; {len(messages)} messages not published")
        # aiormq's own channel, publishing without `wait`: aio-pika's publish holds the channel's lock until its frame
        # has been written, one message per loop turn; here the lock is held only while the frame is queued, so a
        # batch's frames share socket writes (core.amqp_writes). Each message still waits for its confirm.
        channel = cast(aiormq.Channel, await robust.get_underlay_channel())  # its `basic_publish` takes `wait`
        window = asyncio.Semaphore(self._max_in_flight)
        confirmed = 0
        unroutable: set[str] = set()

        async def one(message: BusMessage) -> None:
            nonlocal confirmed
            async with window:
                try:
                    result = await channel.basic_publish(
                        message.body, exchange=exchange.name, routing_key=message.type, properties=_properties(message),
                        mandatory=True, timeout=self._publish_timeout_s, wait=False,
                    )  # fmt: skip
                except PublishError:  # basic.return: no queue is bound for this routing key
                    unroutable.add(message.id)
                    confirmed += 1
                    return
                except asyncio.CancelledError:
                    task = asyncio.current_task()
                    if task is not None and task.cancelling() == 0:
                        # aiormq cancels pending confirms when the channel dies: that is a failure, not a stop.
                        raise BusPublishError(f"confirm for {message.id} lost with the channel") from None
                    raise
            if not isinstance(result, Basic.Ack):
                raise BusPublishError(f"broker did not ack {message.id}: {result!r}")
            confirmed += 1

        try:
            async with asyncio.timeout(self._publish_timeout_s), asyncio.TaskGroup() as group:
                for message in messages:
                    group.create_task(one(message))
        except* Exception as failures:
            first = failures.exceptions[0]
            raise BusPublishError(
                f"{len(messages) - confirmed} of {len(messages)} messages not confirmed: {first!r}"
            ) from first
        if confirmed != len(messages):  # belt and braces: never report success without every confirm
            raise BusPublishError(f"only {confirmed} of {len(messages)} messages confirmed")
        return unroutable

    # --- consuming -----------------------------------------------------------------------------------------

    async def subscribe(self, queue: str, patterns: list[str], handler: Handler, *, prefetch: int = 100) -> None:
        """Declare `<prefix>.<queue>` (quorum, dead-lettered to `<prefix>.<queue>.dead`) and consume it.

        Before `start()` the subscription is remembered and attached when the connection comes up.
        """
        prefetch = max(1, prefetch)
        sub = _Subscription(queue, tuple(patterns), handler, prefetch, asyncio.Semaphore(prefetch))
        connection = self._connection
        if connection is not None and not connection.is_closed:
            await self._attach(connection, sub)  # raises (and records nothing) if the broker is unreachable now
        self._subs.append(sub)

    async def _attach(self, connection: AbstractRobustConnection, sub: _Subscription) -> None:
        channel = await connection.channel(publisher_confirms=False)
        try:
            await self._declare_and_consume(channel, sub)
        except BaseException:
            await _bounded(channel.close(), 2.0)  # a half-set-up robust channel would be restored later
            raise

    async def _declare_and_consume(self, channel: AbstractRobustChannel, sub: _Subscription) -> None:
        await channel.set_qos(prefetch_count=sub.prefetch)
        exchange = await channel.declare_exchange(self.exchange_name, aio_pika.ExchangeType.TOPIC, durable=True)
        dlx = await channel.declare_exchange(self.dlx_name, aio_pika.ExchangeType.DIRECT, durable=True)
        dead = await channel.declare_queue(
            self.dead_queue_name(sub.queue), durable=True, arguments={"x-queue-type": "quorum"}
        )
        await dead.bind(dlx, routing_key=sub.queue)
        work = await channel.declare_queue(
            self.queue_name(sub.queue),
            durable=True,
            arguments={
                "x-queue-type": "quorum",
                "x-dead-letter-exchange": self.dlx_name,
                "x-dead-letter-routing-key": sub.queue,
                "x-delivery-limit": BROKER_DELIVERY_LIMIT,
            },
        )
        for pattern in sub.patterns:
            await work.bind(exchange, routing_key=pattern)
        sub.consumer_tag = await work.consume(partial(self._on_delivery, sub))
        sub.channel, sub.amqp_queue = channel, work

    async def _on_delivery(self, sub: _Subscription, message: AbstractIncomingMessage) -> None:
        """Runs in aiormq's per-delivery task, which a channel close cancels: hand over to our own task."""
        if self._closing:
            return  # left unacked: the broker requeues it when the channel closes
        task = asyncio.create_task(self._handle(sub, message), name=f"bus:{sub.queue}:{message.message_id}")
        self._inflight.add(task)
        task.add_done_callback(self._inflight.discard)

    async def _handle(self, sub: _Subscription, message: AbstractIncomingMessage) -> None:
        async with sub.slots:
            event = BusMessage(
                id=message.message_id or "",
                type=message.type or message.routing_key or "",
                body=message.body,
            )
            try:
                await sub.handler(event)
            except Exception:
                await self._failed(sub, message, event)
                return
            await _settle(message.ack(), event.id, "ack")

    async def _failed(self, sub: _Subscription, message: AbstractIncomingMessage, event: BusMessage) -> None:
        delivery = _delivery_count(message) + 1
        if delivery >= self._max_deliveries:
            log.error(
                "handler for %s failed on %s (%s), delivery %d of %d; dead-lettering",
                sub.queue, event.id, event.type, delivery, self._max_deliveries, exc_info=True,
            )
            await _settle(message.reject(requeue=False), event.id, "dead-letter")
            return
        log.warning(
            "handler for %s failed on %s (%s), delivery %d of %d; redelivering",
            sub.queue, event.id, event.type, delivery, self._max_deliveries, exc_info=True,
        )
        delay = min(self._retry_delay_s * delivery, self._retry_delay_max_s)
        if delay > 0:
            await asyncio.sleep(delay)  # back-off against a hot redelivery loop; holds only this slot
        await _settle(message.reject(requeue=True), event.id, "requeue")


def _properties(message: BusMessage) -> Basic.Properties:
    """What aio-pika's `Message` would send for it: persistent JSON, the event id and type."""
    return Basic.Properties(
        content_type="application/json", headers={}, delivery_mode=2, priority=0, message_id=message.id,
        message_type=message.type,
    )  # fmt: skip


def _delivery_count(message: AbstractIncomingMessage) -> int:
    """Earlier deliveries of this message: quorum queues say so in `x-delivery-count`."""
    raw: Any = (message.headers or {}).get("x-delivery-count")
    if isinstance(raw, int):
        return raw
    return 1 if message.redelivered else 0


async def _settle(action: Awaitable[None], event_id: str, what: str) -> None:
    """An ack/reject on a channel that died meanwhile fails; the broker then redelivers, which is safe."""
    try:
        await action
    except Exception:
        log.warning("could not %s %s; the broker will redeliver it", what, event_id, exc_info=True)


async def _bounded(action: Awaitable[Any], timeout_s: float) -> None:
    """Shutdown steps must not hang on a dead broker."""
    with contextlib.suppress(Exception):
        async with asyncio.timeout(timeout_s):
            await action
