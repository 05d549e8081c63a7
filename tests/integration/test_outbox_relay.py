"""OutboxRelay on SQLite and PostgreSQL: publish-then-mark, no watermark, retries, and broker connection drops.

Each `db` test runs twice (embedded SQLite file, real migrated PostgreSQL). Waits are on conditions with a
timeout; nothing synchronises on a fixed sleep.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from collections.abc import AsyncIterator, Callable
from datetime import timedelta

import aio_pika
import pytest
from sqlalchemy import func, select

from tests.fixtures.rabbit import vhost_of, with_vhost
from tomato.core.bus import InProcessBus
from tomato.core.bus_rabbit import RabbitBus
from tomato.core.clock import utcnow
from tomato.core.db import Database
from tomato.core.ids import Snowflake
from tomato.core.outbox import BusMessage, OutboxEvent, add_event
from tomato.core.positions import assign_positions
from tomato.core.relay import OutboxRelay

# --- helpers ---------------------------------------------------------------------------------------------------


class Collector:
    """Handler that records messages; tests wait on a predicate over them (event-driven, with a timeout)."""

    def __init__(self) -> None:
        self.messages: list[BusMessage] = []
        self._changed = asyncio.Event()

    async def __call__(self, message: BusMessage) -> None:
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


class RecordingBus:
    """Records batches; fails the first `fail_times` publishes (nothing is delivered on a failure)."""

    name = "recording"

    def __init__(self, fail_times: int = 0) -> None:
        self.batches: list[list[str]] = []
        self.fail_times = fail_times
        self.calls = 0
        self.published = asyncio.Event()

    async def start(self) -> None:
        return None

    async def publish(self, messages: list[BusMessage]) -> set[str]:
        self.calls += 1
        if self.calls <= self.fail_times:
            raise ConnectionError("broker unavailable")
        self.batches.append([m.id for m in messages])
        self.published.set()
        return set()

    async def subscribe(self, queue: str, patterns: list[str], handler: object, *, prefetch: int = 100) -> None:
        raise NotImplementedError

    async def ping(self) -> bool:
        return True

    async def close(self) -> None:
        return None

    @property
    def ids(self) -> list[str]:
        return [i for batch in self.batches for i in batch]


async def write_events(db: Database, ids: Snowflake, n: int, event_type: str = "pay.succeeded") -> list[str]:
    async with db.uow() as uow:
        rows = [
            add_event(
                uow.session, ids, event_type=event_type, aggregate_type="order", aggregate_id=f"P{i}", data={"i": i}
            )
            for i in range(n)
        ]
        await uow.commit()
    return [r.id for r in rows]


async def unsent_ids(db: Database) -> set[str]:
    async with db.engine.connect() as conn:
        rows = await conn.execute(select(OutboxEvent.id).where(OutboxEvent.published_at.is_(None)))
        return {r.id for r in rows}


async def all_ids_by_seq(db: Database) -> list[str]:
    async with db.engine.connect() as conn:
        return [r.id for r in await conn.execute(select(OutboxEvent.id).order_by(OutboxEvent.seq))]


async def wait_until_all_sent(db: Database, timeout_s: float = 30.0) -> None:
    async with asyncio.timeout(timeout_s):
        while await unsent_ids(db):  # polling the table: the relay marks rows after its confirms
            await asyncio.sleep(0.05)


@pytest.fixture
def ids() -> Snowflake:
    return Snowflake(worker_id=1)


# --- relay with in-process / recording buses ------------------------------------------------------------------


async def test_rows_are_published_once_each_and_marked(db: Database, ids: Snowflake) -> None:
    bus = InProcessBus(redelivery_delay_s=0.01)
    got = Collector()
    await bus.subscribe("all", ["#"], got)
    written = await write_events(db, ids, 5)
    relay = OutboxRelay(db, bus)
    try:
        assert await relay.run_once() == 5
        assert await relay.run_once() == 0
        await got.wait_until(lambda: got.ids == set(written))
        assert sorted(m.id for m in got.messages) == sorted(written)  # once each
        assert await unsent_ids(db) == set()
        assert got.messages[0].json()["id"] == got.messages[0].id
    finally:
        await bus.close()


async def test_an_event_no_subscriber_takes_stays_unsent_until_one_does(db: Database, ids: Snowflake) -> None:
    bus = InProcessBus(redelivery_delay_s=0.01)
    pays = Collector()
    await bus.subscribe("pays", ["pay.#"], pays)
    paid = await write_events(db, ids, 2)
    (booked,) = await write_events(db, ids, 1, event_type="ledger.booked")
    relay = OutboxRelay(db, bus, unroutable_retry_s=0.0)
    try:
        assert await relay.run_once() == 2
        assert await unsent_ids(db) == {booked}  # published into nothing is not published
        await pays.wait_until(lambda: pays.ids == set(paid))
        ledger = Collector()
        await bus.subscribe("ledger", ["ledger.#"], ledger)
        assert await relay.run_once() == 1
        await ledger.wait_until(lambda: ledger.ids == {booked})
        assert await unsent_ids(db) == set()
    finally:
        await bus.close()


async def test_events_nobody_consumes_do_not_block_the_rows_behind_them(db: Database, ids: Snowflake) -> None:
    bus = InProcessBus(redelivery_delay_s=0.01)
    pays = Collector()
    await bus.subscribe("pays", ["pay.#"], pays)
    orphans = await write_events(db, ids, 2, event_type="ledger.booked")  # oldest: they head every selection
    paid = await write_events(db, ids, 2)
    relay = OutboxRelay(db, bus, batch_size=2, unroutable_retry_s=3600)
    try:
        assert await relay.run_once() == 0  # a whole batch nobody takes
        assert await relay.run_once() == 2  # left out of the selection now: the rows behind them go
        await pays.wait_until(lambda: pays.ids == set(paid))
        assert await relay.run_once() == 0
        assert await unsent_ids(db) == set(orphans) and relay.unroutable_total == 2
    finally:
        await bus.close()


async def test_batches_go_out_in_seq_order(db: Database, ids: Snowflake) -> None:
    await write_events(db, ids, 7)
    bus = RecordingBus()
    relay = OutboxRelay(db, bus, batch_size=3)
    assert [await relay.run_once() for _ in range(4)] == [3, 3, 1, 0]
    assert [len(b) for b in bus.batches] == [3, 3, 1]
    assert bus.ids == await all_ids_by_seq(db)


async def test_failed_publish_marks_nothing_and_the_rows_go_next_round(db: Database, ids: Snowflake) -> None:
    written = await write_events(db, ids, 4)
    bus = RecordingBus(fail_times=1)
    relay = OutboxRelay(db, bus)
    with pytest.raises(ConnectionError):
        await relay.run_once()
    assert await unsent_ids(db) == set(written)
    assert await relay.run_once() == 4
    assert sorted(bus.ids) == sorted(written)
    assert await unsent_ids(db) == set()


async def test_a_late_commit_with_a_lower_seq_is_still_published(db: Database, ids: Snowflake) -> None:
    """A row's seq is taken before its transaction commits; a watermark relay would skip it forever."""
    bus = RecordingBus()
    relay = OutboxRelay(db, bus)
    async with db.uow() as slow:
        late = add_event(
            slow.session, ids, event_type="pay.succeeded", aggregate_type="order", aggregate_id="P1", data={}
        )  # seq taken now, committed last
        early = await write_events(db, ids, 1)
        assert await relay.run_once() == 1
        assert bus.ids == early
        await slow.commit()
    assert await relay.run_once() == 1
    assert bus.ids == [*early, late.id]
    assert int(late.id[1:]) < int(early[0][1:])  # the late row really has the lower seq
    assert await unsent_ids(db) == set()


