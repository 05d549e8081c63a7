"""Payouts through the merchant API against the in-process bank simulator (SQLite and PostgreSQL), issue 17.

The merchant is funded with a ledger entry (`tests.fixtures.ledger.fund_available`); the simulator pays or
rejects asynchronously and notifies the platform's callback route, as the real bank would.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from tests.conftest import truncate_all
from tests.fixtures.ledger import fund_available, merchant_balances
from tests.fixtures.notice_harness import Harness
from tests.fixtures.pay_stack import PayStack, pay_stack
from tests.fixtures.webhook_receiver import verify_webhook
from tomato.account.payouts import entries
from tomato.account.payouts.schemas import BankAccount, PayoutCreate
from tomato.account.payouts.service import FINAL_TIMEOUT
from tomato.channel.adapters.bank import codec, signing
from tomato.channel.protocol import ChannelNotify, ResultStatus
from tomato.channel.sandbox import bank_simulator
from tomato.channel.sandbox.bank_payouts import PAYOUT_REJECT_CODE
from tomato.core.money import MAX_FEN

ACCOUNT = {"name": "张三", "number": "6216261000000000018", "bank": "Bank of Tests"}


async def wait_for(predicate: Callable[[], Awaitable[bool]], timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not await predicate():
            await asyncio.sleep(0.02)


async def mch_no(pay: PayStack) -> str:
    return (await pay.c.merchants.app_auth(pay.client.app_id)).mch_no


async def funded(pay: PayStack, amount: int) -> str:
    mch = await mch_no(pay)
    await fund_available(pay.c.db, pay.c.ids, mch, amount)
    return mch


async def create(pay: PayStack, out_payout_no: str, amount: int, **fields: Any):  # type: ignore[no-untyped-def]
    body = {"out_payout_no": out_payout_no, "amount": amount, "bank_account": dict(ACCOUNT), **fields}
    return await pay.client.request("POST", "/v1/payouts", body)


async def get(pay: PayStack, payout_no: str) -> dict[str, Any]:
    r = await pay.client.request("GET", f"/v1/payouts/{payout_no}")
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


async def final(pay: PayStack, payout_no: str) -> dict[str, Any]:
    async def done() -> bool:
        return (await get(pay, payout_no))["status"] != "PENDING"

    await wait_for(done)
    return await get(pay, payout_no)


async def outbox(pay: PayStack, aggregate_id: str, event_type: str) -> list[dict[str, Any]]:
    async with pay.c.db.engine.connect() as conn:
        rows = await conn.execute(
            text("SELECT payload FROM outbox_events WHERE aggregate_id = :a AND event_type = :t"),
            {"a": aggregate_id, "t": event_type},
        )
        return [json.loads(r[0]) for r in rows]


async def count(pay: PayStack, sql: str, **params: Any) -> int:
    async with pay.c.db.engine.connect() as conn:
        return int((await conn.execute(text(sql), params)).scalar_one())


def code(response) -> str:  # type: ignore[no-untyped-def]
    return str(response.json()["error"]["code"])


# --- the happy path and the bank's refusal ---------------------------------------------------------------------


async def test_payout_succeeds_and_leaves_available(pay: PayStack) -> None:
    mch = await funded(pay, 100_000)
    r = await create(pay, "WD-1", 50_000)
    assert r.status_code == 201, r.text
    payout = r.json()
    assert set(payout) == {"payout_no", "out_payout_no", "amount", "status", "created_at", "finished_at",
                           "failure_reason"}  # fmt: skip
    assert payout["payout_no"].startswith("W") and payout["status"] in ("PENDING", "SUCCEEDED")
    assert (payout["out_payout_no"], payout["amount"]) == ("WD-1", 50_000)

    done = await final(pay, payout["payout_no"])
    assert (done["status"], done["failure_reason"]) == ("SUCCEEDED", None)
    assert done["finished_at"] is not None
    assert await merchant_balances(pay.c.db, mch) == {"available": 50_000, "in_transit": 0}
    [event] = await outbox(pay, payout["payout_no"], "payout.succeeded")
    assert event["data"] == done
    [made] = bank_simulator(pay.sandbox).payouts()
    assert (made.order_id, made.amount, made.acc_no, made.name) == (
        payout["payout_no"],
        50_000,
        ACCOUNT["number"],
        "张三",
    )
    legs = await count(pay, "SELECT count(*) FROM ledger_journals WHERE source_id = :p", p=payout["payout_no"])
    assert legs == 2  # hold + post


async def test_rejected_payout_fails_and_the_amount_returns(pay: PayStack) -> None:
    mch = await funded(pay, 100_000)
    assert (await pay.faults(channel="bank", reject_payouts=True)).status_code == 200
    r = await create(pay, "WD-2", 60_000)
    assert r.status_code == 201, r.text
    done = await final(pay, r.json()["payout_no"])
    assert done["status"] == "FAILED"
    assert done["failure_reason"].startswith(PAYOUT_REJECT_CODE)
    assert await merchant_balances(pay.c.db, mch) == {"available": 100_000, "in_transit": 0}
    [event] = await outbox(pay, done["payout_no"], "payout.failed")
    assert event["data"] == done
    assert await outbox(pay, done["payout_no"], "payout.succeeded") == []


async def test_a_definite_refusal_before_sending_fails_at_once(pay: PayStack) -> None:
    """Unknown outcomes leave payouts PENDING; once they open the bank account's breaker, nothing reaches the
    bank, so the next payout fails at once and its hold is voided."""
    mch = await funded(pay, 10_000)
    await pay.faults(channel="bank", error_rate=1.0)  # HTTP 500: outcome unknown, counted by the breaker
    fail_max = pay.c.settings.breaker_fail_max
    for i in range(fail_max):
        r = await create(pay, f"WD-3-{i}", 100)
        assert (r.status_code, r.json()["status"]) == (201, "PENDING"), r.text
    await pay.c.channels.breakers.drain()
    r = await create(pay, "WD-3", 1_000)
    assert r.status_code == 201, r.text
    assert r.json()["status"] == "FAILED" and r.json()["failure_reason"].startswith("BREAKER_OPEN")
    assert await merchant_balances(pay.c.db, mch) == {
        "available": 10_000 - 100 * fail_max,
        "in_transit": 100 * fail_max,
    }
    assert len(await outbox(pay, r.json()["payout_no"], "payout.failed")) == 1


# --- balance, replays, conflicts ----------------------------------------------------------------------------------


async def test_insufficient_balance_writes_nothing(pay: PayStack) -> None:
    mch = await funded(pay, 1_000)
    r = await create(pay, "WD-4", 1_001)
    assert (r.status_code, code(r)) == (409, "INSUFFICIENT_BALANCE")
    assert await count(pay, "SELECT count(*) FROM payouts") == 0
    assert await count(pay, "SELECT count(*) FROM ledger_journals WHERE source_type = 'payout'") == 0
    assert await merchant_balances(pay.c.db, mch) == {"available": 1_000, "in_transit": 0}
    missing = await pay.client.request("GET", "/v1/payouts?out_payout_no=WD-4")
    assert (missing.status_code, code(missing)) == (404, "PAYOUT_NOT_FOUND")
    assert bank_simulator(pay.sandbox).payouts() == []


async def test_no_balance_at_all_is_insufficient(pay: PayStack) -> None:
    r = await create(pay, "WD-5", 1)
    assert (r.status_code, code(r)) == (409, "INSUFFICIENT_BALANCE")


async def test_replay_answers_the_same_payout_and_a_different_request_conflicts(pay: PayStack) -> None:
    mch = await funded(pay, 10_000)
    first = await create(pay, "WD-6", 3_000)
    assert first.status_code == 201
    again = await create(pay, "WD-6", 3_000)
    assert again.status_code == 200, again.text
    assert again.json()["payout_no"] == first.json()["payout_no"]
    other = await create(pay, "WD-6", 3_001)
    assert (other.status_code, code(other)) == (409, "OUT_PAYOUT_NO_CONFLICT")
    other_account = await create(pay, "WD-6", 3_000, bank_account={**ACCOUNT, "bank": "Another"})
    assert (other_account.status_code, code(other_account)) == (409, "OUT_PAYOUT_NO_CONFLICT")
    await final(pay, first.json()["payout_no"])
    assert await merchant_balances(pay.c.db, mch) == {"available": 7_000, "in_transit": 0}
    assert len(bank_simulator(pay.sandbox).payouts()) == 1


async def test_reads_by_number_and_out_payout_no_and_404s(pay: PayStack) -> None:
    await funded(pay, 10_000)
    made = (await create(pay, "WD-7", 2_000)).json()
    by_out = await pay.client.request("GET", "/v1/payouts?out_payout_no=WD-7")
    assert by_out.status_code == 200 and by_out.json()["payout_no"] == made["payout_no"]
    for path in ("/v1/payouts/W123", "/v1/payouts?out_payout_no=nope"):
        r = await pay.client.request("GET", path)
        assert (r.status_code, code(r)) == (404, "PAYOUT_NOT_FOUND")
    other_app = await pay.rsa_client.request("GET", f"/v1/payouts/{made['payout_no']}")
    assert (other_app.status_code, code(other_app)) == (404, "PAYOUT_NOT_FOUND")


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"bank_account": {**ACCOUNT, "number": "1234567"}}, "number"),
        ({"bank_account": {**ACCOUNT, "number": "1" * 33}}, "number"),
        ({"bank_account": {**ACCOUNT, "number": "62162610000000000１8"}}, "number"),
        ({"bank_account": {**ACCOUNT, "number": 62162610000000000}}, "number"),
        ({"bank_account": {**ACCOUNT, "name": "x" * 65}}, "name"),
        ({"bank_account": {**ACCOUNT, "name": ""}}, "name"),
        ({"bank_account": {**ACCOUNT, "bank": "b" * 65}}, "bank"),
        ({"bank_account": {**ACCOUNT, "name": "a\x00b"}}, "name"),
        ({"bank_account": {"name": "x", "number": "12345678"}}, "bank"),
        ({"amount": 0}, "amount"),
        ({"amount": -5}, "amount"),
        ({"amount": MAX_FEN + 1}, "amount"),
        ({"amount": "100"}, "amount"),
        ({"amount": 10.5}, "amount"),
        ({"out_payout_no": "bad no"}, "out_payout_no"),
        ({"extra": 1}, "extra"),
    ],
)
async def test_bad_input_is_422_naming_the_field(pay: PayStack, change: dict[str, Any], field: str) -> None:
    body = {"out_payout_no": "WD-8", "amount": 100, "bank_account": dict(ACCOUNT), **change}
    r = await pay.client.request("POST", "/v1/payouts", body)
    assert (r.status_code, code(r)) == (422, "INVALID_REQUEST"), r.text
    assert any(field in d["field"] for d in r.json()["error"]["details"]), r.json()
    assert await count(pay, "SELECT count(*) FROM payouts") == 0


# --- the bank's notify and the query job -----------------------------------------------------------------------


async def test_a_dropped_notify_is_made_up_by_the_query_job(pay: PayStack) -> None:
    mch = await funded(pay, 10_000)
    await pay.faults(channel="bank", drop_notify=True)
    payout = (await create(pay, "WD-9", 4_000)).json()
    await pay.sandbox.notifier.drain()  # the bank has paid it; nobody told us
    assert (await get(pay, payout["payout_no"]))["status"] == "PENDING"
    pay.clock.advance(timedelta(minutes=5))
    assert await pay.c.payouts.query_pending() == 1
    done = await get(pay, payout["payout_no"])
    assert done["status"] == "SUCCEEDED"
    assert await merchant_balances(pay.c.db, mch) == {"available": 6_000, "in_transit": 0}
    assert len(await outbox(pay, payout["payout_no"], "payout.succeeded")) == 1


async def test_an_unanswered_payout_is_voided_after_the_final_timeout(pay: PayStack) -> None:
    mch = await funded(pay, 10_000)
    await pay.faults(channel="bank", error_rate=1.0)  # every bank call: HTTP 500, outcome unknown
    payout = (await create(pay, "WD-10", 4_000)).json()
    assert payout["status"] == "PENDING"
    assert await merchant_balances(pay.c.db, mch) == {"available": 6_000, "in_transit": 4_000}
    assert await pay.c.payouts.pending_by_merchant() == {mch: 4_000}  # what the ledger check compares
    pay.clock.advance(timedelta(minutes=5))
    await pay.c.payouts.query_pending()
    assert await merchant_balances(pay.c.db, mch) == {"available": 6_000, "in_transit": 4_000}
    pay.clock.advance(FINAL_TIMEOUT / pay.c.payouts.deps.time_scale)
    await pay.c.payouts.query_pending()
    async with pay.c.db.engine.connect() as conn:
        status, reason = (
            await conn.execute(text("SELECT status, failure_reason FROM payouts WHERE payout_no = :p"),
                               {"p": payout["payout_no"]})
        ).one()  # fmt: skip
    assert status == "FAILED" and reason.startswith("TIMEOUT")
    assert await merchant_balances(pay.c.db, mch) == {"available": 10_000, "in_transit": 0}
    assert len(await outbox(pay, payout["payout_no"], "payout.failed")) == 1
    assert await pay.c.payouts.pending_by_merchant() == {}


async def test_a_duplicate_notify_books_once(pay: PayStack) -> None:
    mch = await funded(pay, 10_000)
    await pay.faults(channel="bank", duplicate_notify=3)
    payout = (await create(pay, "WD-11", 1_000)).json()
    await final(pay, payout["payout_no"])
    await pay.sandbox.notifier.drain()
    assert await merchant_balances(pay.c.db, mch) == {"available": 9_000, "in_transit": 0}
    assert len(await outbox(pay, payout["payout_no"], "payout.succeeded")) == 1


async def bank_notify(pay: PayStack, order_id: str, amount: int, resp_code: str = "00") -> int:
    """A payout back-notify signed with the simulated bank's own key, posted to the callback route; its status."""
    sim = bank_simulator(pay.sandbox)
    fields = {
        "version": codec.VERSION, "encoding": codec.ENCODING, "signMethod": codec.SIGN_METHOD_RSA,
        "txnType": "12", "txnSubType": "00", "bizType": "000401", "accessType": "0",
        "merId": next(iter(sim.book.merchants)), "orderId": order_id, "txnTime": "20261206150000",
        "txnAmt": str(amount), "respCode": resp_code, "respMsg": "ok", "queryId": "123", "currencyCode": "156",
    }  # fmt: skip
    signed = signing.sign_fields(fields, sim._key, sim.cert_id)  # noqa: SLF001 - the bank's own key
    r = await pay.http.post(
        f"/callbacks/bank/{pay.accounts['bank']}",
        content=codec.encode_form(signed),
        headers={"Content-Type": codec.FORM_CONTENT_TYPE},
    )
    return r.status_code


