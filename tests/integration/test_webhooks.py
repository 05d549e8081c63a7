"""Issue 6: merchant webhooks, embedded (SQLite + in-process bus) and on the services (PostgreSQL + RabbitMQ).

Everything waits on conditions (receiver requests, delivery rows) with timeouts; schedule timing is asserted only
by comparing the recorded attempt times with the (time-scaled) schedule, never against wall-clock performance.
"""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import aio_pika
from sqlalchemy import update

from tests.fixtures.notice_harness import Harness, notice_config, notice_harness
from tests.fixtures.stack import admin
from tests.fixtures.webhook_receiver import verify_webhook
from tomato.core.clock import as_utc, utcnow
from tomato.core.outbox import OutboxEvent, add_event, to_message
from tomato.merchant.schemas import AppUpdate
from tomato.notice.models import Delivery
from tomato.notice.schedule import DEFAULT_SCHEDULE, parse_schedule

SCHEDULE = parse_schedule(DEFAULT_SCHEDULE)
# (query, field named in the 422): YzE6OTk5 is a well-formed cursor of no event, YzE6eA is not a number
BAD_PAGING = [("limit=0", "limit"), ("limit=101", "limit"), ("limit=abc", "limit"), ("cursor=%%%", "cursor"),
              ("cursor=YzE6OTk5", "cursor"), ("cursor=YzE6eA", "cursor")]  # fmt: skip



# --- delivery, signature, schedule -------------------------------------------------------------------------------


async def test_event_is_delivered_signed_with_a_stable_id(hooks: Harness) -> None:
    hmac_ids = await hooks.emit(2)
    rsa_ids = await hooks.emit(1, app_id=hooks.rsa_app_id)
    await hooks.receiver.wait_until(lambda: len(hooks.receiver.received) >= 3)
    got = hooks.receiver.by_event()
    assert set(got) == set(hmac_ids + rsa_ids)
    for event_id in hmac_ids + rsa_ids:
        (req,) = got[event_id]
        assert req.body == await hooks.payload(event_id)
        assert req.headers["content-type"] == "application/json"
        assert json.loads(req.body)["id"] == event_id
        assert 16 <= len(req.headers["tomato-nonce"]) <= 64 and req.headers["tomato-nonce"].isalnum()
    assert all(verify_webhook(got[e][0], secret=hooks.secret) for e in hmac_ids)
    assert not verify_webhook(got[hmac_ids[0]][0], secret="wrong-secret")
    assert got[rsa_ids[0]][0].headers["tomato-signature"].startswith("RSA-SHA256 ")
    assert verify_webhook(got[rsa_ids[0]][0], platform_public_key_pem=await hooks.platform_pem())
    for d in await hooks.wait_status("SUCCEEDED", 3):
        (attempt,) = await hooks.attempts(d.id)
        assert attempt.http_status == 200 and attempt.succeeded and attempt.response_body == "ok"
        assert attempt.error_class is None and attempt.latency_ms >= 0
    # the relay publishing a row again (it crashed between the confirm and marking it sent): deduplicated
    async with hooks.c.db.uow() as uow:
        row = await uow.session.get_one(OutboxEvent, hmac_ids[0])
    await hooks.c.bus.publish([to_message(row)])
    async with asyncio.timeout(10):
        while hooks.runtime.consumer.handled < 4:
            await asyncio.sleep(0.02)  # polling a counter: the consumer offers nothing to wait on
    assert len(await hooks.deliveries()) == 3
    assert len(hooks.receiver.received) == 3


LATE_S = 1.5


async def test_failures_follow_the_schedule_then_succeed(backend: dict[str, Any], tmp_path: Path) -> None:
    """Acceptance 2: 500 four times then 200 → five attempts at the scaled offsets (never early, ≤ +10 % + 1.5 s)."""
    answers = iter([500, 500, 500, 500, 200])
    async with notice_harness(
        tmp_path=tmp_path, respond=lambda _r: next(answers), config=notice_config(60.0), **backend
    ) as h:
        (event_id,) = await h.emit()
        (delivery,) = await h.wait_status("SUCCEEDED", 1, timeout_s=30)
        attempts = await h.attempts(delivery.id)
    assert [a.http_status for a in attempts] == [500, 500, 500, 500, 200]
    assert [a.attempt_no for a in attempts] == [1, 2, 3, 4, 5]
    assert [a.error_class for a in attempts] == ["HTTPStatus"] * 4 + [None]
    assert [a.response_body for a in attempts] == ["nope"] * 4 + ["ok"]
    assert {r.event_id for r in h.receiver.received} == {event_id} and len(h.receiver.received) == 5
    assert delivery.attempts == 5
    for n, (before, after) in enumerate(zip(attempts, attempts[1:], strict=False)):
        finished = as_utc(before.started_at) + timedelta(milliseconds=before.latency_ms)
        gap = (as_utc(after.started_at) - finished).total_seconds()
        scheduled = SCHEDULE[n] / 60.0
        # never early; late by at most what a busy machine adds (1.5 s), which still catches a doubled delay on the
        # 3-second step (the scaled 180 s)
        assert scheduled - 0.002 <= gap <= scheduled * 1.10 + LATE_S, (n, gap, scheduled)