async def test_notify_wakes_an_idle_relay_and_errors_are_retried(db: Database, ids: Snowflake) -> None:
    bus = RecordingBus(fail_times=2)
    relay = OutboxRelay(db, bus, backoff_initial_s=0.01, backoff_max_s=0.05)
    stop = asyncio.Event()
    first = await write_events(db, ids, 2)
    # An hour-long poll: only notify() (or the error back-off) can make the relay act within the test timeout.
    task = asyncio.create_task(relay.run_forever(stop, poll_interval_s=3600))
    try:
        async with asyncio.timeout(10):
            await bus.published.wait()
        assert bus.ids == first and relay.failed_rounds == 2
        second = await write_events(db, ids, 3)
        relay.notify()
        async with asyncio.timeout(10):
            while set(second) - set(bus.ids):
                bus.published.clear()
                await bus.published.wait()
        assert bus.ids == first + second
    finally:
        stop.set()
        async with asyncio.timeout(5):
            await task  # stops promptly and never crashed
    assert await unsent_ids(db) == set()


async def positions(db: Database) -> dict[str, int | None]:
    async with db.engine.connect() as conn:
        return {r.id: r.position for r in await conn.execute(select(OutboxEvent.id, OutboxEvent.position))}


async def test_rows_are_numbered_for_the_feed_while_publishing_fails(db: Database, ids: Snowflake) -> None:
    """The events feed lists numbered rows only; numbering must not wait for the broker."""
    bus = RecordingBus(fail_times=10**6)
    relay = OutboxRelay(db, bus, backoff_initial_s=3600, backoff_max_s=3600)  # publishing retried only in an hour
    stop = asyncio.Event()
    first = await write_events(db, ids, 3)
    task = asyncio.create_task(relay.run_forever(stop, poll_interval_s=0.05))
    try:
        second = await write_events(db, ids, 2)
        async with asyncio.timeout(10):
            while None in (numbered := await positions(db)).values():
                await asyncio.sleep(0.02)  # polling the table: numbering has no other visible effect
    finally:
        stop.set()
        async with asyncio.timeout(5):
            await task
    assert bus.batches == [] and relay.failed_rounds == 1  # publishing failed once and is still backing off
    assert [numbered[i] for i in first + second] == [1, 2, 3, 4, 5]
    assert await unsent_ids(db) == set(first + second)


