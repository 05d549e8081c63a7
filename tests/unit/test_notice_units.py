"""Pure parts of the notice context (the retry schedule, group commit) and the webhook sender's outcomes against a
real HTTP server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import random
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

from tomato.core.db import _in_transaction
from tomato.core.errors import HttpInsideTransaction
from tomato.core.settings import Settings
from tomato.notice.batching import Batcher
from tomato.notice.queues import PoisonMessage, delivery_id_of
from tomato.notice.schedule import DEFAULT_SCHEDULE, NoticeConfig, RetrySchedule, parse_schedule
from tomato.notice.sender import WebhookSender


def test_the_default_schedule_is_api_md_section_2() -> None:
    delays = parse_schedule(DEFAULT_SCHEDULE)
    minutes = [15 / 60, 15 / 60, 0.5, 3, 10, 20, 30, 30, 30, 60, 180, 180, 180, 360, 360]
    assert [d / 60 for d in delays] == minutes
    assert RetrySchedule(delays).max_attempts == 16


def test_delays_are_scaled_jittered_upwards_only_and_end() -> None:
    schedule = RetrySchedule(parse_schedule(DEFAULT_SCHEDULE), time_scale=60.0)
    rng = random.Random(7)
    for n, base in enumerate(schedule.delays_s, start=1):
        for _ in range(20):
            delay = schedule.delay_after(n, rng)
            assert delay is not None and base / 60 <= delay <= base / 60 * 1.10
    assert schedule.delay_after(16) is None and schedule.delay_after(0) is None
    assert schedule.tiers_ms() == [250, 500, 3000, 10000, 20000, 30000, 60000, 180000, 360000]
    assert RetrySchedule((0.0001,), time_scale=1000).tiers_ms() == [1]  # never rounds down to zero


@pytest.mark.parametrize("text", ["", "15,abc", "15,-1", "0"])
def test_bad_schedules_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_schedule(text)


def test_config_reads_the_settings() -> None:
    config = NoticeConfig.from_settings(Settings(webhook_time_scale=60.0, webhook_allowed_networks="127.0.0.0/8"))
    assert config.schedule.time_scale == 60.0 and [str(n) for n in config.allowed_networks] == ["127.0.0.0/8"]
    assert config.http_timeout_s == 5.0  # docs/api.md: the time scale never shortens the 5 s limit


def test_only_delivery_ids_are_accepted_from_the_queue() -> None:
    assert delivery_id_of("D385484386290896897") == "D385484386290896897"
    for raw in ("", "E123", "D12x", "D" + "1" * 30):
        with pytest.raises(PoisonMessage):
            delivery_id_of(raw)


async def test_batcher_groups_concurrent_callers_and_isolates_a_bad_item() -> None:
    batches: list[list[int]] = []

    async def run(items: Sequence[int]) -> list[int]:
        batches.append(list(items))
        if 13 in items:
            raise ValueError("bad item")
        await asyncio.sleep(0)
        return [i * 2 for i in items]

    batcher: Batcher[int, int] = Batcher(run, name="t", max_size=50, flushers=1)
    batcher.start()
    assert await batcher.submit(100) == 200 and batches == [[100]]  # an idle batcher answers at once
    results = await asyncio.gather(*(batcher.submit(i) for i in range(40)), return_exceptions=True)
    await batcher.close()
    assert [r for r in results if not isinstance(r, Exception)] == [i * 2 for i in range(40) if i != 13]
    assert isinstance(results[13], ValueError)
    assert len(batches[1]) == 40  # concurrent callers share one batch; after its failure, one by one


# --- the sender, against a real HTTP server on 127.0.0.1 ------------------------------------------------------


@dataclass
class _Server:
    """A merchant endpoint: `answer` gets the request head and returns the raw response (or sleeps)."""

    answer: Callable[[bytes], Awaitable[bytes]]
    heads: list[bytes] = field(default_factory=list)
    connections: int = 0
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/h"

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)  # fmt: skip
                await reader.readexactly(length)
                self.heads.append(head)
                writer.write(await self.answer(head))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Callable[[bytes], Awaitable[bytes]]], Awaitable[_Server]]]:
    servers: list[asyncio.Server] = []

    async def start(answer: Callable[[bytes], Awaitable[bytes]]) -> _Server:
        state = _Server(answer)
        server = await asyncio.start_server(state.serve, "127.0.0.1", 0)
        servers.append(server)
        state.port = server.sockets[0].getsockname()[1]
        return state

    yield start
    for server in servers:
        server.close()


def _reply(status: str, body: bytes = b"", extra: str = "") -> Callable[[bytes], Awaitable[bytes]]:
    async def answer(head: bytes) -> bytes:
        return f"HTTP/1.1 {status}\r\nContent-Length: {len(body)}\r\n{extra}\r\n".encode() + body

    return answer


def _sender(timeout_s: float = 5.0, allowed: str = "127.0.0.0/8") -> WebhookSender:
    return WebhookSender(allowed, timeout_s=timeout_s, connections=4)


async def test_2xx_is_success_and_only_the_first_kib_is_kept(serve: Any) -> None:
    small, big = await serve(_reply("200 OK", b"ok")), await serve(_reply("202 Accepted", b"x" * 5_000_000))
    sender = _sender()
    outcomes = [await sender.post(small.url, b"{}", {}) for _ in range(3)]
    large = await sender.post(big.url, b"{}", {})
    await sender.aclose()
    assert all(o.succeeded and o.http_status == 200 and o.response_body == "ok" for o in outcomes)
    assert small.connections == 1  # kept alive between attempts
    assert large.succeeded and large.http_status == 202 and large.response_body == "x" * 1024
    assert b"accept-encoding" not in small.heads[0].lower()  # the body comes as sent, never compressed


async def test_the_request_is_the_signed_post(serve: Any) -> None:
    server = await serve(_reply("204 No Content"))
    sender = _sender()
    outcome = await sender.post(
        server.url, b'{"id":"E1"}', {"Content-Type": "application/json", "Tomato-Event-Id": "E1"}
    )
    await sender.aclose()
    head = server.heads[0].decode().lower()
    assert outcome.succeeded and outcome.response_body == ""
    assert head.startswith("post /h http/1.1") and "content-type: application/json" in head
    assert "tomato-event-id: e1" in head and "content-length: 11" in head and f"host: 127.0.0.1:{server.port}" in head


async def test_redirects_are_not_followed_and_non_2xx_fails(serve: Any) -> None:
    target = await serve(_reply("200 OK"))
    server = await serve(_reply("302 Found", extra=f"Location: {target.url}\r\n"))
    failing = await serve(_reply("500 Internal Server Error", b"boom"))
    sender = _sender()
    redirected = await sender.post(server.url, b"{}", {})
    failed = await sender.post(failing.url, b"{}", {})
    await sender.aclose()
    assert not redirected.succeeded and redirected.http_status == 302 and redirected.error_class == "HTTPStatus"
    assert len(server.heads) == 1 and target.heads == []
    assert failed.http_status == 500 and failed.error_class == "HTTPStatus" and failed.response_body == "boom"


async def test_timeouts_and_connection_errors_are_outcomes_not_exceptions(serve: Any) -> None:
    async def slow(head: bytes) -> bytes:
        await asyncio.sleep(5)
        return b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"

    async def garbage(head: bytes) -> bytes:
        return b"SMTP ready\r\n\r\n"

    slow_server, garbage_server = await serve(slow), await serve(garbage)
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]
    sender = _sender(timeout_s=0.2)
    timed_out = await sender.post(slow_server.url, b"{}", {})
    refused = await sender.post(f"http://127.0.0.1:{closed_port}/h", b"{}", {})
    not_http = await sender.post(garbage_server.url, b"{}", {})
    unknown = await sender.post("http://no-such-host.invalid/h", b"{}", {})
    await sender.aclose()
    assert timed_out.error_class == "Timeout" and timed_out.http_status is None and not timed_out.succeeded
    assert 200 <= timed_out.latency_ms < 1000
    assert refused.error_class == "ConnectError" and refused.http_status is None and refused.error_message
    assert not_http.error_class == "ProtocolError" and not_http.http_status is None
    assert unknown.error_class == "ConnectError" and unknown.http_status is None


async def test_a_slow_body_after_a_2xx_status_line_is_still_a_success(serve: Any) -> None:
    async def trickle(head: bytes) -> bytes:
        return b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial"  # the rest never comes

    server = await serve(trickle)
    sender = _sender(timeout_s=0.2)
    outcome = await sender.post(server.url, b"{}", {})
    await sender.aclose()
    assert outcome.succeeded and outcome.http_status == 200 and outcome.response_body == "partial"


async def test_a_malformed_url_is_an_attempt_outcome() -> None:
    sender = _sender(timeout_s=1.0)
    urls = ("http://[::1", "ftp://m.example/h", "http://h:99999/", "http:///h", "http://1.2.3.4.5/")
    outcomes = [await sender.post(url, b"{}", {}) for url in urls]
    await sender.aclose()
    assert all(o.http_status is None and o.error_class and not o.succeeded for o in outcomes), outcomes


@pytest.mark.parametrize("host", ["127.0.0.1", "127.1", "2130706433", "0x7f000001", "[::ffff:127.0.0.1]", "localhost"])
async def test_loopback_is_refused_at_delivery_unless_allow_listed(serve: Any, host: str) -> None:
    server = await serve(_reply("200 OK"))
    sender = _sender(allowed="")
    outcome = await sender.post(f"http://{host}:{server.port}/h", b"{}", {})
    await sender.aclose()
    assert outcome.error_class == "AddressNotAllowed" and outcome.http_status is None
    assert server.connections == 0


async def test_no_webhook_inside_a_unit_of_work(serve: Any) -> None:
    server = await serve(_reply("200 OK"))
    sender = _sender()
    token = _in_transaction.set(True)
    try:
        with pytest.raises(HttpInsideTransaction):
            await sender.post(server.url, b"{}", {})
    finally:
        _in_transaction.reset(token)
        await sender.aclose()
    assert server.connections == 0


def test_every_scheduled_delay_lands_in_a_tier_whose_cap_covers_it() -> None:
    from tomato.notice.queues_rabbit import TIER_CAP, RabbitDeliveryQueue

    for scale in (1.0, 60.0, 80000.0):
        schedule = RetrySchedule(parse_schedule(DEFAULT_SCHEDULE), time_scale=scale)
        queue = RabbitDeliveryQueue("amqp://unused", "p", schedule.tiers_ms())  # builds names only, never connects
        for n in range(1, schedule.max_attempts):
            for jitter in schedule.jitter_steps:
                base = schedule.scaled_ms(schedule.delays_s[n - 1])
                delay = schedule.scaled_ms(schedule.delays_s[n - 1], jitter)
                for sent in (delay, max(1, delay - 50)):  # as scheduled, and minus the early-wake margin
                    tier = queue.tier_for(sent)
                    assert sent <= tier * TIER_CAP, (scale, n, sent, tier)
                    assert tier <= max(base, 1), (scale, n, sent, tier)  # never a longer tier than its own
