"""BankAdapter ↔ the bank simulator, in process (httpx.ASGITransport), as the platform and a browser would use them.

The simulator's back-notifies go to a small receiver app that verifies them with the adapter, as the platform's
callback route would. Synchronisation waits on conditions (`notifier.drain()`), never on fixed sleeps.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import FastAPI, Request, Response

from tomato.channel.adapters.bank import BankAdapter, codec, parse_config, signing
from tomato.channel.http import guarded_client
from tomato.channel.protocol import (
    CallbackRejected,
    ChannelNotify,
    CreateRequest,
    ErrorClass,
    RefundRef,
    RefundRequest,
    ResultStatus,
    TradeRef,
)
from tomato.channel.sandbox import SandboxState, alipay_simulator, create_sandbox_app
from tomato.channel.sandbox.bank import APP_PATH, NOTIFY_GAPS_S, BankSimulator
from tomato.core.crypto import generate_rsa_key, load_public_key, private_key_pem, public_key_pem

SANDBOX = "http://sandbox.test"
NOTIFY_URL = "http://platform.test/callbacks/bank/ca1"
MER_ID = "777290058110048"
CERT_ID = "69629715588"


@pytest.fixture(scope="module")
def keys() -> dict[str, rsa.RSAPrivateKey]:
    return {"merchant": generate_rsa_key(), "bank": generate_rsa_key(), "other": generate_rsa_key()}


@dataclass
class Receiver:
    """The platform's callback route: verifies with the adapter; answers 400 to the first `fail_first` sends."""

    fail_first: int = 0
    adapter: BankAdapter | None = None
    bodies: list[bytes] = field(default_factory=list)
    notifies: list[ChannelNotify] = field(default_factory=list)
    rejected: int = 0

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/callbacks/bank/ca1")
        async def notify(request: Request) -> Response:
            body = await request.body()
            self.bodies.append(body)
            assert self.adapter is not None
            try:
                parsed = self.adapter.parse_callback(dict(request.headers), body)
            except CallbackRejected:
                self.rejected += 1
                ack = self.adapter.callback_ack(False)
                return Response(ack.body, ack.status_code, media_type=ack.content_type)
            ok = len(self.bodies) > self.fail_first
            if ok:
                self.notifies.append(parsed)
            ack = self.adapter.callback_ack(ok)
            return Response(ack.body, ack.status_code, media_type=ack.content_type)

        return app


class TimeoutASGITransport(httpx.AsyncBaseTransport):
    """ASGITransport has no timeouts; give it a read timeout so a stalled simulator looks like the network."""

    def __init__(self, inner: httpx.AsyncBaseTransport, timeout_s: float) -> None:
        self._inner, self._timeout_s = inner, timeout_s

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            return await asyncio.wait_for(self._inner.handle_async_request(request), self._timeout_s)
        except TimeoutError:
            raise httpx.ReadTimeout("simulated read timeout", request=request) from None


def bank_config(keys: dict[str, rsa.RSAPrivateKey], sim: BankSimulator) -> dict[str, str]:
    return {
        "mer_id": MER_ID,
        "cert_id": CERT_ID,
        "private_key_pem": private_key_pem(keys["merchant"]),
        "bank_public_key_pem": sim.public_key_pem,
        **BankSimulator.urls(SANDBOX),
    }


