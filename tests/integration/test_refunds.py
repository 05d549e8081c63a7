"""Issue 5: refunds through the merchant API against the in-process Alipay simulator (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from tests.conftest import truncate_all
from tests.fixtures.pay_stack import PayStack, pay_stack
from tomato.channel.adapters.alipay import signing as alipay_signing
from tomato.channel.protocol import ChannelNotify, ResultStatus
from tomato.channel.sandbox import alipay_simulator
from tomato.core.db import Database
from tomato.pay import repository as repo
from tomato.pay.models import PayOrder, Refund
from tomato.pay.service import Outcome
from tomato.pay.states import REFUND_TRANSITIONS, RefundEvent, RefundStatus, refund_target

# --- helpers ---------------------------------------------------------------------------------------------------


async def wait_for(predicate, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    async with asyncio.timeout(timeout):
        while not await predicate():
            await asyncio.sleep(0.02)


async def paid_order(pay: PayStack, amount: int = 1000, **fields: Any) -> dict[str, Any]:
    """An order the simulator's notify made SUCCEEDED."""
    r = await pay.client.create_order(amount=amount, **fields)
    assert r.status_code == 201, r.text
    order = r.json()
    assert (await pay.scan(order_no=order["order_no"], result="paid")).status_code == 200

    async def succeeded() -> bool:
        got = await pay.client.request("GET", f"/v1/pay/orders/{order['order_no']}")
        return bool(got.json()["status"] == "SUCCEEDED")

    await wait_for(succeeded)
    return (await pay.client.request("GET", f"/v1/pay/orders/{order['order_no']}")).json()  # type: ignore[no-any-return]


async def refund(pay: PayStack, order: dict[str, Any], amount: int, out_refund_no: str, **fields: Any):  # type: ignore[no-untyped-def]
    body = {"order_no": order["order_no"], "out_refund_no": out_refund_no, "amount": amount, **fields}
    return await pay.client.request("POST", "/v1/refunds", body)


async def get_order(pay: PayStack, order_no: str) -> dict[str, Any]:
    return (await pay.client.request("GET", f"/v1/pay/orders/{order_no}")).json()  # type: ignore[no-any-return]


async def events(pay: PayStack, aggregate_id: str, event_type: str) -> int:
    async with pay.c.db.engine.connect() as conn:
        return int(
            (
                await conn.execute(
                    text("SELECT count(*) FROM outbox_events WHERE aggregate_id = :a AND event_type = :t"),
                    {"a": aggregate_id, "t": event_type},
                )
            ).scalar_one()
        )


def channel_refunded(pay: PayStack, order_no: str) -> int:
    """What the simulated Alipay really gave back for the order."""
    trade = alipay_simulator(pay.sandbox).book.find_by_order_no(order_no)
    assert trade is not None
    return trade.refunded


def error_code(response) -> str:  # type: ignore[no-untyped-def]
    return str(response.json()["error"]["code"])


# --- acceptance 1 and 5, in process ----------------------------------------------------------------------------


