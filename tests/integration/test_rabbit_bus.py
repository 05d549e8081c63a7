"""RabbitBus against the real broker: routing, persistence, confirms, redelivery, dead-lettering, readiness.

Every exchange and queue lives under the per-test `amqp_prefix` and is deleted in teardown (after the buses are
closed, so no robust consumer re-declares a deleted queue).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import aio_pika
import pytest

from tomato.core.bus import Handler
from tomato.core.bus_rabbit import RabbitBus
from tomato.core.outbox import BusMessage

pytestmark = pytest.mark.services

CLOSED_PORT_URL = "amqp://guest:guest@127.0.0.1:1/"


class Collector:
    """Records handled messages and lets a test wait for a condition on them (event-driven, with a timeout)."""

    def __init__(self) -> None:
        self.messages: list[BusMessage] = []
        self._changed = asyncio.Event()

    async def __call__(self, message: BusMessage) -> None:
        self.add(message)

    def add(self, message: BusMessage) -> None:
        self.messages.append(message)
        self._changed.set()

    @property
    def ids(self) -> set[str]:
        return {m.id for m in self.messages}

    async def wait_until(self, predicate: Callable[[], bool], timeout_s: float = 30.0) -> None:
        async with asyncio.timeout(timeout_s):
            while not predicate():
                self._changed.clear()
                await self._changed.wait()


@dataclass
class Broker:
    url: str
    prefix: str
    buses: list[RabbitBus] = field(default_factory=list)
    queues: set[str] = field(default_factory=set)  # short names given to RabbitBus.subscribe
    raw_queues: set[str] = field(default_factory=set)  # full names declared directly by a test

    def bus(self, url: str | None = None, **kwargs: Any) -> RabbitBus:
        options: dict[str, Any] = {"reconnect_interval_s": 0.5, "retry_delay_s": 0.02}
        options.update(kwargs)
        bus = RabbitBus(url or self.url, self.prefix, **options)
        self.buses.append(bus)
        return bus

    async def subscribe(self, bus: RabbitBus, queue: str, patterns: list[str], handler: Handler) -> None:
        self.queues.add(queue)
        await bus.subscribe(queue, patterns, handler)

    async def raw_channel(self) -> tuple[aio_pika.abc.AbstractConnection, aio_pika.abc.AbstractChannel]:
        connection = await aio_pika.connect(self.url)
        return connection, await connection.channel()


@pytest.fixture
async def broker(amqp_url: str, amqp_prefix: str) -> AsyncIterator[Broker]:
    b = Broker(amqp_url, amqp_prefix)
    try:
        yield b
    finally:
        for bus in b.buses:
            await bus.close()
        names = {f"{b.prefix}.{q}" for q in b.queues} | {f"{b.prefix}.{q}.dead" for q in b.queues} | b.raw_queues
        connection = await aio_pika.connect(amqp_url)
        async with connection:
            for name in sorted(names):
                channel = await connection.channel()
                with contextlib.suppress(Exception):
                    await channel.queue_delete(name)
                with contextlib.suppress(Exception):
                    await channel.close()
            for name in (f"{b.prefix}.events", f"{b.prefix}.dlx"):
                channel = await connection.channel()
                with contextlib.suppress(Exception):
                    await channel.exchange_delete(name)
                with contextlib.suppress(Exception):
                    await channel.close()


def event(n: int, event_type: str) -> BusMessage:
    return BusMessage(id=f"E{n}", type=event_type, body=f'{{"id":"E{n}","type":"{event_type}","n":{n}}}'.encode())


async def test_publish_routes_by_topic_with_body_id_and_type_intact(broker: Broker) -> None:
    bus = broker.bus()
    await bus.start()
    pays, refunds = Collector(), Collector()
    await broker.subscribe(bus, "pays", ["pay.*"], pays)
    await broker.subscribe(bus, "refunds", ["refund.*"], refunds)

    # Sent first: if misrouted they would be delivered to "pays" before the pay events it waits for.
    noise = [event(1, "refund.succeeded"), event(2, "pay.sub.event"), event(3, "payx.succeeded")]
    wanted_pays = [event(4, "pay.succeeded"), event(5, "pay.closed")]
    await bus.publish(noise + wanted_pays)

    await pays.wait_until(lambda: len(pays.messages) >= 2)
    await refunds.wait_until(lambda: len(refunds.messages) >= 1)
    assert sorted(pays.messages, key=lambda m: m.id) == wanted_pays
    assert refunds.messages == [noise[0]]
    assert pays.messages[0].json()["n"] in (4, 5)


async def test_published_messages_are_persistent_and_labelled(broker: Broker) -> None:
    bus = broker.bus()
    await bus.start()
    connection, channel = await broker.raw_channel()
    async with connection:
        name = f"{broker.prefix}.probe"
        broker.raw_queues.add(name)
        queue = await channel.declare_queue(name, durable=True)
        await queue.bind(f"{broker.prefix}.events", routing_key="pay.succeeded")
        sent = event(7, "pay.succeeded")
        await bus.publish([sent])
        got = await queue.get(timeout=5)
        assert got.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
        assert (got.message_id, got.type, got.content_type, got.body) == (
            sent.id,
            sent.type,
            "application/json",
            sent.body,
        )
        assert got.routing_key == "pay.succeeded"
        await got.ack()


async def test_publish_raises_when_the_broker_nacks(broker: Broker) -> None:
    bus = broker.bus()
    await bus.start()
    connection, channel = await broker.raw_channel()
    async with connection:
        name = f"{broker.prefix}.full"
        broker.raw_queues.add(name)
        full = await channel.declare_queue(name, arguments={"x-max-length": 0, "x-overflow": "reject-publish"})
        await full.bind(f"{broker.prefix}.events", routing_key="nack.me")
        with pytest.raises(RuntimeError, match="not confirmed"):
            await bus.publish([event(2, "pay.succeeded"), event(3, "nack.me")])


async def test_a_message_no_queue_takes_is_reported_unroutable(broker: Broker) -> None:
    """Published mandatory: the broker returns what no queue is bound for, and publish names it."""
    bus = broker.bus()
    await bus.start()
    got = Collector()
    await broker.subscribe(bus, "pays", ["pay.#"], got)
    unroutable = await bus.publish([event(1, "pay.succeeded"), event(2, "ledger.booked"), event(3, "pay.closed")])
    assert unroutable == {"E2"}
    await got.wait_until(lambda: got.ids == {"E1", "E3"})


async def test_publish_raises_when_not_connected(broker: Broker) -> None:
    bus = broker.bus()
    with pytest.raises(RuntimeError, match="not connected"):
        await bus.publish([event(1, "pay.succeeded")])
    await bus.start()
    await bus.close()
    with pytest.raises(RuntimeError, match="not connected"):
        await bus.publish([event(2, "pay.succeeded")])


async def test_failed_handler_gets_the_message_again(broker: Broker) -> None:
    bus = broker.bus()
    await bus.start()
    calls: list[str] = []
    done = Collector()

    async def flaky(message: BusMessage) -> None:
        calls.append(message.id)
        if calls.count(message.id) == 1:
            raise RuntimeError("transient failure")
        done.add(message)

    await broker.subscribe(bus, "flaky", ["pay.#"], flaky)
    sent = event(1, "pay.succeeded")
    await bus.publish([sent])
    await done.wait_until(lambda: sent.id in done.ids)
    assert calls == [sent.id, sent.id]
    assert done.messages == [sent]


async def test_poison_message_is_dead_lettered_and_does_not_block_others(broker: Broker) -> None:
    bus = broker.bus(max_deliveries=3)
    await bus.start()
    good = Collector()
    good_seen = asyncio.Event()
    poison_attempts: list[str] = []
    blocked: list[str] = []

    async def handler(message: BusMessage) -> None:
        if message.type == "pay.poison":
            poison_attempts.append(message.id)
            # Holds its slot until the good message (published after it) was handled: with a consumer that
            # handles one message at a time the good one could not run meanwhile.
            try:
                async with asyncio.timeout(10):
                    await good_seen.wait()
            except TimeoutError:
                blocked.append(message.id)
            raise ValueError("unparseable payload")
        good.add(message)
        good_seen.set()

    await broker.subscribe(bus, "work", ["pay.*"], handler)
    poison, fine = event(1, "pay.poison"), event(2, "pay.succeeded")
    await bus.publish([poison])
    await bus.publish([fine])
    await good.wait_until(lambda: fine.id in good.ids)

    connection, channel = await broker.raw_channel()
    async with connection:
        dead = await channel.declare_queue(bus.dead_queue_name("work"), passive=True)
        async with asyncio.timeout(30), dead.iterator() as deliveries:
            async for got in deliveries:
                assert (got.message_id, got.type, got.body) == (poison.id, poison.type, poison.body)
                await got.ack()
                break
    assert blocked == []
    assert poison_attempts == [poison.id] * 3
    assert good.messages == [fine]


async def test_ping_reports_the_connection_state(broker: Broker) -> None:
    bus = broker.bus()
    assert await asyncio.wait_for(bus.ping(), timeout=3) is False  # not started
    await bus.start()
    assert await asyncio.wait_for(bus.ping(), timeout=3) is True
    await bus.close()
    assert await asyncio.wait_for(bus.ping(), timeout=3) is False


async def test_ping_is_false_when_the_broker_is_unreachable(broker: Broker) -> None:
    bus = broker.bus(CLOSED_PORT_URL)
    with pytest.raises(ConnectionError):
        await asyncio.wait_for(bus.start(), timeout=10)
    assert await asyncio.wait_for(bus.ping(), timeout=3) is False
    with pytest.raises(RuntimeError, match="not connected"):
        await bus.publish([event(1, "pay.succeeded")])


async def test_subscription_made_before_start_is_attached_on_start(broker: Broker) -> None:
    bus = broker.bus()
    got = Collector()
    await broker.subscribe(bus, "early", ["pay.*"], got)
    await bus.start()
    sent = event(1, "pay.succeeded")
    await bus.publish([sent])
    await got.wait_until(lambda: got.messages == [sent])


async def wait_for_queue(broker: Broker, name: str, *, messages: int, timeout_s: float = 15.0) -> None:
    """Polls the broker's ready count (quorum queues return a message to the queue asynchronously)."""
    connection, channel = await broker.raw_channel()
    async with connection, asyncio.timeout(timeout_s):
        while (await channel.declare_queue(name, passive=True)).declaration_result.message_count != messages:
            await asyncio.sleep(0.05)