@dataclass
class Env:
    state: SandboxState
    sim: BankSimulator
    adapter: BankAdapter
    payer: httpx.AsyncClient
    receiver: Receiver
    app: FastAPI
    created: dict[str, datetime] = field(default_factory=dict)

    def request(self, order_no: str, amount: int = 1234, expire_in: timedelta = timedelta(minutes=30)) -> CreateRequest:
        """The platform's create request: it passes the order row's created_at (the same on every retry)."""
        created_at = self.created.setdefault(order_no, datetime.now(UTC))
        return CreateRequest(
            order_no=order_no,
            amount=amount,
            subject="会员充值",
            pay_method="BANK_WEB",
            notify_url=NOTIFY_URL,
            expire_at=created_at + expire_in,
            return_url="https://shop.test/done",
            created_at=created_at,
        )

    async def create(self, order_no: str, amount: int = 1234, expire_in: timedelta = timedelta(minutes=30)) -> str:
        result = await self.adapter.create(self.request(order_no, amount, expire_in))
        assert result.status is ResultStatus.SUCCESS and result.pay_data is not None, result
        assert result.pay_data.type == "form_html"
        return str(result.pay_data.value)

    async def pre_order(self, fields: dict[str, str], key: rsa.RSAPrivateKey) -> dict[str, str]:
        """A hand-signed appTransReq.do call; the bank's verified answer fields."""
        signed = signing.sign_fields(fields, key, CERT_ID)
        response = await self.payer.post(APP_PATH, data=signed)
        assert response.status_code == 200
        answer = codec.parse_kv(response.text)
        assert signing.verify_fields(answer, load_public_key(self.sim.public_key_pem))
        return answer

    async def post_form(self, form_html: str) -> httpx.Response:
        """What the payer's browser does with the auto-submitting form."""
        action, fields = codec.parse_form_html(form_html)
        return await self.payer.post(urlsplit(action).path, data=fields)

    def ref(self, order_no: str) -> TradeRef:
        return TradeRef(order_no, created_at=self.created[order_no])

    async def scan(self, **body: Any) -> httpx.Response:
        return await self.payer.post("/sandbox/scan", json=body)

    async def faults(self, **body: Any) -> None:
        response = await self.payer.post("/sandbox/faults", json={"channel": "bank", **body})
        assert response.status_code == 200, response.text

    async def pay(self, order_no: str, amount: int = 1234) -> str:
        form = await self.create(order_no, amount)
        scanned = await self.scan(content=form, result="paid")
        assert scanned.status_code == 200, scanned.text
        await self.state.notifier.drain()
        return str(scanned.json()["channel_trade_no"])


@pytest.fixture
async def env(keys: dict[str, rsa.RSAPrivateKey]) -> AsyncIterator[Env]:
    receiver = Receiver()
    state = SandboxState(time_scale=1_000_000, notify_transport=httpx.ASGITransport(app=receiver.app()))
    alipay_simulator(state)  # attached first, as in the shared app: scans must pass it by
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
        yield Env(state, sim, adapter, payer, receiver, app)
        await state.aclose()


# --- payments ----------------------------------------------------------------------------------------------


async def test_scan_by_order_no_right_after_create_pays_and_notifies(
    env: Env, keys: dict[str, rsa.RSAPrivateKey]
) -> None:
    """docs/api.md: nobody posts the form; the pre-order alone lets the payer pay by order number."""
    form = await env.create("P20240101001")
    unpaid = await env.adapter.query(env.ref("P20240101001"))
    assert (unpaid.status, unpaid.code) == (ResultStatus.WAITING, "34")

    scanned = await env.scan(order_no="P20240101001", result="paid")
    assert scanned.status_code == 200, scanned.text
    body = scanned.json()
    assert (body["channel"], body["status"]) == ("bank", "PAID")
    query_id = body["channel_trade_no"]
    assert len(query_id) == 21 and query_id.isdigit()

    await env.state.notifier.drain()
    assert env.receiver.rejected == 0 and len(env.receiver.notifies) == 1
    notify = env.receiver.notifies[0]
    assert (notify.kind, notify.status, notify.order_no, notify.amount) == (
        "payment",
        ResultStatus.SUCCESS,
        "P20240101001",
        1234,
    )
    assert notify.channel_trade_no == query_id and notify.paid_at is not None
    sent = dict(parse_qsl(env.receiver.bodies[0].decode(), keep_blank_values=True))
    assert sent["certId"] == env.sim.cert_id and signing.verify_fields(sent, keys["bank"].public_key())
    assert all(v != "" for v in sent.values())
    assert sent["txnTime"] == codec.format_time(env.created["P20240101001"])  # the order's own creation time

    paid = await env.adapter.query(env.ref("P20240101001"))
    assert (paid.status, paid.channel_trade_no, paid.amount) == (ResultStatus.SUCCESS, query_id, 1234)
    assert paid.paid_at is not None and abs(paid.paid_at - notify.paid_at) <= timedelta(seconds=1)

    assert (await env.scan(order_no="P20240101001", result="paid")).status_code == 409
    assert (await env.scan(content=form, result="paid")).status_code == 409
    page = await env.post_form(form)  # the browser arriving late lands on the same, paid trade
    assert page.status_code == 200 and query_id in page.text and "PAID" in page.text