async def test_refund_part_then_the_rest_then_nothing_more(pay: PayStack) -> None:
    order = await paid_order(pay, 1000)
    first = await refund(pay, order, 300, "rf-1", reason="damaged")
    assert first.status_code == 201, first.text
    r1 = first.json()
    assert r1["refund_no"].startswith("R") and r1["refund_no"][1:].isdigit()
    assert r1["status"] == "SUCCEEDED" and r1["amount"] == 300 and r1["order_no"] == order["order_no"]
    assert r1["failure_reason"] is None and r1["succeeded_at"] and r1["created_at"]
    assert set(r1) == {"refund_no", "order_no", "out_refund_no", "amount", "status", "channel_refund_no",
                       "failure_reason", "created_at", "succeeded_at"}  # fmt: skip
    partial = await get_order(pay, order["order_no"])
    assert (partial["refund_status"], partial["refunded_amount"]) == ("PARTIAL", 300)

    rest = await pay.client.request(
        "POST", "/v1/refunds", {"out_trade_no": order["out_trade_no"], "out_refund_no": "rf-2", "amount": 700}
    )
    assert rest.status_code == 201 and rest.json()["status"] == "SUCCEEDED", rest.text
    third = await refund(pay, order, 1, "rf-3")
    assert third.status_code == 409 and error_code(third) == "REFUND_AMOUNT_EXCEEDED"

    full = await get_order(pay, order["order_no"])
    assert (full["refund_status"], full["refunded_amount"]) == ("FULL", 1000)
    assert channel_refunded(pay, order["order_no"]) == 1000
    assert await events(pay, r1["refund_no"], "refund.succeeded") == 1
    assert await events(pay, rest.json()["refund_no"], "refund.succeeded") == 1
    got = await pay.client.request("GET", f"/v1/refunds/{r1['refund_no']}")
    assert got.status_code == 200 and got.json() == r1
    found = await pay.client.request("GET", "/v1/refunds?out_refund_no=rf-2")
    assert found.status_code == 200 and found.json() == rest.json()


async def test_the_refund_event_carries_the_refund_object_and_app(pay: PayStack) -> None:
    import json

    order = await paid_order(pay, 500)
    r = (await refund(pay, order, 200, "ev-1", notify_url="https://shop.example/refunds")).json()
    async with pay.c.db.engine.connect() as conn:
        row = (
            await conn.execute(
                text("SELECT app_id, aggregate_type, payload FROM outbox_events WHERE aggregate_id = :a"),
                {"a": r["refund_no"]},
            )
        ).one()
    assert row.app_id == pay.client.app_id and row.aggregate_type == "refund"
    body = json.loads(row.payload)
    assert body["type"] == "refund.succeeded" and body["data"] == r
    assert await pay.c.pay.refund_notify_url(r["refund_no"]) == "https://shop.example/refunds"
    other = (await refund(pay, order, 1, "ev-2")).json()
    assert await pay.c.pay.refund_notify_url(other["refund_no"]) is None  # nor on the order: the app's default


async def test_order_not_succeeded_is_a_state_conflict(pay: PayStack) -> None:
    paying = (await pay.client.create_order(amount=1000)).json()
    r = await refund(pay, paying, 100, "st-1")
    assert r.status_code == 409 and error_code(r) == "ORDER_STATE_CONFLICT"
    closed = await pay.client.request("POST", f"/v1/pay/orders/{paying['order_no']}/close", {})
    assert closed.json()["status"] == "CLOSED"
    r = await refund(pay, paying, 100, "st-2")
    assert r.status_code == 409 and error_code(r) == "ORDER_STATE_CONFLICT"
    r = await pay.client.request("GET", "/v1/refunds?out_refund_no=st-1")
    assert r.status_code == 404 and error_code(r) == "REFUND_NOT_FOUND"  # a refused refund leaves nothing


async def test_same_out_refund_no_replays_or_conflicts(pay: PayStack) -> None:
    order = await paid_order(pay, 1000)
    first = await refund(pay, order, 100, "idem-1")
    again = await refund(pay, order, 100, "idem-1")
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json() == first.json()
    other = await refund(pay, order, 101, "idem-1")
    assert other.status_code == 409 and error_code(other) == "OUT_REFUND_NO_CONFLICT"
    reason = await refund(pay, order, 100, "idem-1", reason="changed my mind")
    assert reason.status_code == 409 and error_code(reason) == "OUT_REFUND_NO_CONFLICT"
    assert channel_refunded(pay, order["order_no"]) == 100
    assert (await get_order(pay, order["order_no"]))["refunded_amount"] == 100