async def test_an_endpoint_that_never_succeeds_ends_failed_after_16_attempts_and_can_be_resent(
    backend: dict[str, Any], tmp_path: Path
) -> None:
    healthy = asyncio.Event()
    async with notice_harness(
        tmp_path=tmp_path, respond=lambda _r: 200 if healthy.is_set() else 503, config=notice_config(80000.0),
        **backend,
    ) as h:  # fmt: skip
        first, second = await h.emit(2)
        failed = await h.wait_status("FAILED", 2, timeout_s=30)
        assert {d.event_id for d in failed} == {first, second}
        assert all(d.attempts == 16 and d.next_attempt_at is None for d in failed)
        by_event = {d.event_id: d for d in failed}
        shown = (await h.admin_get(f"/admin/deliveries/{by_event[first].id}")).json()
        assert shown["status"] == "FAILED" and len(shown["attempt_log"]) == 16
        assert {a["http_status"] for a in shown["attempt_log"]} == {503}
        healthy.set()
        resent = await h.admin_post(f"/admin/deliveries/{by_event[first].id}/resend")
        assert resent.status_code == 200 and resent.json()["status"] == "PENDING"
        window = {"mch_no": h.mch_no, "from": (utcnow() - timedelta(minutes=5)).isoformat(),
                  "to": (utcnow() + timedelta(minutes=1)).isoformat()}  # fmt: skip
        bulk = await h.admin_post("/admin/deliveries/resend", window)
        assert bulk.status_code == 200 and bulk.json() == {"resent": 1}  # the other one is PENDING already
        done = await h.wait_status("SUCCEEDED", 2, timeout_s=20)
    assert all(d.attempts == 17 for d in done)
    assert [r.event_id for r in h.receiver.received].count(first) == 17


# --- what is and is not delivered ---------------------------------------------------------------------------------


async def test_event_without_any_url_is_skipped_but_listed(backend: dict[str, Any], tmp_path: Path) -> None:
    async with notice_harness(tmp_path=tmp_path, app_notify_url=False, **backend) as h:
        (event_id,) = await h.emit()
        (skipped,) = await h.wait_status("SKIPPED", 1)
        feed = await h.client.request("GET", "/v1/events")
        resend = await h.admin_post(f"/admin/deliveries/{skipped.id}/resend")
    assert skipped.event_id == event_id and skipped.url == "" and skipped.attempts == 0
    assert h.receiver.received == []
    assert [e["id"] for e in feed.json()["data"]] == [event_id]
    assert resend.status_code == 409 and resend.json()["error"]["code"] == "DELIVERY_NOT_RESENDABLE"


async def test_lost_messages_only_delay(hooks: Harness) -> None:
    """An event the bus never carried, and a delivery whose wake-up never went out, are both delivered."""
    async with hooks.c.db.uow() as uow:  # marked sent, never published: as if the message died after the confirm
        lost = add_event(uow.session, hooks.c.ids, event_type="pay.closed", aggregate_type="pay_order",
                         aggregate_id="P1", data={"order_no": "P1"}, app_id=hooks.app_id)  # fmt: skip
        lost.published_at = utcnow()
        await uow.commit()
    await hooks.receiver.wait_until(lambda: lost.id in hooks.receiver.by_event(), timeout_s=15)
    assert hooks.runtime.sweeper.recovered_events == 1
    (second,) = await hooks.emit()
    (delivered,) = [d for d in await hooks.wait_status("SUCCEEDED", 2) if d.event_id == second]
    async with hooks.c.db.uow() as uow:  # due again, but nobody enqueued a wake-up
        values = {"status": "PENDING", "next_attempt_at": utcnow()}
        await uow.session.execute(update(Delivery).where(Delivery.id == delivered.id).values(**values))
        await uow.commit()
    await hooks.receiver.wait_until(lambda: len(hooks.receiver.by_event()[second]) == 2, timeout_s=15)
    assert hooks.runtime.sweeper.requeued >= 1


# --- SSRF at delivery time --------------------------------------------------------------------------------------


async def test_loopback_urls_are_refused_at_delivery_unless_allow_listed(
    backend: dict[str, Any], tmp_path: Path
) -> None:
    async with notice_harness(tmp_path=tmp_path, config=notice_config(60.0, allowed=""), **backend) as h:
        port = h.receiver.url.rsplit(":", 1)[1]
        await h.c.merchants.update_app(h.rsa_app_id, AppUpdate(notify_url=f"http://localhost:{port}"))
        await h.emit(1)
        await h.emit(1, app_id=h.rsa_app_id)
        async with asyncio.timeout(10):
            while len([a for d in await h.deliveries() for a in await h.attempts(d.id)]) < 2:
                await asyncio.sleep(0.05)
        attempts = [a for d in await h.deliveries() for a in await h.attempts(d.id)]
    assert {a.error_class for a in attempts} == {"AddressNotAllowed"}
    assert all(a.http_status is None for a in attempts)
    assert h.receiver.received == []