async def test_form_post_after_the_pre_order_finds_the_same_trade(env: Env) -> None:
    form = await env.create("P20240101010")
    trade = env.sim.book.find(MER_ID, "P20240101010")
    assert trade is not None and trade.state.value == "WAITING"
    page = await env.post_form(form)
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "12.34" in page.text and "会员充值" in page.text and trade.channel_trade_no in page.text
    assert (await env.post_form(form)).status_code == 200  # the same form again is the same trade
    assert [t.out_trade_no for t in env.sim.book.trades.values()] == ["P20240101010"]
    scanned = await env.scan(content=form, result="paid")
    assert scanned.status_code == 200 and scanned.json()["channel_trade_no"] == trade.channel_trade_no


async def test_form_with_other_terms_than_its_pre_order_is_refused(
    env: Env, keys: dict[str, rsa.RSAPrivateKey]
) -> None:
    form = await env.create("P20240101011")
    _, fields = codec.parse_form_html(form)
    for change in ({"txnAmt": "1"}, {"backUrl": "http://evil.test/notify"}):
        forged = signing.sign_fields({**fields, **change}, keys["merchant"], CERT_ID)  # validly signed
        page = await env.payer.post(urlsplit(BankSimulator.urls(SANDBOX)["front_url"]).path, data=forged)
        assert page.status_code == 400 and "重复交易" in page.text
        forged_form = codec.form_html(BankSimulator.urls(SANDBOX)["front_url"], forged)
        assert (await env.scan(content=forged_form, result="paid")).status_code == 404
    trade = env.sim.book.find(MER_ID, "P20240101011")
    assert trade is not None and (trade.amount, trade.notify_url, trade.state.value) == (1234, NOTIFY_URL, "WAITING")


async def test_pre_order_is_idempotent_on_order_id_and_txn_time(env: Env, keys: dict[str, rsa.RSAPrivateKey]) -> None:
    _, fields = codec.parse_form_html(await env.create("P20240101012"))
    first = await env.pre_order(fields, keys["merchant"])
    again = await env.pre_order(fields, keys["merchant"])
    assert first["respCode"] == again["respCode"] == "00"
    assert first["tn"] == again["tn"] and len(first["tn"]) == 21
    assert (first["orderId"], first["txnTime"]) == ("P20240101012", fields["txnTime"])
    other_amount = await env.pre_order({**fields, "txnAmt": "1235"}, keys["merchant"])
    later = codec.format_time(env.created["P20240101012"] + timedelta(seconds=1))
    other_time = await env.pre_order({**fields, "txnTime": later}, keys["merchant"])
    assert other_amount["respCode"] == other_time["respCode"] == "12" and "tn" not in other_amount
    assert len(env.sim.book.trades) == 1

    retried = await env.adapter.create(env.request("P20240101012"))  # the platform retrying its create
    assert retried.status is ResultStatus.SUCCESS and len(env.sim.book.trades) == 1
    refused = await env.adapter.create(env.request("P20240101012", amount=99))
    assert (refused.status, refused.error, refused.code, refused.pay_data) == (
        ResultStatus.FAIL,
        ErrorClass.REJECTED,
        "12",
        None,
    )


async def test_pre_order_refuses_non_consumes_and_strangers(env: Env, keys: dict[str, rsa.RSAPrivateKey]) -> None:
    _, fields = codec.parse_form_html(await env.create("P20240101013"))
    refund_like = await env.pre_order({**fields, "txnType": "04", "txnSubType": "00"}, keys["merchant"])
    assert refund_like["respCode"] == "32"
    stranger = await env.pre_order({**fields, "orderId": "P20240101014"}, keys["other"])
    assert stranger["respCode"] == "11"
    assert env.sim.book.find(MER_ID, "P20240101014") is None