async def test_idempotency_key_replays_the_first_response(pay: PayStack) -> None:
    order = await paid_order(pay, 1000)
    body = {"order_no": order["order_no"], "out_refund_no": "ik-1", "amount": 100}
    first = await pay.client.request("POST", "/v1/refunds", body, extra={"Idempotency-Key": "refund-ik-1"})
    replay = await pay.client.request("POST", "/v1/refunds", body, extra={"Idempotency-Key": "refund-ik-1"})
    assert (first.status_code, replay.status_code) == (201, 201) and replay.json() == first.json()
    clash = await pay.client.request(
        "POST", "/v1/refunds", {**body, "amount": 200}, extra={"Idempotency-Key": "refund-ik-1"}
    )
    assert clash.status_code == 409 and error_code(clash) == "IDEMPOTENCY_KEY_CONFLICT"
    assert channel_refunded(pay, order["order_no"]) == 100


@pytest.mark.parametrize(
    "body",
    [
        {"out_refund_no": "v-1", "amount": 1},  # neither order reference
        {"order_no": "P1", "out_trade_no": "A1", "out_refund_no": "v-1", "amount": 1},  # both
        {"order_no": "P1", "out_refund_no": "v-1", "amount": "1"},
        {"order_no": "P1", "out_refund_no": "v-1", "amount": 1.5},
        {"order_no": "P1", "out_refund_no": "v-1", "amount": 0},
        {"order_no": "P1", "out_refund_no": "bad no!", "amount": 1},
        {"order_no": "P1", "out_refund_no": "v-1", "amount": 1, "extra": True},
        {"order_no": "P1", "out_refund_no": "v-1", "amount": 1, "notify_url": "ftp://x"},
    ],
)
async def test_invalid_requests_are_422(pay: PayStack, body: dict[str, Any]) -> None:
    r = await pay.client.request("POST", "/v1/refunds", body)
    assert r.status_code == 422 and error_code(r) == "INVALID_REQUEST", r.text


async def test_unknown_and_foreign_objects_are_404(pay: PayStack) -> None:
    order = await paid_order(pay, 1000)
    r = await pay.client.request("POST", "/v1/refunds", {"order_no": "P1", "out_refund_no": "nf-1", "amount": 1})
    assert r.status_code == 404 and error_code(r) == "ORDER_NOT_FOUND"
    r = await pay.client.request("GET", "/v1/refunds/R1")
    assert r.status_code == 404 and error_code(r) == "REFUND_NOT_FOUND"
    mine = (await refund(pay, order, 100, "nf-2")).json()
    # another app sees neither the order nor the refund
    r = await pay.rsa_client.request("POST", "/v1/refunds", {"order_no": order["order_no"], "out_refund_no": "x",
                                                             "amount": 1})  # fmt: skip
    assert r.status_code == 404 and error_code(r) == "ORDER_NOT_FOUND"
    assert (await pay.rsa_client.request("GET", f"/v1/refunds/{mine['refund_no']}")).status_code == 404
    assert (await pay.rsa_client.request("GET", "/v1/refunds?out_refund_no=nf-2")).status_code == 404


# --- failures free the amount ------------------------------------------------------------------------------------


async def test_a_rejected_refund_fails_frees_its_amount_and_is_announced(pay: PayStack) -> None:
    order = await paid_order(pay, 1000)
    await pay.faults(channel="alipay", reject_refunds=True)
    r = await refund(pay, order, 1000, "rej-1")
    assert r.status_code == 201, r.text
    failed = r.json()
    assert failed["status"] == "FAILED" and failed["failure_reason"] and failed["succeeded_at"] is None
    assert "ACQ.TRADE_NOT_ALLOW_REFUND" in failed["failure_reason"]
    assert await events(pay, failed["refund_no"], "refund.failed") == 1
    got = await get_order(pay, order["order_no"])
    assert (got["refund_status"], got["refunded_amount"]) == ("NONE", 0)
    await pay.faults(channel="alipay", reject_refunds=False)
    again = await refund(pay, order, 1000, "rej-2")  # the whole amount is refundable again
    assert again.status_code == 201 and again.json()["status"] == "SUCCEEDED"
    assert (await get_order(pay, order["order_no"]))["refund_status"] == "FULL"
    assert await pay.c.pay.query_pending_refunds() == 0  # nothing left PENDING


