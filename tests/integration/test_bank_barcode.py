"""Bank barcode pay (付款码, UnionPay's payer-presented QR consume) between BankAdapter and the bank simulator.

In process (adapter ↔ simulator over ASGI, notifies to a receiver that verifies them with the adapter), with a
frozen sandbox clock the tests advance: the payer's confirmation is a matter of the clock, never of sleeping.
There is no independent UnionPay SDK: the wire is checked against the documented field list with a hand-written
ACP signer (hex SHA-256 of the sorted content, RSA-SHA256 of that), and every simulator answer is verified both
with the bank codec's own verify and with that hand-written one.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from tests.integration import test_bank_sandbox
from tests.integration.test_bank_sandbox import (
    CERT_ID,
    MER_ID,
    NOTIFY_URL,
    SANDBOX,
    Receiver,
    TimeoutASGITransport,
    bank_config,
)
from tomato.channel.adapters.bank import BankAdapter, codec, parse_config, signing
from tomato.channel.http import guarded_client
from tomato.channel.protocol import CreateRequest, ErrorClass, RefundRequest, ResultStatus, TradeRef
from tomato.channel.sandbox import SandboxState, create_sandbox_app
from tomato.channel.sandbox.bank import BACK_PATH, QUERY_PATH, BankSimulator
from tomato.core.clock import FrozenClock
from tomato.core.crypto import load_public_key, public_key_pem

keys = test_bank_sandbox.keys
START = datetime(2026, 12, 6, 5, 0, 0, tzinfo=UTC)  # 13:00:00 in Beijing


@dataclass
class Env:
    state: SandboxState
    clock: FrozenClock
    sim: BankSimulator
    adapter: BankAdapter
    payer: httpx.AsyncClient
    receiver: Receiver

    async def code(self, behaviour: str = "pay", channel: str = "bank", **extra: Any) -> str:
        response = await self.payer.post(
            "/sandbox/barcodes", json={"channel": channel, "behaviour": behaviour, **extra}
        )
        assert response.status_code == 200, response.text
        return str(response.json()["auth_code"])

    def request(self, order_no: str, auth_code: str, amount: int = 2500) -> CreateRequest:
        return CreateRequest(
            order_no=order_no,
            amount=amount,
            subject="便利店",
            pay_method="BARCODE",
            notify_url=NOTIFY_URL,
            expire_at=START + timedelta(minutes=5),
            created_at=START,
            auth_code=auth_code,
        )

    def ref(self, order_no: str) -> TradeRef:
        return TradeRef(order_no, created_at=START, pay_method="BARCODE")

    async def faults(self, **body: Any) -> None:
        response = await self.payer.post("/sandbox/faults", json={"channel": "bank", **body})
        assert response.status_code == 200, response.text


@pytest.fixture
async def env(keys: dict[str, rsa.RSAPrivateKey]) -> AsyncIterator[Env]:
    receiver = Receiver()
    clock = FrozenClock(START)
    state = SandboxState(time_scale=1_000_000, clock=clock, notify_transport=httpx.ASGITransport(app=receiver.app()))
    sim = BankSimulator(state, private_key=keys["bank"])
    sim.register_merchant(MER_ID, CERT_ID, public_key_pem(keys["merchant"]))
    app = create_sandbox_app(state)
    transport = TimeoutASGITransport(httpx.ASGITransport(app=app), timeout_s=5.0)
    async with (
        guarded_client(5.0, transport=transport) as http,
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=SANDBOX) as payer,
    ):
        adapter = BankAdapter(parse_config(bank_config(keys, sim)), http)
        receiver.adapter = adapter
        yield Env(state, clock, sim, adapter, payer, receiver)
        await state.aclose()


# --- behaviours ------------------------------------------------------------------------------------------


async def test_the_adapter_offers_barcode_pay(env: Env) -> None:
    assert "BARCODE" in env.adapter.pay_methods and "BANK_WEB" in env.adapter.pay_methods


async def test_pay_is_paid_in_the_create_call_and_notified(env: Env) -> None:
    paid = await env.adapter.create(env.request("B20261206000001", await env.code("pay")))
    assert (paid.status, paid.amount, paid.code) == (ResultStatus.SUCCESS, 2500, "00"), paid
    assert paid.channel_trade_no and paid.paid_at == START
    await env.state.notifier.drain()
    [notify] = env.receiver.notifies
    assert (notify.kind, notify.status, notify.order_no, notify.amount) == (
        "payment",
        ResultStatus.SUCCESS,
        "B20261206000001",
        2500,
    )
    assert (notify.channel_trade_no, notify.paid_at) == (paid.channel_trade_no, START)
    assert notify.raw["txnSubType"] == "06" and "qrNo" not in notify.raw
    found = await env.adapter.query(env.ref("B20261206000001"))
    assert (found.status, found.channel_trade_no, found.amount) == (ResultStatus.SUCCESS, paid.channel_trade_no, 2500)


async def test_confirm_after_is_waiting_then_paid_when_the_payer_confirmed(env: Env) -> None:
    code = await env.code("confirm_after", confirm_after_s=10)
    first = await env.adapter.create(env.request("B20261206000002", code))
    assert (first.status, first.code) == (ResultStatus.WAITING, "05"), first
    assert first.channel_trade_no
    env.clock.advance(timedelta(seconds=9))
    assert (await env.adapter.query(env.ref("B20261206000002"))).status is ResultStatus.WAITING
    await env.state.notifier.drain()
    assert env.receiver.notifies == []  # nobody confirmed yet

    env.clock.advance(timedelta(seconds=20))
    done = await env.adapter.query(env.ref("B20261206000002"))
    assert (done.status, done.amount, done.channel_trade_no) == (ResultStatus.SUCCESS, 2500, first.channel_trade_no)
    assert done.paid_at == START + timedelta(seconds=10)  # when the payer confirmed, not when we asked
    await env.state.notifier.drain()
    [notify] = env.receiver.notifies
    assert (notify.status, notify.paid_at) == (ResultStatus.SUCCESS, START + timedelta(seconds=10))


async def test_never_then_cancel_closes_it_for_good(env: Env) -> None:
    code = await env.code("never")
    waiting = await env.adapter.create(env.request("B20261206000003", code))
    assert waiting.status is ResultStatus.WAITING
    env.clock.advance(timedelta(seconds=30))
    cancelled = await env.adapter.cancel(env.ref("B20261206000003"))
    assert (cancelled.status, cancelled.code) == (ResultStatus.SUCCESS, "00"), cancelled
    assert cancelled.channel_trade_no == waiting.channel_trade_no
    env.clock.advance(timedelta(hours=1))
    closed = await env.adapter.query(env.ref("B20261206000003"))
    assert (closed.status, closed.error, closed.code) == (ResultStatus.FAIL, ErrorClass.NONE, "01")
    assert closed.settles_query
    again = await env.adapter.cancel(env.ref("B20261206000003"))
    assert again.status is ResultStatus.SUCCESS  # reversing twice is still reversed


async def test_a_confirmation_after_the_reversal_never_happens(env: Env) -> None:
    code = await env.code("confirm_after", confirm_after_s=20)
    assert (await env.adapter.create(env.request("B20261206000004", code))).status is ResultStatus.WAITING
    env.clock.advance(timedelta(seconds=5))
    assert (await env.adapter.cancel(env.ref("B20261206000004"))).status is ResultStatus.SUCCESS
    env.clock.advance(timedelta(seconds=60))
    later = await env.adapter.query(env.ref("B20261206000004"))
    assert (later.status, later.code) == (ResultStatus.FAIL, "01")
    await env.state.notifier.drain()
    assert env.receiver.notifies == []


async def test_refuse_is_rejected_with_the_banks_no_funds_code(env: Env) -> None:
    refused = await env.adapter.create(env.request("B20261206000005", await env.code("refuse")))
    assert (refused.status, refused.error, refused.code) == (ResultStatus.FAIL, ErrorClass.REJECTED, "64"), refused
    failed = await env.adapter.query(env.ref("B20261206000005"))
    assert (failed.status, failed.error, failed.code) == (ResultStatus.FAIL, ErrorClass.NONE, "64")
    await env.state.notifier.drain()
    assert env.receiver.notifies == []


@pytest.mark.parametrize("source", ["never issued", "another channel's"])
async def test_an_invalid_code_is_refused_at_once(env: Env, source: str) -> None:
    code = "6200000000000000000" if source == "never issued" else await env.code("pay", channel="wechat")
    refused = await env.adapter.create(env.request("B20261206000006", code))
    assert (refused.status, refused.error, refused.code) == (ResultStatus.FAIL, ErrorClass.REJECTED, "61"), refused
    assert env.sim.book.find(MER_ID, "B20261206000006") is None
    assert (await env.adapter.query(env.ref("B20261206000006"))).code == "34"  # the bank kept nothing


async def test_cancel_of_a_paid_trade_refunds_it_and_the_file_shows_neither(env: Env) -> None:
    paid = await env.adapter.create(env.request("B20261206000007", await env.code("pay")))
    assert paid.status is ResultStatus.SUCCESS
    reversed_ = await env.adapter.cancel(env.ref("B20261206000007"))
    assert (reversed_.status, reversed_.channel_trade_no) == (ResultStatus.SUCCESS, paid.channel_trade_no)
    after = await env.adapter.query(env.ref("B20261206000007"))
    assert (after.status, after.code) == (ResultStatus.FAIL, "01")
    rows = codec.read_statement(await env.adapter.download_statement(START.date()))
    assert [r for r in rows if r["orderId"] == "B20261206000007"] == []


async def test_a_paid_trade_is_in_the_file_as_a_consume(env: Env) -> None:
    paid = await env.adapter.create(env.request("B20261206000008", await env.code("pay")))
    rows = codec.read_statement(await env.adapter.download_statement(START.date()))
    [row] = [r for r in rows if r["orderId"] == "B20261206000008"]
    assert (row["queryId"], row["txnType"], row["txnAmt"], row["respCode"]) == (
        paid.channel_trade_no,
        "01",
        "2500",
        "00",
    )


async def test_cancel_of_a_consume_the_bank_never_saw_is_final(env: Env) -> None:
    nothing = await env.adapter.cancel(env.ref("B20261206000009"))
    assert (nothing.status, nothing.code) == (ResultStatus.SUCCESS, "34"), nothing
    late = await env.adapter.create(env.request("B20261206000009", await env.code("pay")))
    assert (late.status, late.error, late.code) == (ResultStatus.FAIL, ErrorClass.REJECTED, "12")
    assert env.sim.book.find(MER_ID, "B20261206000009") is None


async def test_a_resent_consume_answers_the_same_trade(env: Env) -> None:
    code = await env.code("pay")
    first = await env.adapter.create(env.request("B20261206000010", code))
    again = await env.adapter.create(env.request("B20261206000010", code))
    assert (again.status, again.channel_trade_no) == (ResultStatus.SUCCESS, first.channel_trade_no)
    other = await env.adapter.create(env.request("B20261206000010", code, amount=1))
    assert (other.status, other.code) == (ResultStatus.FAIL, "12")
    await env.state.notifier.drain()
    assert len(env.receiver.notifies) == 1


async def test_a_web_trade_is_not_reversed(env: Env) -> None:
    web = TradeRef("B20261206000011", created_at=START, pay_method="BANK_WEB")
    answer = await env.adapter.cancel(web)
    assert (answer.status, answer.error, answer.code) == (
        ResultStatus.FAIL,
        ErrorClass.REJECTED,
        "BARCODE_NOT_SUPPORTED",
    )


async def test_faults_are_unknown_never_refused(env: Env) -> None:
    code = await env.code("pay")
    await env.faults(error_rate=1.0)
    down = await env.adapter.create(env.request("B20261206000012", code))
    assert (down.status, down.error) == (ResultStatus.UNKNOWN, ErrorClass.SERVER)
    not_cancelled = await env.adapter.cancel(env.ref("B20261206000012"))
    assert (not_cancelled.status, not_cancelled.error) == (ResultStatus.UNKNOWN, ErrorClass.SERVER)


# --- the wire, checked without the adapter -----------------------------------------------------------------


def _content(fields: dict[str, str]) -> bytes:
    """ACP signMethod 01, written out again: sorted `k=v` joined by `&`, then its lowercase hex SHA-256."""
    text = "&".join(f"{k}={fields[k]}" for k in sorted(fields) if k != "signature")
    return hashlib.sha256(text.encode("utf-8")).hexdigest().encode("ascii")


def _sign(fields: dict[str, str], key: rsa.RSAPrivateKey) -> dict[str, str]:
    signed = fields | {"certId": CERT_ID}
    raw = key.sign(_content(signed), padding.PKCS1v15(), hashes.SHA256())
    return signed | {"signature": base64.b64encode(raw).decode("ascii")}


def _verified(env: Env, body: str) -> dict[str, str]:
    """A simulator answer, checked with the codec's verify and with the hand-written one."""
    answer = codec.parse_kv(body)
    bank_key = load_public_key(env.sim.public_key_pem)
    assert signing.verify_fields(answer, bank_key)
    try:
        bank_key.verify(base64.b64decode(answer["signature"]), _content(answer), padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:  # pragma: no cover - the assertion message is the point
        pytest.fail("the simulator's answer does not verify with the hand-written ACP check")
    return answer


COMMON = {"version": "5.1.0", "encoding": "UTF-8", "signMethod": "01", "accessType": "0", "merId": MER_ID}


async def test_the_adapter_sends_the_documented_consume_and_reversal(
    env: Env, keys: dict[str, rsa.RSAPrivateKey]
) -> None:
    seen: dict[str, dict[str, str]] = {}
    for txn_type in ("01", "99"):
        original = env.sim._back[txn_type]  # noqa: SLF001

        def spy(mer_id: str, fields: dict[str, str], _o: Any = original, _t: str = txn_type) -> dict[str, str]:
            seen[_t] = dict(fields)
            return _o(mer_id, fields)

        env.sim._back[txn_type] = spy  # noqa: SLF001
    code = await env.code("never")
    await env.adapter.create(env.request("B20261206000013", code))
    await env.adapter.cancel(env.ref("B20261206000013"))
    consume, reversal = seen["01"], seen["99"]
    signature = consume.pop("signature")
    assert consume == COMMON | {
        "txnType": "01",
        "txnSubType": "06",
        "bizType": "000000",
        "channelType": "08",
        "orderId": "B20261206000013",
        "txnTime": "20261206130000",  # the order's created_at, Beijing wall clock
        "txnAmt": "2500",
        "currencyCode": "156",
        "qrNo": code,
        "backUrl": NOTIFY_URL,
        "certId": CERT_ID,
    }
    assert signature == _sign(consume, keys["merchant"])["signature"]  # PKCS#1 v1.5 is deterministic
    reversal.pop("signature")
    assert reversal == COMMON | {
        "txnType": "99",
        "txnSubType": "01",
        "bizType": "000000",
        "channelType": "08",
        "orderId": "B20261206000013",
        "txnTime": "20261206130000",  # the consume's own, not a new one
        "certId": CERT_ID,
    }


async def test_hand_built_requests_drive_the_simulator(env: Env, keys: dict[str, rsa.RSAPrivateKey]) -> None:
    """The documented fields, signed by hand, posted as a form: the simulator's signed answers tell the story."""
    code = await env.code("confirm_after", confirm_after_s=3)
    consume = COMMON | {
        "txnType": "01",
        "txnSubType": "06",
        "bizType": "000000",
        "channelType": "08",
        "orderId": "B20261206000014",
        "txnTime": "20261206130000",
        "txnAmt": "990",
        "currencyCode": "156",
        "qrNo": code,
        "backUrl": NOTIFY_URL,
    }
    accepted = _verified(env, (await env.payer.post(BACK_PATH, data=_sign(consume, keys["merchant"]))).text)
    assert (accepted["respCode"], accepted["orderId"], accepted["txnAmt"]) == ("00", "B20261206000014", "990")
    query = COMMON | {
        "txnType": "00",
        "txnSubType": "00",
        "bizType": "000000",
        "orderId": "B20261206000014",
        "txnTime": "20261206130000",
    }
    waiting = _verified(env, (await env.payer.post(QUERY_PATH, data=_sign(query, keys["merchant"]))).text)
    assert (waiting["respCode"], waiting["origRespCode"], waiting["queryId"]) == ("00", "05", accepted["queryId"])
    env.clock.advance(timedelta(seconds=3))
    paid = _verified(env, (await env.payer.post(QUERY_PATH, data=_sign(query, keys["merchant"]))).text)
    assert (paid["origRespCode"], paid["traceTime"], paid["settleAmt"]) == ("00", "1206130003", "990")
    reversal = COMMON | {
        "txnType": "99",
        "txnSubType": "01",
        "bizType": "000000",
        "channelType": "08",
        "orderId": "B20261206000014",
        "txnTime": "20261206130000",
    }
    done = _verified(env, (await env.payer.post(BACK_PATH, data=_sign(reversal, keys["merchant"]))).text)
    assert (done["respCode"], done["origQryId"], done["txnType"]) == ("00", accepted["queryId"], "99")
    foreign = _verified(env, (await env.payer.post(BACK_PATH, data=_sign(reversal, keys["other"]))).text)
    assert foreign["respCode"] == "11"  # not the merchant's key: a signed refusal
    await env.state.notifier.drain()
    [body] = env.receiver.bodies
    notify = dict(httpx.QueryParams(body.decode()))
    assert signing.verify_fields(notify, load_public_key(env.sim.public_key_pem))
    assert (notify["txnSubType"], notify["respCode"], notify["queryId"]) == ("06", "00", accepted["queryId"])


async def test_a_code_pays_one_trade_only(env: Env) -> None:
    code = await env.code("pay")
    assert (await env.adapter.create(env.request("B20261206000015", code))).status is ResultStatus.SUCCESS
    spent = await env.adapter.create(env.request("B20261206000016", code))
    assert (spent.status, spent.error, spent.code) == (ResultStatus.FAIL, ErrorClass.REJECTED, "61")


async def test_the_payer_api_does_not_pay_a_barcode_trade(env: Env) -> None:
    await env.adapter.create(env.request("B20261206000017", await env.code("never")))
    scanned = await env.payer.post("/sandbox/scan", json={"order_no": "B20261206000017", "result": "paid"})
    assert scanned.status_code == 404, scanned.text
    assert (await env.adapter.query(env.ref("B20261206000017"))).status is ResultStatus.WAITING


async def test_a_paid_barcode_trade_refunds_like_any_and_is_then_not_reversed(env: Env) -> None:
    paid = await env.adapter.create(env.request("B20261206000018", await env.code("pay")))
    refund = RefundRequest(
        order_no="B20261206000018",
        refund_no="R20261206000018",
        amount=500,
        total_amount=2500,
        notify_url=NOTIFY_URL,
        channel_trade_no=paid.channel_trade_no,
        order_created_at=START,
        created_at=START,
    )
    assert (await env.adapter.refund(refund)).status is ResultStatus.WAITING
    refused = await env.adapter.cancel(env.ref("B20261206000018"))
    assert (refused.status, refused.error, refused.code) == (ResultStatus.FAIL, ErrorClass.REJECTED, "35")
    still = await env.adapter.query(env.ref("B20261206000018"))
    assert still.status is ResultStatus.SUCCESS