async def test_a_notify_for_an_unknown_payout_or_another_amount_is_refused_in_the_banks_form(pay: PayStack) -> None:
    mch = await funded(pay, 10_000)
    await pay.faults(channel="bank", drop_notify=True)
    payout = (await create(pay, "WD-12", 5_000)).json()
    assert await bank_notify(pay, "W999999999999", 100) == 400
    assert await bank_notify(pay, payout["payout_no"], 5_001) == 400
    assert (await get(pay, payout["payout_no"]))["status"] == "PENDING"
    assert await bank_notify(pay, payout["payout_no"], 5_000, PAYOUT_REJECT_CODE) == 200
    assert (await get(pay, payout["payout_no"]))["status"] == "FAILED"
    assert await bank_notify(pay, payout["payout_no"], 5_000) == 200  # a late success: acknowledged, stays FAILED
    assert (await get(pay, payout["payout_no"]))["status"] == "FAILED"
    assert await merchant_balances(pay.c.db, mch) == {"available": 10_000, "in_transit": 0}


# --- acceptance 4: 20 concurrent payouts of 60 % of available, on PostgreSQL -------------------------------------


async def test_twenty_concurrent_payouts_never_overdraw(pg_url: str, tmp_path: Path) -> None:
    async with pay_stack(pg_url, tmp_path) as pay:
        try:
            mch = await funded(pay, 100_000)
            results = await asyncio.gather(*(create(pay, f"WD-C{i}", 60_000) for i in range(20)))
            statuses = sorted(r.status_code for r in results)
            accepted = [r for r in results if r.status_code == 201]
            assert all(r.status_code in (201, 409) for r in results), statuses
            assert all(code(r) == "INSUFFICIENT_BALANCE" for r in results if r.status_code == 409)
            assert sum(r.json()["amount"] for r in accepted) <= 100_000
            assert len(accepted) == 1
            await pay.sandbox.notifier.drain()
            await final(pay, accepted[0].json()["payout_no"])
            got = await merchant_balances(pay.c.db, mch)
            assert got == {"available": 40_000, "in_transit": 0}
            negative = await count(
                pay,
                "SELECT count(*) FROM ledger_balances WHERE account_type IN ('merchant_available', "
                "'payout_in_transit') AND balance > 0",
            )
            assert negative == 0  # credit-normal accounts: a raw balance above 0 would be a negative figure
            assert await count(pay, "SELECT count(*) FROM payouts") == 1
        finally:
            await truncate_all(pay.c.db)