async def test_a_pending_refund_holds_its_amount_until_final(pay: PayStack) -> None:
    """A 5xx (outcome unknown) leaves the refund PENDING: its amount stays reserved, and it is never failed."""
    order = await paid_order(pay, 1000)
    await pay.faults(channel="alipay", error_rate=1.0)
    r = await refund(pay, order, 600, "pend-1")
    assert r.status_code == 201 and r.json()["status"] == "PENDING", r.text
    pending = r.json()
    more = await refund(pay, order, 401, "pend-2")
    assert more.status_code == 409 and error_code(more) == "REFUND_AMOUNT_EXCEEDED"
    await pay.faults(channel="alipay", error_rate=0.0)
    assert channel_refunded(pay, order["order_no"]) == 0  # the 500 came before Alipay did anything
    # never reached the channel: the job's query finds nothing, and it sends the same refund_no again
    pay.clock.advance(timedelta(seconds=31))
    assert await pay.c.pay.query_pending_refunds() == 1
    done = (await pay.client.request("GET", f"/v1/refunds/{pending['refund_no']}")).json()
    assert done["status"] == "SUCCEEDED"
    assert channel_refunded(pay, order["order_no"]) == 600
    assert await events(pay, pending["refund_no"], "refund.succeeded") == 1
    assert await pay.c.pay.query_pending_refunds() == 0


# --- policy limits -------------------------------------------------------------------------------------------------


async def test_refund_window_is_enforced(pay: PayStack) -> None:
    order = await paid_order(pay, 1000)
    later = timedelta(days=366)
    pay.clock.advance(later)
    pay.client.clock_offset = int(later.total_seconds())  # the merchant's clock moves with the server's
    r = await refund(pay, order, 100, "win-1")
    assert r.status_code == 409 and error_code(r) == "REFUND_NOT_ALLOWED"
    assert "window" in r.json()["error"]["message"]


async def test_the_window_is_configurable(pay: PayStack) -> None:
    from tomato.pay.schemas import RefundCreate
    from tomato.pay.service import RefundPolicy

    order = await paid_order(pay, 1000)
    app = await pay.c.merchants.app_auth(pay.client.app_id)
    pay.clock.advance(timedelta(days=2))
    cmd = RefundCreate(order_no=order["order_no"], out_refund_no="win-2", amount=1)
    with pytest.raises(Exception) as caught:
        await pay.c.pay.create_refund(app, cmd, RefundPolicy(window_days=1))
    assert getattr(caught.value, "code", None) == "REFUND_NOT_ALLOWED"
    view, created = await pay.c.pay.create_refund(app, cmd, RefundPolicy(window_days=3))
    assert created and view.status == "SUCCEEDED"


async def test_at_most_fifty_refunds_per_order_failed_ones_included(pay: PayStack) -> None:
    from tomato.pay.schemas import RefundCreate

    order = await paid_order(pay, 1000)
    app = await pay.c.merchants.app_auth(pay.client.app_id)
    await pay.faults(channel="alipay", reject_refunds=True)
    for i in range(10):  # refused by the channel: they count, although their amount is free again
        view, _ = await pay.c.pay.create_refund(app, RefundCreate(order_no=order["order_no"], out_refund_no=f"f{i}",
                                                                  amount=1))  # fmt: skip
        assert view.status == "FAILED"
    await pay.faults(channel="alipay", reject_refunds=False)
    for i in range(40):
        view, _ = await pay.c.pay.create_refund(app, RefundCreate(order_no=order["order_no"], out_refund_no=f"s{i}",
                                                                  amount=1))  # fmt: skip
        assert view.status == "SUCCEEDED"
    r = await refund(pay, order, 1, "one-too-many")
    assert r.status_code == 409 and error_code(r) == "REFUND_NOT_ALLOWED"
    assert (await get_order(pay, order["order_no"]))["refunded_amount"] == 40