# --- poison messages --------------------------------------------------------------------------------------------


async def test_a_poison_message_is_dead_lettered_without_blocking_others(
    pg_url: str, amqp_url: str, amqp_prefix: str, tmp_path: Path
) -> None:
    async with notice_harness(pg_url, tmp_path, amqp_url=amqp_url, amqp_prefix=amqp_prefix) as h:
        connection = await aio_pika.connect(amqp_url)
        try:
            channel = await connection.channel()
            work = f"{amqp_prefix}.webhooks.deliveries"
            for body in (b"not-a-delivery", b"\xff\xfe"):
                await channel.default_exchange.publish(aio_pika.Message(body, message_id=body.hex()), work)
            ids = await h.emit(3)
            await h.receiver.wait_until(lambda: set(ids) <= set(h.receiver.by_event()))
            dead = f"{amqp_prefix}.webhooks.deliveries.dead"
            async with asyncio.timeout(15):
                while (await channel.declare_queue(dead, passive=True)).declaration_result.message_count < 2:
                    await asyncio.sleep(0.1)
        finally:
            await connection.close()


# --- merchant and operator APIs ----------------------------------------------------------------------------------


async def test_events_feed_pages_oldest_first_with_the_webhook_bodies(hooks: Harness) -> None:
    ids = await hooks.emit(5)
    other = await hooks.emit(1, app_id=hooks.rsa_app_id)
    await hooks.receiver.wait_until(lambda: len(hooks.receiver.received) >= 6)
    seen: list[dict[str, Any]] = []
    cursor = None
    while True:
        path = "/v1/events?limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = await hooks.client.request("GET", path)
        assert page.status_code == 200, page.text
        seen += page.json()["data"]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            break
    assert [e["id"] for e in seen] == ids and other[0] not in {e["id"] for e in seen}
    bodies = {r.event_id: json.loads(r.body) for r in hooks.receiver.received}
    assert all(e == bodies[e["id"]] for e in seen)
    default = (await hooks.client.request("GET", "/v1/events")).json()
    assert len(default["data"]) == 5 and default["next_cursor"] is None
    for query, field in BAD_PAGING:
        r = await hooks.client.request("GET", f"/v1/events?{query}")
        assert r.status_code == 422, (query, r.text)
        assert r.json()["error"]["code"] == "INVALID_REQUEST"
        assert r.json()["error"]["details"][0]["field"] == field, query


async def test_admin_lists_filters_and_shows_deliveries(hooks: Harness) -> None:
    ids = await hooks.emit(3)
    rsa_ids = await hooks.emit(1, app_id=hooks.rsa_app_id)
    await hooks.wait_status("SUCCEEDED", 4)
    listed: list[dict[str, Any]] = []
    cursor = None
    while True:
        page = (await hooks.admin_get("/admin/deliveries", limit=3, **({"cursor": cursor} if cursor else {}))).json()
        listed += page["data"]
        if (cursor := page["next_cursor"]) is None:
            break
    assert sorted(d["event_id"] for d in listed) == sorted(ids + rsa_ids)
    seqs = [int(d["id"][1:]) for d in listed]
    assert seqs == sorted(seqs, reverse=True)  # newest delivery first
    by_app = (await hooks.admin_get("/admin/deliveries", app_id=hooks.rsa_app_id)).json()["data"]
    assert [d["event_id"] for d in by_app] == rsa_ids
    by_event = (await hooks.admin_get("/admin/deliveries", event_id=ids[1])).json()["data"]
    assert [d["event_id"] for d in by_event] == [ids[1]]
    assert (
        len((await hooks.admin_get("/admin/deliveries", mch_no=hooks.mch_no, status="SUCCEEDED")).json()["data"]) == 4
    )
    assert (await hooks.admin_get("/admin/deliveries", status="FAILED")).json() == {"data": [], "next_cursor": None}
    bad = await hooks.admin_get("/admin/deliveries", status="LOST")
    assert bad.status_code == 422 and bad.json()["error"]["details"][0]["field"] == "status"
    one = (await hooks.admin_get(f"/admin/deliveries/{by_event[0]['id']}")).json()
    assert one["attempt_log"][0]["http_status"] == 200 and one["url"] == hooks.receiver.url
    assert (await hooks.admin_get("/admin/deliveries/D1")).status_code == 404
    assert (await hooks.http.get("/admin/deliveries")).status_code == 401
    assert (await hooks.http.get("/admin/deliveries", headers=admin("finance"))).status_code == 403