async def test_pre_order_faults_map_like_every_call(env: Env, keys: dict[str, rsa.RSAPrivateKey]) -> None:
    await env.faults(error_rate=1.0)
    failed = await env.adapter.create(env.request("P20240101015"))
    assert (failed.status, failed.error, failed.pay_data) == (ResultStatus.UNKNOWN, ErrorClass.SERVER, None)
    assert env.sim.book.find(MER_ID, "P20240101015") is None
    await env.faults(error_rate=0.0, timeout_rate=1.0)
    transport = TimeoutASGITransport(httpx.ASGITransport(app=env.app), timeout_s=0.2)
    async with guarded_client(0.2, transport=transport) as http:
        late = await BankAdapter(parse_config(bank_config(keys, env.sim)), http).create(env.request("P20240101015"))
    assert (late.status, late.error, late.pay_data) == (ResultStatus.UNKNOWN, ErrorClass.TIMEOUT, None)
    assert env.sim.book.find(MER_ID, "P20240101015") is not None  # the bank did the work, the answer came late
    await env.faults(timeout_rate=0.0)
    await env.create("P20240101015")  # the platform's retry pre-orders the same trade
    assert len(env.sim.book.trades) == 1
    assert (await env.scan(order_no="P20240101015", result="paid")).status_code == 200


async def test_scan_with_the_form_html_creates_and_pays(env: Env) -> None:
    query_id = await env.pay("P20240101002")
    assert env.receiver.notifies[0].channel_trade_no == query_id
    assert (await env.adapter.query(env.ref("P20240101002"))).status is ResultStatus.SUCCESS


async def test_tampered_or_foreign_forms_are_refused(env: Env, keys: dict[str, rsa.RSAPrivateKey]) -> None:
    form = await env.create("P20240101003")
    tampered = form.replace('name="txnAmt" value="1234"', 'name="txnAmt" value="1"')
    assert tampered != form
    assert (await env.post_form(tampered)).status_code == 400
    assert (await env.scan(content=tampered, result="paid")).status_code == 404
    assert (await env.scan(content="<p>no form here</p>", result="paid")).status_code == 404
    env.sim.register_merchant(MER_ID, "1", public_key_pem(keys["merchant"]))  # another certId on file
    assert (await env.post_form(form)).status_code == 400


async def test_failed_payment_is_notified_and_final(env: Env) -> None:
    form = await env.create("P20240101004")
    failed = await env.scan(content=form, result="failed")
    assert failed.status_code == 200 and failed.json()["status"] == "FAILED"
    await env.state.notifier.drain()
    assert [(n.kind, n.status, n.paid_at) for n in env.receiver.notifies] == [("payment", ResultStatus.FAIL, None)]
    query = await env.adapter.query(env.ref("P20240101004"))
    assert (query.status, query.error, query.code) == (ResultStatus.FAIL, ErrorClass.NONE, "01")
    assert (await env.scan(order_no="P20240101004", result="paid")).status_code == 409


async def test_pay_timeout_closes_the_trade(env: Env) -> None:
    form = await env.create("P20240101005", expire_in=timedelta(seconds=-1))
    page = await env.post_form(form)
    assert page.status_code == 200 and "CLOSED" in page.text
    assert (await env.scan(order_no="P20240101005", result="paid")).status_code == 409
    assert (await env.adapter.close(env.ref("P20240101005"))).status is ResultStatus.SUCCESS


async def test_query_needs_the_exact_original_txn_time(env: Env) -> None:
    await env.pay("P20240101006")
    created = env.created["P20240101006"]
    same_second = TradeRef("P20240101006", created_at=created.replace(microsecond=0))
    assert (await env.adapter.query(same_second)).status is ResultStatus.SUCCESS  # txnTime has whole seconds
    for off in (timedelta(seconds=1), timedelta(seconds=-1), timedelta(hours=1)):
        result = await env.adapter.query(TradeRef("P20240101006", created_at=created + off))
        assert (result.status, result.code) == (ResultStatus.WAITING, "34")


# --- close -------------------------------------------------------------------------------------------------


async def test_close_unpaid_and_paid(env: Env) -> None:
    assert (await env.adapter.close(TradeRef("P20240101007", created_at=datetime.now(UTC)))).status is (
        ResultStatus.SUCCESS
    )  # never reached the bank
    form = await env.create("P20240101008")
    assert (await env.post_form(form)).status_code == 200
    closed = await env.adapter.close(env.ref("P20240101008"))
    assert (closed.status, closed.code) == (ResultStatus.SUCCESS, "34")
    query_id = await env.pay("P20240101009")
    refused = await env.adapter.close(env.ref("P20240101009"))
    assert (refused.status, refused.error, refused.code, refused.channel_trade_no) == (
        ResultStatus.FAIL,
        ErrorClass.REJECTED,
        "ALREADY_PAID",
        query_id,
    )