# --- acceptance 4: a timed-out refund ------------------------------------------------------------------------------


@pytest.fixture
async def slow_pay(db_url: str, tmp_path: Path) -> AsyncIterator[PayStack]:
    """The pay stack with a channel timeout (1 s) below the simulator's stall, so `timeout_rate` times calls out."""
    async with pay_stack(db_url, tmp_path, channel_timeout_s=1.0) as stack:
        stack.sandbox.timeout_sleep_s = 30.0  # cancelled by the client's timeout; never waited for
        yield stack
        if stack.c.db.dialect == "postgresql":
            await truncate_all(stack.c.db)


def refund_notify(pay: PayStack, order_no: str, refund_no: str) -> dict[str, str]:
    """Alipay's signed trade_status_sync for a refund (out_biz_no = our refund_no, refund_fee cumulative)."""
    sim = alipay_simulator(pay.sandbox)
    trade = sim.book.find_by_order_no(order_no)
    assert trade is not None
    fields = {k: v for k, v in sim.notify_fields(trade, f"rn-{refund_no}").items() if k != "sign"}
    fields.update({"out_biz_no": refund_no, "refund_fee": f"{trade.refunded / 100:.2f}",
                   "gmt_refund": fields["notify_time"]})  # fmt: skip
    return alipay_signing.sign_notify(fields, sim._key)  # noqa: SLF001 - the test plays Alipay


async def post_alipay_notify(pay: PayStack, fields: dict[str, str]):  # type: ignore[no-untyped-def]
    from urllib.parse import urlencode

    return await pay.http.post(
        f"/callbacks/alipay/{pay.accounts['alipay']}",
        content=urlencode(fields).encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
    )


async def test_timed_out_refund_stays_pending_and_the_query_job_settles_it(slow_pay: PayStack) -> None:
    pay = slow_pay
    order = await paid_order(pay, 1000)
    await pay.faults(channel="alipay", timeout_rate=1.0)
    r = await refund(pay, order, 400, "to-1")
    await pay.faults(channel="alipay", timeout_rate=0.0)
    assert r.status_code == 201, r.text
    pending = r.json()
    assert pending["status"] == "PENDING" and pending["failure_reason"] is None
    assert channel_refunded(pay, order["order_no"]) == 400  # Alipay did it; the answer never arrived
    assert (await get_order(pay, order["order_no"]))["refunded_amount"] == 0
    assert await events(pay, pending["refund_no"], "refund.succeeded") == 0

    assert await pay.c.pay.query_pending_refunds() == 0  # not due yet: first query 30 s after creation
    pay.clock.advance(timedelta(seconds=31))
    assert await pay.c.pay.query_pending_refunds() == 1
    done = (await pay.client.request("GET", f"/v1/refunds/{pending['refund_no']}")).json()
    assert done["status"] == "SUCCEEDED" and done["succeeded_at"]
    got = await get_order(pay, order["order_no"])
    assert (got["refund_status"], got["refunded_amount"]) == ("PARTIAL", 400)
    assert channel_refunded(pay, order["order_no"]) == 400  # queried, not sent again
    assert await events(pay, pending["refund_no"], "refund.succeeded") == 1

    # duplicate notifies (signed, through the callback route, concurrently) change nothing and are acknowledged
    fields = refund_notify(pay, order["order_no"], pending["refund_no"])
    replies = await asyncio.gather(*(post_alipay_notify(pay, fields) for _ in range(10)))
    assert [x.text for x in replies] == ["success"] * 10
    pay.clock.advance(timedelta(hours=1))
    pay.client.clock_offset += 3600  # the merchant's clock moves with the server's
    assert await pay.c.pay.query_pending_refunds() == 0
    assert await events(pay, pending["refund_no"], "refund.succeeded") == 1
    assert (await get_order(pay, order["order_no"]))["refunded_amount"] == 400