async def test_close_lets_a_running_handler_finish_and_ack(broker: Broker) -> None:
    bus = broker.bus(drain_timeout_s=10)
    publisher = broker.bus()
    await bus.start()
    await publisher.start()
    started, release, finished = asyncio.Event(), asyncio.Event(), asyncio.Event()

    async def handler(message: BusMessage) -> None:
        started.set()
        await release.wait()
        finished.set()

    await broker.subscribe(bus, "drain", ["pay.*"], handler)
    await publisher.publish([event(1, "pay.succeeded")])
    async with asyncio.timeout(10):
        await started.wait()
    closing = asyncio.create_task(bus.close())
    # Publish probes until one stays ready in the queue: that only happens once the broker has processed
    # close()'s consumer cancel (a cancelled quorum consumer still counts as a consumer while it holds
    # unacked messages, so consumer_count cannot tell). Probes delivered before that are left unacked.
    probes = 0
    connection, channel = await broker.raw_channel()
    async with connection, asyncio.timeout(15):
        while True:
            probes += 1
            await publisher.publish([event(100 + probes, "pay.succeeded")])
            if (await channel.declare_queue(bus.queue_name("drain"), passive=True)).declaration_result.message_count:
                break
    assert not finished.is_set() and not closing.done()
    release.set()  # close() must still be waiting for the running handler rather than cancelling it
    async with asyncio.timeout(10):
        await closing
    assert finished.is_set()
    await wait_for_queue(broker, bus.queue_name("drain"), messages=probes)  # E1 acked; only probes are left
    await wait_for_queue(broker, bus.dead_queue_name("drain"), messages=0)


async def test_close_after_the_drain_timeout_requeues_instead_of_dead_lettering(broker: Broker) -> None:
    bus = broker.bus(drain_timeout_s=0.1)
    await bus.start()
    started = asyncio.Event()

    async def stuck(message: BusMessage) -> None:
        started.set()
        await asyncio.Event().wait()  # never returns; close() has to cancel it

    await broker.subscribe(bus, "stuck", ["pay.*"], stuck)
    await bus.publish([event(1, "pay.succeeded")])
    async with asyncio.timeout(10):
        await started.wait()
    await bus.close()
    await wait_for_queue(broker, bus.queue_name("stuck"), messages=1)  # back in its queue, not lost
    await wait_for_queue(broker, bus.dead_queue_name("stuck"), messages=0)