# --- refunds -----------------------------------------------------------------------------------------------


def refund_req(env: Env, refund_no: str, amount: int, query_id: str | None) -> RefundRequest:
    return RefundRequest(
        "P20240101020",
        refund_no,
        amount,
        1234,
        NOTIFY_URL,
        channel_trade_no=query_id,
        order_created_at=env.created.get("P20240101020"),
    )


async def test_refunds_partial_replay_beyond_and_full(env: Env) -> None:
    env.created["P20240101020"] = datetime.now(UTC)
    before = await env.adapter.refund(refund_req(env, "R20240101001", 100, "692401010000000000000"))
    assert (before.status, before.error, before.code) == (ResultStatus.FAIL, ErrorClass.REJECTED, "35")
    query_id = await env.pay("P20240101020")

    refund_at = datetime.now(UTC)
    partial = await env.adapter.refund(refund_req(env, "R20240101001", 234, None))  # learns queryId by query
    assert (partial.status, partial.channel_trade_no, partial.amount) == (ResultStatus.WAITING, query_id, 234)
    assert partial.channel_refund_no and partial.channel_refund_no != query_id
    await env.state.notifier.drain()
    refund_notify = env.receiver.notifies[-1]
    assert (refund_notify.kind, refund_notify.status, refund_notify.order_no, refund_notify.refund_no) == (
        "refund",
        ResultStatus.SUCCESS,
        "P20240101020",
        "R20240101001",
    )
    assert (refund_notify.amount, refund_notify.channel_refund_no) == (234, partial.channel_refund_no)

    replay = await env.adapter.refund(refund_req(env, "R20240101001", 234, query_id))
    assert (replay.status, replay.channel_refund_no) == (ResultStatus.WAITING, partial.channel_refund_no)
    other_amount = await env.adapter.refund(refund_req(env, "R20240101001", 235, query_id))
    assert (other_amount.status, other_amount.code) == (ResultStatus.FAIL, "12")
    confirmed = await env.adapter.query_refund(RefundRef("P20240101020", "R20240101001", created_at=refund_at))
    assert (confirmed.status, confirmed.amount, confirmed.channel_trade_no) == (ResultStatus.SUCCESS, 234, query_id)
    missing = await env.adapter.query_refund(RefundRef("P20240101020", "R20240101009", created_at=refund_at))
    assert (missing.status, missing.code) == (ResultStatus.WAITING, "34")
    far = await env.adapter.query_refund(
        RefundRef("P20240101020", "R20240101001", created_at=refund_at - timedelta(hours=1))
    )
    assert (far.status, far.code) == (ResultStatus.WAITING, "34")  # refunds: minutes of tolerance, not more

    beyond = await env.adapter.refund(refund_req(env, "R20240101002", 1001, query_id))  # 1000 left
    assert (beyond.status, beyond.error, beyond.code) == (ResultStatus.FAIL, ErrorClass.REJECTED, "33")
    rest = await env.adapter.refund(refund_req(env, "R20240101003", 1000, query_id))
    assert rest.status is ResultStatus.WAITING
    assert (await env.adapter.refund(refund_req(env, "R20240101004", 1, query_id))).code == "33"
    await env.state.notifier.drain()
    assert [n.refund_no for n in env.receiver.notifies if n.kind == "refund"] == ["R20240101001", "R20240101003"]


async def test_full_refund_and_reject_refunds_fault(env: Env) -> None:
    env.created["P20240101020"] = datetime.now(UTC)
    query_id = await env.pay("P20240101020")
    await env.faults(reject_refunds=True)
    refused = await env.adapter.refund(refund_req(env, "R20240101001", 1234, query_id))
    assert (refused.status, refused.error, refused.code) == (ResultStatus.FAIL, ErrorClass.REJECTED, "01")
    assert (await env.payer.delete("/sandbox/faults")).status_code == 200
    full = await env.adapter.refund(refund_req(env, "R20240101001", 1234, query_id))
    assert (full.status, full.amount) == (ResultStatus.WAITING, 1234)


# --- notifies ----------------------------------------------------------------------------------------------