# --- webhooks: payout.* reach the app's default notify_url and the events feed -----------------------------------


async def test_payout_events_are_delivered_to_the_apps_default_url_and_listed(hooks: Harness) -> None:
    """Held as `create` holds it, then finished by the bank's notify (no bank in this harness: the notify is
    handed to the service as the callback route hands it)."""
    await fund_available(hooks.c.db, hooks.c.ids, hooks.mch_no, 10_000)
    app = await hooks.c.merchants.app_auth(hooks.app_id)
    svc = hooks.c.payouts
    made = []
    for out_no, amount in (("WH-1", 3_000), ("WH-2", 2_000)):
        cmd = PayoutCreate(out_payout_no=out_no, amount=amount, bank_account=BankAccount(**ACCOUNT))
        payout = svc._new(app, cmd, cmd.request_hash(), "CA-harness")
        async with hooks.c.db.uow() as uow:
            uow.session.add(payout)
            await uow.flush()
            await entries.hold(uow.session, hooks.c.ids, hooks.c.clock.now(), "Asia/Shanghai", payout)
            await uow.commit()
        made.append(payout)
    paid, refused = made
    ok = ChannelNotify("payout", ResultStatus.SUCCESS, paid.payout_no, payout_no=paid.payout_no, amount=3_000)
    no = ChannelNotify(
        "payout", ResultStatus.FAIL, refused.payout_no, payout_no=refused.payout_no, amount=2_000, failure_reason="30"
    )
    assert not await svc.apply_notify("CA-other", ok)  # another account's notify changes nothing
    assert await svc.apply_notify("CA-harness", ok) and await svc.apply_notify("CA-harness", no)
    await hooks.receiver.wait_until(lambda: len(hooks.receiver.received) >= 2)
    bodies = {json.loads(r.body)["type"]: json.loads(r.body) for r in hooks.receiver.received}
    assert bodies["payout.succeeded"]["data"]["payout_no"] == paid.payout_no
    assert bodies["payout.succeeded"]["data"]["status"] == "SUCCEEDED"
    assert (bodies["payout.failed"]["data"]["status"], bodies["payout.failed"]["data"]["failure_reason"]) == (
        "FAILED",
        "30",
    )
    assert all(verify_webhook(r, secret=hooks.secret) for r in hooks.receiver.received)
    assert await merchant_balances(hooks.c.db, hooks.mch_no) == {"available": 7_000, "in_transit": 0}
    async with asyncio.timeout(10):
        while True:
            feed = (await hooks.client.request("GET", "/v1/events")).json()["data"]
            if len(feed) == 2:
                break
            await asyncio.sleep(0.05)  # the feed lists events once the relay numbered them
    assert {e["type"] for e in feed} == {"payout.succeeded", "payout.failed"}