async def test_concurrent_numbering_steps_take_turns(db: Database, ids: Snowflake) -> None:
    """Relays of several processes number side by side: every position once, no gaps, no unique violation."""

    async def write_and_number() -> None:
        for _ in range(5):
            await write_events(db, ids, 3)
            await assign_positions(db, limit=4)

    await asyncio.gather(*(write_and_number() for _ in range(4)))
    while await assign_positions(db):
        pass
    assert sorted(p for p in (await positions(db)).values() if p is not None) == list(range(1, 61))


async def test_oldest_unpublished_age(db: Database, ids: Snowflake) -> None:
    relay = OutboxRelay(db, RecordingBus())
    assert await relay.oldest_unpublished_age_s() == 0.0
    async with db.uow() as uow:
        row = add_event(
            uow.session, ids, event_type="pay.succeeded", aggregate_type="order", aggregate_id="P1", data={}
        )
        row.created_at = utcnow() - timedelta(hours=1)
        await uow.commit()
    await write_events(db, ids, 1)
    assert await relay.oldest_unpublished_age_s() >= 3600
    await relay.run_once()
    assert await relay.oldest_unpublished_age_s() == 0.0


async def test_concurrent_relays_skip_rows_locked_by_another(db: Database, ids: Snowflake) -> None:
    if db.dialect != "postgresql":
        pytest.skip("FOR UPDATE SKIP LOCKED is PostgreSQL only; the embedded SQLite setup runs one relay")
    await write_events(db, ids, 10)
    entered, release = asyncio.Event(), asyncio.Event()

    class BlockingBus(RecordingBus):
        async def publish(self, messages: list[BusMessage]) -> set[str]:
            entered.set()
            await release.wait()
            return await super().publish(messages)

    slow_bus, fast_bus = BlockingBus(), RecordingBus()
    slow = asyncio.create_task(OutboxRelay(db, slow_bus, batch_size=5).run_once())
    try:
        async with asyncio.timeout(10):
            await entered.wait()
        assert await OutboxRelay(db, fast_bus, batch_size=5).run_once() == 5  # not blocked by the held locks
    finally:
        release.set()
        assert await slow == 5
    assert set(slow_bus.ids).isdisjoint(fast_bus.ids)
    assert sorted(slow_bus.ids + fast_bus.ids) == sorted(await all_ids_by_seq(db))
    assert await unsent_ids(db) == set()