async def test_notify_retried_until_http_200(env: Env) -> None:
    env.receiver.fail_first = 3
    await env.pay("P20240101030")
    attempts = env.state.notifier.attempts
    assert [(a.status_code, a.accepted) for a in attempts] == [(400, False)] * 3 + [(200, True)]
    assert len({a.notify_id for a in attempts}) == 1 and len(set(env.receiver.bodies)) == 1
    assert len(env.receiver.notifies) == 1


async def test_notify_gives_up_after_the_schedule(env: Env) -> None:
    env.receiver.fail_first = 100
    await env.pay("P20240101031")
    assert len(env.state.notifier.attempts) == len(NOTIFY_GAPS_S) + 1
    assert not any(a.accepted for a in env.state.notifier.attempts) and env.state.notifier.pending == 0


async def test_drop_and_duplicate_notify(env: Env) -> None:
    await env.faults(drop_notify=True)
    await env.pay("P20240101032")
    assert env.receiver.bodies == []
    assert (await env.adapter.query(env.ref("P20240101032"))).status is ResultStatus.SUCCESS  # the platform queries
    await env.faults(drop_notify=False, duplicate_notify=2)
    await env.pay("P20240101033")
    assert len(env.receiver.notifies) == 3 and len(set(env.receiver.bodies)) == 1


# --- gateway rules and faults --------------------------------------------------------------------------------


async def test_requests_signed_with_another_key_get_a_signed_refusal(
    env: Env, keys: dict[str, rsa.RSAPrivateKey]
) -> None:
    env.sim.register_merchant(MER_ID, CERT_ID, public_key_pem(keys["other"]))
    result = await env.adapter.query(TradeRef("P20240101040", created_at=datetime.now(UTC)))
    assert (result.status, result.error, result.code) == (ResultStatus.FAIL, ErrorClass.REJECTED, "11")


async def test_hostile_request_values_get_a_signed_refusal(env: Env, keys: dict[str, rsa.RSAPrivateKey]) -> None:
    fields = {
        "version": "5.1.0",
        "encoding": "UTF-8",
        "signMethod": "01",
        "txnType": "04",
        "txnSubType": "00",
        "bizType": "000201",
        "accessType": "0",
        "merId": MER_ID,
        "orderId": "R2024&{x",
        "txnTime": "{[",
        "txnAmt": "{1&2",
        "origQryId": "1",
        "backUrl": NOTIFY_URL,
    }
    signed = signing.sign_fields(fields, keys["merchant"], CERT_ID)
    response = await env.payer.post(urlsplit(BankSimulator.urls(SANDBOX)["back_url"]).path, data=signed)
    assert response.status_code == 200
    answer = codec.parse_kv(response.text)
    assert signing.verify_fields(answer, keys["bank"].public_key())
    assert answer["respCode"] == "10" and "orderId" not in answer and "txnTime" not in answer


async def test_error_rate_and_timeout_rate(env: Env, keys: dict[str, rsa.RSAPrivateKey]) -> None:
    ref = TradeRef("P20240101041", created_at=datetime.now(UTC))
    await env.faults(error_rate=1.0)
    assert (await env.adapter.query(ref)).error is ErrorClass.SERVER
    assert (await env.payer.delete("/sandbox/faults")).status_code == 200
    assert (await env.adapter.query(ref)).status is ResultStatus.WAITING

    await env.faults(timeout_rate=1.0)
    transport = TimeoutASGITransport(httpx.ASGITransport(app=env.app), timeout_s=0.2)
    async with guarded_client(0.2, transport=transport) as http:
        result = await BankAdapter(parse_config(bank_config(keys, env.sim)), http).query(ref)
    assert (result.status, result.error) == (ResultStatus.UNKNOWN, ErrorClass.TIMEOUT)