async def test_a_refund_notify_settles_a_pending_refund_once(slow_pay: PayStack) -> None:
    pay = slow_pay
    order = await paid_order(pay, 1000)
    await pay.faults(channel="alipay", timeout_rate=1.0)
    pending = (await refund(pay, order, 1000, "nt-1")).json()
    await pay.faults(channel="alipay", timeout_rate=0.0)
    assert pending["status"] == "PENDING"
    fields = refund_notify(pay, order["order_no"], pending["refund_no"])
    replies = await asyncio.gather(*(post_alipay_notify(pay, fields) for _ in range(10)))
    assert [x.text for x in replies] == ["success"] * 10
    assert (await pay.client.request("GET", f"/v1/refunds/{pending['refund_no']}")).json()["status"] == "SUCCEEDED"
    assert (await get_order(pay, order["order_no"]))["refund_status"] == "FULL"
    assert await events(pay, pending["refund_no"], "refund.succeeded") == 1
    forged = {**fields, "refund_fee": "0.01"}  # signature no longer verifies
    assert (await post_alipay_notify(pay, forged)).text != "success"


async def test_refund_reports_are_checked(pay: PayStack) -> None:
    """Wrong amount, another account or an unknown refund are refused; a FAIL for a SUCCEEDED refund is flagged."""
    order = await paid_order(pay, 1000)
    done = (await refund(pay, order, 300, "chk-1")).json()
    account = pay.accounts["alipay"]

    def notify(**kw: Any) -> ChannelNotify:
        base: dict[str, Any] = {"kind": "refund", "status": ResultStatus.SUCCESS, "order_no": order["order_no"],
                                "refund_no": done["refund_no"], "amount": 300}  # fmt: skip
        return ChannelNotify(**{**base, **kw})

    assert await pay.c.pay.apply_notify(account, notify()) is Outcome.UNCHANGED
    assert await pay.c.pay.apply_notify(account, notify(amount=299)) is Outcome.REJECTED
    assert await pay.c.pay.apply_notify("CA-other", notify()) is Outcome.REJECTED
    assert await pay.c.pay.apply_notify(account, notify(refund_no="R404")) is Outcome.REJECTED
    assert await pay.c.pay.apply_notify(account, notify(order_no="P404")) is Outcome.REJECTED
    assert await pay.c.pay.apply_notify(account, notify(status=ResultStatus.FAIL)) is Outcome.UNCHANGED
    assert await pay.c.pay.apply_notify(account, notify(status=ResultStatus.WAITING)) is Outcome.UNCHANGED
    got = (await pay.client.request("GET", f"/v1/refunds/{done['refund_no']}")).json()
    assert got == done
    assert (await get_order(pay, order["order_no"]))["refunded_amount"] == 300
    async with pay.c.db.engine.connect() as conn:
        kinds = sorted((await conn.execute(text("SELECT kind FROM pay_anomalies"))).scalars().all())
    assert kinds == ["refund_amount_mismatch", "refund_failed_after_succeeded"]


# --- the state table and the guarded updates, on the database directly -----------------------------------------------


def _order_row(order_no: str, amount: int = 100) -> PayOrder:
    now = datetime.now(UTC)
    return PayOrder(
        order_no=order_no, app_id="A1", mch_no="M1", out_trade_no=order_no, request_hash="h", status="SUCCEEDED",
        paid_after_close=False, amount=amount, currency="CNY", subject="s", pay_method="ALIPAY_QR",
        channel="alipay", channel_account_id="CA1", metadata_json="{}", refunded_amount=0, refund_status="NONE",
        refund_reserved=0, refund_count=0, expire_at=now, paid_at=now, query_count=0, version=1, created_at=now,
        updated_at=now,
    )  # fmt: skip