@pytest.mark.services
async def test_relay_marks_nothing_sent_before_a_queue_exists(
    db: Database, ids: Snowflake, amqp_url: str, amqp_prefix: str, rabbit_cleanup: list[RabbitBus]
) -> None:
    """The relay may start before any consumer declared its queue: those events wait for the queue."""
    publisher = RabbitBus(amqp_url, amqp_prefix)
    consumer = RabbitBus(amqp_url, amqp_prefix)
    rabbit_cleanup.extend([publisher, consumer])
    await publisher.start()
    relay = OutboxRelay(db, publisher, unroutable_retry_s=0.0)
    written = await write_events(db, ids, 3)
    assert await relay.run_once() == 0
    assert await unsent_ids(db) == set(written)
    got = Collector()
    await consumer.subscribe("relay", ["pay.#"], got)
    await consumer.start()
    assert await relay.run_once() == 3
    await got.wait_until(lambda: got.ids == set(written))
    assert await unsent_ids(db) == set()


# --- relay over RabbitMQ with connection drops -------------------------------------------------------------


class TcpProxy:
    """Forwards TCP to the broker; `cut()` aborts every forwarded connection at once, like a network drop."""

    def __init__(self, host: str, port: int) -> None:
        self._target = (host, port)
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self._target)
        except OSError:
            writer.transport.abort()
            return
        self._writers |= {writer, up_writer}
        pipes = [asyncio.create_task(self._pipe(reader, up_writer)), asyncio.create_task(self._pipe(up_reader, writer))]
        self._tasks.update(pipes)
        await asyncio.gather(*pipes, return_exceptions=True)
        self._tasks.difference_update(pipes)
        self._writers -= {writer, up_writer}

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.transport.abort()

    def cut(self) -> None:
        for writer in list(self._writers):
            writer.transport.abort()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        self.cut()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()


class DroppingBus:
    """Delegates to a RabbitBus; when armed, cuts the connection while the next publish awaits its confirms."""

    name = "dropping"

    def __init__(self, inner: RabbitBus, proxy: TcpProxy) -> None:
        self.inner = inner
        self.proxy = proxy
        self.armed = False
        self.failures = 0
        self.failed = asyncio.Event()

    async def start(self) -> None:
        await self.inner.start()

    async def publish(self, messages: list[BusMessage]) -> set[str]:
        publishing = asyncio.create_task(self.inner.publish(messages))
        if self.armed:
            self.armed = False
            self.proxy.cut()  # before the reader can see a single confirm
        try:
            return await publishing
        except Exception:
            self.failures += 1
            self.failed.set()
            raise

    async def subscribe(self, queue: str, patterns: list[str], handler: object, *, prefetch: int = 100) -> None:
        raise NotImplementedError

    async def ping(self) -> bool:
        return await self.inner.ping()

    async def close(self) -> None:
        await self.inner.close()