async def test_statement_lists_payments_and_refunds(env: Env) -> None:
    env.created["P20240101020"] = datetime.now(UTC)
    query_id = await env.pay("P20240101020")
    refund = await env.adapter.refund(refund_req(env, "R20240101001", 234, query_id))
    await env.pay("P20240101050", amount=99)
    zipped = await env.adapter.download_statement(codec.beijing_date(datetime.now(UTC)))
    rows = {r["orderId"]: r for r in codec.read_statement(zipped)}
    assert set(rows) == {"P20240101020", "R20240101001", "P20240101050"}
    assert {k: rows["P20240101020"][k] for k in ("queryId", "txnType", "txnAmt", "settleAmt", "fee")} == {
        "queryId": query_id,
        "txnType": "01",
        "txnAmt": "1234",
        "settleAmt": "1234",
        "fee": "5",  # 3,800 ppm of 1234, half up
    }
    assert {k: rows["R20240101001"][k] for k in ("queryId", "txnType", "settleAmt", "fee")} == {
        "queryId": refund.channel_refund_no,
        "txnType": "04",
        "settleAmt": "-234",
        "fee": "-1",  # (2·5·234 + 1234) // (2·1234): the refund's pro-rata share of the fee
    }
    yesterday = codec.beijing_date(datetime.now(UTC)) - timedelta(days=1)
    assert codec.read_statement(await env.adapter.download_statement(yesterday)) == []


# --- registration (a standalone `tomato sandbox`) -------------------------------------------------------------


async def test_register_a_bank_merchant_over_http(env: Env, keys: dict[str, rsa.RSAPrivateKey]) -> None:
    mer_id, cert_id, key = "898310048990001", "70001", generate_rsa_key()
    body = {"channel": "bank", "merchant_id": mer_id, "cert_id": cert_id, "public_key_pem": public_key_pem(key)}
    registered = await env.payer.post("/sandbox/apps", json=body)
    assert registered.status_code == 200, registered.text
    assert registered.json() == {"channel": "bank", "merchant_id": mer_id, "cert_id": cert_id}
    keys_page = (await env.payer.get("/sandbox/keys")).json()
    assert keys_page["bank"] == env.sim.public_key_pem

    raw = {**bank_config(keys, env.sim), "mer_id": mer_id, "cert_id": cert_id, "private_key_pem": private_key_pem(key)}
    async with guarded_client(5.0, transport=httpx.ASGITransport(app=env.app)) as http:
        adapter = BankAdapter(parse_config(raw), http)
        created = await adapter.create(env.request("P20240101060"))
        assert created.status is ResultStatus.SUCCESS, created
        stale = BankAdapter(parse_config({**raw, "cert_id": "70002"}), http)
        refused = await stale.create(env.request("P20240101061"))
    assert (refused.status, refused.error, refused.code) == (ResultStatus.FAIL, ErrorClass.REJECTED, "11")
    trade = env.sim.book.find(mer_id, "P20240101060")
    assert trade is not None and env.sim.book.merchants[mer_id] == public_key_pem(key)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"merchant_id": "89831004899000"}, "merchant_id"),  # 14 characters
        ({"merchant_id": "89831004899000-"}, "merchant_id"),
        ({"cert_id": "7000a"}, "cert_id"),
        ({"cert_id": None}, "cert_id"),
        ({"public_key_pem": "not a key"}, "public_key_pem"),
        ({"public_key_pem": ""}, "public_key_pem"),
        ({"channel": "wechat"}, "channel"),
        ({"channel": "alipay"}, "cert_id"),  # cert_id is the bank's alone
    ],
)
async def test_registration_refuses_bad_input_with_422(env: Env, change: dict[str, Any], field: str) -> None:
    body = {"channel": "bank", "merchant_id": "898310048990001", "cert_id": "70001",
            "public_key_pem": public_key_pem(generate_rsa_key(1024)), **change}
    response = await env.payer.post("/sandbox/apps", json={k: v for k, v in body.items() if v is not None})
    assert response.status_code == 422, response.text
    assert field in response.text
    assert "898310048990001" not in env.sim.book.merchants


async def test_registration_keeps_alipay_working(env: Env) -> None:
    key = generate_rsa_key(1024)
    body = {"channel": "alipay", "merchant_id": "2021000000000888", "public_key_pem": public_key_pem(key)}
    registered = await env.payer.post("/sandbox/apps", json=body)
    assert registered.status_code == 200, registered.text
    assert registered.json() == {"channel": "alipay", "merchant_id": "2021000000000888"}
    assert env.state.books["alipay"].merchants["2021000000000888"] == public_key_pem(key)
    bad = await env.payer.post("/sandbox/apps", json={**body, "public_key_pem": "nope"})
    assert bad.status_code == 422 and "public_key_pem" in bad.text
