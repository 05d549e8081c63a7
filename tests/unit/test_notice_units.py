"""Pure parts of the notice context: the retry schedule, group commit, and the webhook sender's outcomes."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence

import httpx
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
    assert config.http_timeout_s == 5.0  # API.md: the time scale never shortens the 5 s limit


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


# --- the sender --------------------------------------------------------------------------------------------------


def _sender(handler: httpx.MockTransport, timeout_s: float = 5.0) -> WebhookSender:
    return WebhookSender("", timeout_s=timeout_s, clients=2, transport_factory=lambda: handler)


async def test_2xx_is_success_and_only_the_first_kib_is_kept() -> None:
    sender = _sender(httpx.MockTransport(lambda r: httpx.Response(202, content=b"x" * 5000)))
    outcome = await sender.post("https://m.example/h", b"{}", {})
    await sender.aclose()
    assert outcome.succeeded and outcome.http_status == 202 and outcome.response_body == "x" * 1024


async def test_redirects_are_not_followed_and_non_2xx_fails() -> None:
    calls: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        calls.append(str(request.url))
        return httpx.Response(302, headers={"Location": "http://127.0.0.1/admin"})

    sender = _sender(httpx.MockTransport(answer))
    outcome = await sender.post("https://m.example/h", b"{}", {})
    await sender.aclose()
    assert not outcome.succeeded and outcome.http_status == 302 and outcome.error_class == "HTTPStatus"
    assert calls == ["https://m.example/h"]


async def test_timeouts_and_connection_errors_are_outcomes_not_exceptions() -> None:
    async def slow(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(1)
        return httpx.Response(200)

    def refused(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    sender = _sender(httpx.MockTransport(slow), timeout_s=0.05)
    timed_out = await sender.post("https://m.example/h", b"{}", {})
    await sender.aclose()
    sender = _sender(httpx.MockTransport(refused))
    failed = await sender.post("https://m.example/h", b"{}", {})
    await sender.aclose()
    assert timed_out.error_class == "Timeout" and timed_out.http_status is None and not timed_out.succeeded
    assert failed.error_class == "ConnectError" and "refused" in (failed.error_message or "")


async def test_a_malformed_url_is_an_attempt_outcome() -> None:
    sender = WebhookSender("", timeout_s=1.0, clients=1)
    outcomes = [await sender.post(url, b"{}", {}) for url in ("http://[::1", "ftp://m.example/h", "http://h:99999/")]
    await sender.aclose()
    assert all(o.http_status is None and o.error_class and not o.succeeded for o in outcomes)


async def test_no_webhook_inside_a_unit_of_work() -> None:
    sender = _sender(httpx.MockTransport(lambda r: httpx.Response(200)))
    token = _in_transaction.set(True)
    try:
        with pytest.raises(HttpInsideTransaction):
            await sender.post("https://m.example/h", b"{}", {})
    finally:
        _in_transaction.reset(token)
        await sender.aclose()


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