async def close_broker_connections(name_fragment: str) -> int:
    """Broker-side close of only this test's connections (other suites may share the broker)."""

    async def rabbitmqctl(*args: str) -> str:
        proc = await asyncio.create_subprocess_exec(
            "rabbitmqctl", *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        out, err = await proc.communicate()
        assert proc.returncode == 0, err.decode()
        return out.decode()

    listing = await rabbitmqctl("list_connections", "-q", "--no-table-headers", "pid", "client_properties")
    pids = [line.split("\t", 1)[0] for line in listing.splitlines() if name_fragment in line]
    for pid in pids:
        await rabbitmqctl("close_connection", pid, "tomato test: forced connection drop")
    return len(pids)


@pytest.fixture
async def rabbit_cleanup(amqp_url: str, amqp_prefix: str) -> AsyncIterator[list[RabbitBus]]:
    buses: list[RabbitBus] = []
    try:
        yield buses
    finally:
        for bus in buses:
            await bus.close()
        connection = await aio_pika.connect(amqp_url)
        async with connection:
            for kind, name in [
                ("q", f"{amqp_prefix}.relay"),
                ("q", f"{amqp_prefix}.relay.dead"),
                ("x", f"{amqp_prefix}.events"),
                ("x", f"{amqp_prefix}.dlx"),
            ]:
                channel = await connection.channel()
                with contextlib.suppress(Exception):
                    if kind == "q":
                        await channel.queue_delete(name)
                    else:
                        await channel.exchange_delete(name)
                with contextlib.suppress(Exception):
                    await channel.close()


@pytest.mark.services
async def test_relay_loses_nothing_when_the_broker_connection_drops(
    db: Database, ids: Snowflake, amqp_url: str, amqp_prefix: str, rabbit_cleanup: list[RabbitBus]
) -> None:
    proxy = TcpProxy("127.0.0.1", int(amqp_url.rsplit(":", 1)[1].split("/", 1)[0]))
    await proxy.start()
    consumer = RabbitBus(amqp_url, amqp_prefix, reconnect_interval_s=0.3)
    publisher = RabbitBus(with_vhost(f"amqp://guest:guest@127.0.0.1:{proxy.port}/", vhost_of(amqp_url)), amqp_prefix,
                          reconnect_interval_s=0.3)  # fmt: skip
    rabbit_cleanup.extend([consumer, publisher])
    got = Collector()
    await consumer.subscribe("relay", ["pay.#"], got)
    await consumer.start()
    await publisher.start()
    bus = DroppingBus(publisher, proxy)
    relay = OutboxRelay(db, bus, batch_size=25, backoff_initial_s=0.05, backoff_max_s=0.3)
    stop = asyncio.Event()
    task = asyncio.create_task(relay.run_forever(stop, poll_interval_s=0.2))
    try:
        expected = set(await write_events(db, ids, 60))
        relay.notify()
        await got.wait_until(lambda: expected <= got.ids)

        async def keep_writing() -> set[str]:
            written: set[str] = set()
            for _ in range(20):
                written |= set(await write_events(db, ids, 10))
                relay.notify()
            return written

        bus.armed = True  # the next publish is cut while its confirms are outstanding
        writer = asyncio.create_task(keep_writing())
        async with asyncio.timeout(30):
            await bus.failed.wait()
        if shutil.which("rabbitmqctl"):
            assert await close_broker_connections(f"tomato:{amqp_prefix}") >= 1  # broker-side drop, mid-stream
        expected |= await writer
        relay.notify()
        await got.wait_until(lambda: expected <= got.ids)
        await wait_until_all_sent(db)
    finally:
        stop.set()
        async with asyncio.timeout(10):
            await task
        await proxy.close()
    assert bus.failures >= 1
    assert got.ids == expected == set(await all_ids_by_seq(db))
    async with db.engine.connect() as conn:
        unsent = (await conn.execute(select(func.count()).where(OutboxEvent.published_at.is_(None)))).scalar_one()
    assert unsent == 0