def _refund_row(refund_no: str, status: RefundStatus) -> Refund:
    now = datetime.now(UTC)
    return Refund(
        refund_no=refund_no, order_no="P1", app_id="A1", mch_no="M1", out_refund_no=refund_no, request_hash="h",
        amount=10, status=status.value, channel="alipay", channel_account_id="CA1", query_count=0, created_at=now,
        updated_at=now,
    )  # fmt: skip


async def test_every_pair_of_refund_state_and_event(db: Database) -> None:
    pairs = list(itertools.product(RefundStatus, RefundEvent))
    async with db.uow() as uow:
        for i, (status, _) in enumerate(pairs):
            uow.session.add(_refund_row(f"R{i}", status))
        await uow.commit()
    for i, (status, event) in enumerate(pairs):
        expected = refund_target(status, event)
        async with db.uow() as uow:
            values = {"status": (expected or status).value}
            moved = await repo.refund_transition(uow.session, f"R{i}", event, values)
            again = await repo.refund_transition(uow.session, f"R{i}", event, values)
            await uow.commit()
        assert moved is (expected is not None), (status, event)
        assert again is False, (status, event)  # final states have no way out: a repeat never moves twice
    assert not [k for k in REFUND_TRANSITIONS if k[0] is not RefundStatus.PENDING]


async def test_guarded_updates_keep_the_books(db: Database) -> None:
    now = datetime.now(UTC)
    async with db.uow() as uow:
        uow.session.add(_order_row("P1", amount=100))
        await uow.commit()
    async with db.uow() as uow:
        s = uow.session
        assert await repo.reserve_refund(s, "P1", 60, 50, now)
        assert not await repo.reserve_refund(s, "P1", 41, 50, now)  # 60 + 41 > 100
        assert await repo.reserve_refund(s, "P1", 40, 50, now)
        assert not await repo.reserve_refund(s, "P1", 1, 50, now)
        assert await repo.add_refunded(s, "P1", 60, now)
        assert not await repo.release_refund(s, "P1", 41, now)  # would leave less reserved than refunded
        assert await repo.release_refund(s, "P1", 40, now)
        assert not await repo.add_refunded(s, "P1", 40, now)  # not reserved any more
        assert not await repo.reserve_refund(s, "P1", 1, 2, now)  # two refunds counted: the limit
        await uow.commit()
    async with db.uow() as uow:
        order = await repo.get(uow.session, "P1")
    assert order is not None
    assert (order.refund_reserved, order.refunded_amount, order.refund_status, order.refund_count) == (
        60, 60, "PARTIAL", 2,
    )  # fmt: skip


async def test_a_query_with_another_amount_is_refused_and_asked_again_later(slow_pay: PayStack) -> None:
    pay = slow_pay
    order = await paid_order(pay, 1000)
    await pay.faults(channel="alipay", timeout_rate=1.0)
    pending = (await refund(pay, order, 400, "mm-1")).json()
    await pay.faults(channel="alipay", timeout_rate=0.0)
    trade = alipay_simulator(pay.sandbox).book.find_by_order_no(order["order_no"])
    assert trade is not None
    trade.refunds[pending["refund_no"]].amount = 399  # the channel now reports another amount
    pay.clock.advance(timedelta(seconds=31))
    assert await pay.c.pay.query_pending_refunds() == 1
    assert (await pay.client.request("GET", f"/v1/refunds/{pending['refund_no']}")).json()["status"] == "PENDING"
    assert await pay.c.pay.query_pending_refunds() == 0  # backed off, not asked again every round
    async with pay.c.db.engine.connect() as conn:
        kinds = (await conn.execute(text("SELECT kind FROM pay_anomalies"))).scalars().all()
    assert kinds == ["refund_amount_mismatch"]
    assert (await get_order(pay, order["order_no"]))["refunded_amount"] == 0
