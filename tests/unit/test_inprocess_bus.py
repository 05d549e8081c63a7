"""InProcessBus (the embedded backend): AMQP topic routing and redelivery after a handler error."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Callable

import pytest

from tomato.core.bus import InProcessBus, topic_matches
from tomato.core.outbox import BusMessage


class Collector:
    def __init__(self) -> None:
        self.messages: list[BusMessage] = []
        self._changed = asyncio.Event()

    async def __call__(self, message: BusMessage) -> None:
        self.add(message)

    def add(self, message: BusMessage) -> None:
        self.messages.append(message)
        self._changed.set()

    async def wait_until(self, predicate: Callable[[], bool], timeout_s: float = 10.0) -> None:
        async with asyncio.timeout(timeout_s):
            while not predicate():
                self._changed.clear()
                await self._changed.wait()


def event(n: int, event_type: str) -> BusMessage:
    return BusMessage(id=f"E{n}", type=event_type, body=b'{"n":%d}' % n)


@pytest.fixture
async def bus() -> AsyncIterator[InProcessBus]:
    b = InProcessBus(redelivery_delay_s=0.01)
    try:
        yield b
    finally:
        await b.close()


def amqp_topic_match(pattern: str, key: str) -> bool:
    """Reference semantics, word by word: `*` exactly one word, `#` zero or more."""
    pw, kw = pattern.split("."), key.split(".")

    def match(i: int, j: int) -> bool:
        if i == len(pw):
            return j == len(kw)
        if pw[i] == "#":
            return any(match(i + 1, t) for t in range(j, len(kw) + 1))
        return j < len(kw) and pw[i] in ("*", kw[j]) and match(i + 1, j + 1)

    return match(0, 0)


@pytest.mark.parametrize(
    ("pattern", "key", "expected"),
    [
        ("pay.*", "pay.succeeded", True),
        ("pay.*", "pay", False),
        ("pay.*", "pay.a.b", False),
        ("pay.*", "payx.succeeded", False),
        ("pay.#", "pay", True),
        ("pay.#", "pay.a.b", True),
        ("pay.#", "payment.a", False),
        ("#", "anything.at.all", True),
        ("*.succeeded", "refund.succeeded", True),
        ("#.succeeded", "succeeded", True),
        ("pay.#.done", "pay.done", True),
        ("pay.#.done", "pay.x.y.done", True),
        ("pay.succeeded", "pay.succeeded", True),
        ("pay.succeeded", "pay_succeeded", False),
    ],
)
def test_topic_matches(pattern: str, key: str, expected: bool) -> None:
    assert topic_matches(pattern, key) is expected


def test_topic_matches_agrees_with_amqp_semantics() -> None:
    keys = [".".join(w) for n in range(1, 5) for w in itertools.product(["a", "b"], repeat=n)]
    patterns = [".".join(w) for n in range(1, 5) for w in itertools.product(["a", "b", "*", "#"], repeat=n)]
    wrong = [(p, k) for p in patterns for k in keys if topic_matches(p, k) != amqp_topic_match(p, k)]
    assert wrong == []


def test_topic_matches_adjacent_hashes() -> None:
    assert topic_matches("#.#.a", "a")


async def test_routes_by_topic_to_each_matching_subscription(bus: InProcessBus) -> None:
    pays, refunds, everything = Collector(), Collector(), Collector()
    await bus.subscribe("pays", ["pay.*"], pays)
    await bus.subscribe("refunds", ["refund.*"], refunds)
    await bus.subscribe("all", ["#"], everything)
    sent = [event(1, "refund.succeeded"), event(2, "pay.sub.event"), event(3, "pay.succeeded"), event(4, "pay.closed")]
    await bus.publish(sent)
    await everything.wait_until(lambda: len(everything.messages) == 4)
    await pays.wait_until(lambda: len(pays.messages) == 2)
    await refunds.wait_until(lambda: len(refunds.messages) == 1)
    assert sorted(m.id for m in everything.messages) == ["E1", "E2", "E3", "E4"]
    assert sorted(m.id for m in pays.messages) == ["E3", "E4"]  # E2 has two words after "pay"
    assert refunds.messages == [sent[0]]


async def test_handler_error_redelivers_without_blocking_others(bus: InProcessBus) -> None:
    attempts: list[str] = []
    done = Collector()

    async def handler(message: BusMessage) -> None:
        attempts.append(message.id)
        if message.id == "E1" and attempts.count("E1") < 3:
            raise RuntimeError("transient failure")
        done.add(message)

    await bus.subscribe("work", ["pay.#"], handler)
    await bus.publish([event(1, "pay.succeeded"), event(2, "pay.succeeded")])
    await done.wait_until(lambda: {m.id for m in done.messages} == {"E1", "E2"})
    assert attempts.count("E1") == 3
    assert attempts.count("E2") == 1
    assert [m.body for m in done.messages if m.id == "E1"] == [b'{"n":1}']


async def test_unmatched_events_are_reported_unroutable_and_close_stops_consumers(bus: InProcessBus) -> None:
    """A message no subscription takes is not delivered, and publish says so: the relay must leave it unsent."""
    assert await bus.publish([event(1, "pay.succeeded")]) == {"E1"}  # no subscriber at all yet
    got = Collector()
    await bus.subscribe("pays", ["pay.*"], got)
    assert await bus.publish([event(2, "refund.succeeded"), event(3, "pay.succeeded")]) == {"E2"}
    await got.wait_until(lambda: len(got.messages) >= 1)
    assert [m.id for m in got.messages] == ["E3"]
    assert await bus.ping() is True
    await bus.close()
    assert bus._tasks == []
