"""RabbitMQ delivery queue: a quorum work queue plus one TTL queue per retry delay (docs/webhooks.md).

Topology, all under `<prefix>.webhooks`:

    <p>.webhooks.events      topic exchange (a private `RabbitBus`); routing key `deliver` → work queue
    <p>.webhooks.deliveries  quorum work queue, consumed by `RabbitBus` (ack after the attempt is recorded; a
                             failing handler is retried a few times, then dead-lettered to …deliveries.dead)
    <p>.webhooks.delay.<ms>  quorum queue per delay tier: x-message-ttl = 1.1 × tier (a cap), per-message
                             expiration = the exact remaining delay, dead-lettered to `<p>.webhooks.events`
                             with routing key `deliver` → back into the work queue

Only delays of one tier share a queue, so a message waits behind another (TTL expiry happens at the head)
for at most the tier's 10 % cap. No delayed-message plugin. Messages are persistent and published with
confirms; a publish that fails is only logged by the caller, because the sweeper re-enqueues from the database.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import logging
import math
from collections.abc import Sequence

import aio_pika
from aio_pika.abc import AbstractExchange, AbstractRobustConnection

from tomato.core.amqp_writes import coalesce_writes
from tomato.core.bus_rabbit import RabbitBus
from tomato.core.outbox import BusMessage
from tomato.notice.queues import JobHandler, delivery_id_of

log = logging.getLogger(__name__)

WORK_QUEUE = "deliveries"
ROUTE = "deliver"
TIER_CAP = 1.1


class RabbitDeliveryQueue:
    name = "rabbitmq"

    def __init__(
        self,
        url: str,
        prefix: str,
        tiers_ms: Sequence[int],
        *,
        max_deliveries: int = 3,
        publish_timeout_s: float = 10.0,
    ) -> None:
        self.bus = RabbitBus(
            url, f"{prefix}.webhooks", max_deliveries=max_deliveries, max_in_flight=200, drain_timeout_s=3.0
        )
        self._url = url
        self._tiers = sorted(set(tiers_ms)) or [1000]
        self._caps = [math.ceil(t * TIER_CAP) for t in self._tiers]
        self._publish_timeout_s = publish_timeout_s
        self._connection: AbstractRobustConnection | None = None
        self._default: AbstractExchange | None = None

    def delay_queue_name(self, tier_ms: int) -> str:
        return f"{self.bus.prefix}.delay.{tier_ms}"

    @property
    def work_queue_name(self) -> str:
        return self.bus.queue_name(WORK_QUEUE)

    async def start(self) -> None:
        """Connects the work bus and the delay publisher and declares the delay tiers; safe to call again."""
        await self.bus.start()
        if self._connection is not None and not self._connection.is_closed:
            return
        connection = aio_pika.RobustConnection(
            aio_pika.connection.make_url(self._url, heartbeat=15),
            reconnect_interval=2.0,
            client_properties={"connection_name": f"tomato:{self.bus.prefix}:delays"},
        )
        coalesce_writes(connection)
        try:
            await connection.connect(timeout=5.0)
            channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
            for tier in self._tiers:  # robust channels re-declare these after a reconnect
                await channel.declare_queue(
                    self.delay_queue_name(tier),
                    durable=True,
                    arguments={
                        "x-queue-type": "quorum",
                        "x-message-ttl": math.ceil(tier * TIER_CAP),
                        "x-dead-letter-exchange": self.bus.exchange_name,
                        "x-dead-letter-routing-key": ROUTE,
                    },
                )
        except BaseException:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(connection.close(), 2.0)
            raise
        self._connection, self._default = connection, channel.default_exchange

    async def consume(self, handler: JobHandler, concurrency: int) -> None:
        async def on_message(message: BusMessage) -> None:
            await handler(delivery_id_of(message.id or message.body.decode(errors="replace")))

        await self.bus.subscribe(WORK_QUEUE, [ROUTE], on_message, prefetch=concurrency)

    async def enqueue(self, delivery_ids: Sequence[str]) -> None:
        unroutable = await self.bus.publish([BusMessage(id=d, type=ROUTE, body=d.encode()) for d in delivery_ids])
        if unroutable:  # the work queue is not declared (yet): the sweeper picks these up from the database
            raise ConnectionError(f"{len(unroutable)} deliveries reached no work queue")

    def tier_for(self, delay_ms: int) -> int:
        """The shortest tier whose cap (1.1 × tier) still covers the delay. Schedule delays land in their own
        tier; a message waits behind others there for at most the 10 % cap."""
        index = bisect.bisect_left(self._caps, delay_ms)
        return self._tiers[min(index, len(self._tiers) - 1)]

    async def enqueue_later(self, delivery_id: str, delay_s: float) -> None:
        exchange, connection = self._default, self._connection
        if exchange is None or connection is None or not connection.connected.is_set():
            raise ConnectionError("delay publisher is not connected")  # fail fast: the sweeper has it
        delay_ms = max(1, math.ceil(delay_s * 1000))
        tier = self.tier_for(delay_ms)
        message = aio_pika.Message(
            body=delivery_id.encode(),
            message_id=delivery_id,
            type=ROUTE,
            expiration=min(delay_ms, math.ceil(tier * TIER_CAP)) / 1000,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        )
        await exchange.publish(
            message, routing_key=self.delay_queue_name(tier), mandatory=True, timeout=self._publish_timeout_s
        )

    async def close(self) -> None:
        await self.bus.close()
        connection, self._connection, self._default = self._connection, None, None
        if connection is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(connection.close(), 5.0)
