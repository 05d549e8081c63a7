"""Alipay barcode pay (付款码): AlipayAdapter ↔ the simulator for every payer behaviour, the wire fields, and
python-alipay-sdk driving `alipay.trade.pay` / `alipay.trade.cancel` against the simulator and verifying its answers.

The sandbox clock is frozen; a payer who confirms "after 10 s" confirms when the test advances it, never by sleeping.
"""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest
from alipay import AliPay
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import FastAPI, Request, Response

from tests.fixtures.alipay_isv import NOTIFY_URL as ISV_NOTIFY_URL
from tests.fixtures.alipay_isv import PROVIDER, SUB_A, IsvEnv, isv_env, isv_keys
from tomato.channel.adapters.alipay import AlipayAdapter, parse_config
from tomato.channel.http import guarded_client
from tomato.channel.protocol import (
    CallbackRejected,
    ChannelNotify,
    CreateRequest,
    ErrorClass,
    ResultStatus,
    SubMerchant,
    TradeRef,
)
from tomato.channel.sandbox import AlipaySimulator, SandboxState, create_sandbox_app
from tomato.channel.sandbox.state import TradeState
from tomato.core.clock import FrozenClock
from tomato.core.crypto import generate_rsa_key, private_key_pem, public_key_pem
from tomato.reconciliation.statement import StatementLine, parse_statement

SANDBOX = "http://sandbox.test"
GATEWAY = SANDBOX + "/alipay/gateway.do"
NOTIFY_PATH = "/callbacks/alipay/bc1"
NOTIFY_URL = "http://platform.test" + NOTIFY_PATH
APP_ID = "2021000000000009"
AT = datetime(2026, 3, 10, 2, 0, tzinfo=UTC)  # 10:00 in China
DAY = date(2026, 3, 10)


@pytest.fixture(scope="module")
def keys() -> dict[str, rsa.RSAPrivateKey]:
    return {"app": generate_rsa_key(), "alipay": generate_rsa_key()}


@dataclass
class Receiver:
    adapter: AlipayAdapter | None = None
    bodies: list[bytes] = field(default_factory=list)
    notifies: list[ChannelNotify] = field(default_factory=list)

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post(NOTIFY_PATH)
        async def notify(request: Request) -> Response:
            body = await request.body()
            self.bodies.append(body)
            assert self.adapter is not None
            try:
                self.notifies.append(self.adapter.parse_callback(dict(request.headers), body))
            except CallbackRejected:
                return Response(b"fail", 200)
            return Response(b"success", 200)

        return app


class Recorder(httpx.AsyncBaseTransport):
    """Keeps every request the adapter sends (the wire bytes), then hands it to the simulator."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.requests: list[httpx.Request] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        await request.aread()
        self.requests.append(request)
        return await self.inner.handle_async_request(request)

    def params(self, index: int = -1) -> tuple[dict[str, str], dict[str, str]]:
        """(URL query, form body) of a recorded request."""
        request = self.requests[index]
        query = dict(parse_qsl(request.url.query.decode(), keep_blank_values=True))
        return query, dict(parse_qsl(request.content.decode(), keep_blank_values=True))


@dataclass
class Env:
    state: SandboxState
    clock: FrozenClock
    sim: AlipaySimulator
    adapter: AlipayAdapter
    payer: httpx.AsyncClient
    receiver: Receiver
    wire: Recorder
    app: FastAPI

    async def code(self, behaviour: str, confirm_after_s: float = 10.0, channel: str = "alipay") -> str:
        body = {"channel": channel, "behaviour": behaviour, "confirm_after_s": confirm_after_s}
        answer = await self.payer.post("/sandbox/barcodes", json=body)
        assert answer.status_code == 200, answer.text
        return str(answer.json()["auth_code"])


def make_state(receiver: Receiver, clock: FrozenClock | None) -> SandboxState:
    transport = httpx.ASGITransport(app=receiver.app())
    return SandboxState(time_scale=1_000_000, clock=clock, notify_transport=transport)


@pytest.fixture
async def env(keys: dict[str, rsa.RSAPrivateKey]) -> AsyncIterator[Env]:
    receiver, clock = Receiver(), FrozenClock(AT)
    state = make_state(receiver, clock)
    sim = AlipaySimulator(state, private_key=keys["alipay"])
    sim.register_app(APP_ID, public_key_pem(keys["app"]))
    app = create_sandbox_app(state)
    wire = Recorder(httpx.ASGITransport(app=app))
    async with (
        guarded_client(5.0, transport=wire) as http,
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=SANDBOX) as payer,
    ):
        adapter = AlipayAdapter(config(keys, sim), http, clock=clock)
        receiver.adapter = adapter
        yield Env(state, clock, sim, adapter, payer, receiver, wire, app)
        await state.aclose()


def config(keys: dict[str, rsa.RSAPrivateKey], sim: AlipaySimulator) -> Any:
    return parse_config({
        "app_id": APP_ID, "private_key_pem": private_key_pem(keys["app"]),
        "alipay_public_key_pem": sim.public_key_pem, "gateway_url": GATEWAY,
    })  # fmt: skip


def barcode_req(order_no: str, auth_code: str | None, amount: int = 1234, sub: SubMerchant | None = None) -> Any:
    return CreateRequest(
        order_no=order_no, amount=amount, subject="收银台 {A1}", pay_method="BARCODE", notify_url=NOTIFY_URL,
        expire_at=AT + timedelta(minutes=5), auth_code=auth_code, sub=sub,
    )  # fmt: skip


def ref(order_no: str, sub: SubMerchant | None = None) -> TradeRef:
    return TradeRef(order_no, sub=sub, pay_method="BARCODE")


# --- the payer's behaviours -----------------------------------------------------------------------------------


async def test_pay_at_once_sends_the_face_to_face_fields_and_is_paid(env: Env) -> None:
    code = await env.code("pay")
    paid = await env.adapter.create(barcode_req("B1", code))
    assert (paid.status, paid.amount, paid.paid_at) == (ResultStatus.SUCCESS, 1234, AT)
    assert paid.channel_trade_no and len(paid.channel_trade_no) == 28

    query, form = env.wire.params()
    assert (query["method"], query["notify_url"], query["app_id"]) == ("alipay.trade.pay", NOTIFY_URL, APP_ID)
    assert "sign" in query and "biz_content" in form and "app_auth_token" not in query
    assert json.loads(form["biz_content"]) == {
        "out_trade_no": "B1", "scene": "bar_code", "auth_code": code, "product_code": "FACE_TO_FACE_PAYMENT",
        "total_amount": "12.34", "subject": "收银台 {A1}", "time_expire": "2026-03-10 10:05:00",
    }  # fmt: skip

    await env.state.notifier.drain()  # Alipay notifies a barcode trade too when the pay named a notify_url
    assert [(n.status, n.order_no, n.amount, n.paid_at) for n in env.receiver.notifies] == [
        (ResultStatus.SUCCESS, "B1", 1234, AT)
    ]
    queried = await env.adapter.query(ref("B1"))
    assert (queried.status, queried.channel_trade_no, queried.paid_at) == (
        ResultStatus.SUCCESS, paid.channel_trade_no, AT,
    )  # fmt: skip


async def test_confirm_after_waits_then_query_says_paid_at_the_confirmation(env: Env) -> None:
    code = await env.code("confirm_after", confirm_after_s=10)
    waiting = await env.adapter.create(barcode_req("B2", code))
    assert (waiting.status, waiting.code, waiting.amount) == (ResultStatus.WAITING, "10003", 1234)
    assert waiting.channel_trade_no

    env.clock.advance(timedelta(seconds=9))
    still = await env.adapter.query(ref("B2"))
    assert (still.status, still.code) == (ResultStatus.WAITING, "WAIT_BUYER_PAY")
    await env.state.notifier.drain()
    assert env.receiver.notifies == []

    env.clock.advance(timedelta(seconds=5))  # confirmed at +10 s; the query comes at +14 s
    paid = await env.adapter.query(ref("B2"))
    assert (paid.status, paid.channel_trade_no, paid.amount) == (ResultStatus.SUCCESS, waiting.channel_trade_no, 1234)
    assert paid.paid_at == AT + timedelta(seconds=10)
    await env.state.notifier.drain()
    assert [(n.status, n.paid_at) for n in env.receiver.notifies] == [
        (ResultStatus.SUCCESS, AT + timedelta(seconds=10))
    ]


async def test_a_confirmed_payer_is_notified_before_any_query(env: Env) -> None:
    """Any gateway request (here: another merchant order's query) settles the payer who confirmed meanwhile."""
    code = await env.code("confirm_after", confirm_after_s=3)
    assert (await env.adapter.create(barcode_req("B3", code))).status is ResultStatus.WAITING
    env.clock.advance(timedelta(seconds=3))
    await env.adapter.query(ref("OTHER"))
    await env.state.notifier.drain()
    assert [(n.order_no, n.status) for n in env.receiver.notifies] == [("B3", ResultStatus.SUCCESS)]


async def test_never_then_cancel_closes_and_stays_closed(env: Env) -> None:
    code = await env.code("never")
    assert (await env.adapter.create(barcode_req("B4", code))).status is ResultStatus.WAITING
    env.clock.advance(timedelta(seconds=30))
    assert (await env.adapter.query(ref("B4"))).status is ResultStatus.WAITING

    cancelled = await env.adapter.cancel(ref("B4"))
    assert (cancelled.status, cancelled.code) == (ResultStatus.SUCCESS, "close")
    query, form = env.wire.params()
    assert query["method"] == "alipay.trade.cancel" and json.loads(form["biz_content"]) == {"out_trade_no": "B4"}

    env.clock.advance(timedelta(hours=1))
    closed = await env.adapter.query(ref("B4"))
    assert (closed.status, closed.error, closed.code) == (ResultStatus.FAIL, ErrorClass.NONE, "TRADE_CLOSED")
    assert closed.settles_query
    again = await env.adapter.create(barcode_req("B4", code))  # the till resends the same order: refused
    assert (again.status, again.error, again.code) == (ResultStatus.FAIL, ErrorClass.REJECTED, "ACQ.TRADE_HAS_CLOSE")
    await env.state.notifier.drain()
    assert env.receiver.notifies == []


async def test_cancel_before_the_payer_confirms_means_it_never_gets_paid(env: Env) -> None:
    code = await env.code("confirm_after", confirm_after_s=10)
    assert (await env.adapter.create(barcode_req("B5", code))).status is ResultStatus.WAITING
    assert (await env.adapter.cancel(ref("B5"))).code == "close"
    env.clock.advance(timedelta(seconds=60))
    late = await env.adapter.query(ref("B5"))
    assert (late.status, late.code) == (ResultStatus.FAIL, "TRADE_CLOSED")
    await env.state.notifier.drain()
    assert env.receiver.notifies == []
    assert env.state.statement_rows("alipay", APP_ID, DAY) == []


async def test_refuse_is_a_definite_refusal_for_no_funds(env: Env) -> None:
    code = await env.code("refuse")
    refused = await env.adapter.create(barcode_req("B6", code))
    assert (refused.status, refused.error, refused.code) == (
        ResultStatus.FAIL, ErrorClass.REJECTED, "ACQ.BUYER_BALANCE_NOT_ENOUGH",
    )  # fmt: skip
    assert refused.message == "买家余额不足"
    assert env.sim.book.find(APP_ID, "B6") is None  # nothing was paid nor left waiting


async def test_invalid_codes_are_refused(env: Env) -> None:
    never_issued = "28" + "0" * 16
    wechat_code = await env.code("pay", channel="wechat")
    used = await env.code("pay")
    assert (await env.adapter.create(barcode_req("B7", used))).status is ResultStatus.SUCCESS
    for order_no, code in (("B8", never_issued), ("B9", wechat_code), ("B10", used)):
        refused = await env.adapter.create(barcode_req(order_no, code))
        assert (refused.status, refused.error, refused.code) == (
            ResultStatus.FAIL, ErrorClass.REJECTED, "ACQ.PAYMENT_AUTH_CODE_INVALID",
        ), order_no  # fmt: skip
    missing = await env.adapter.create(barcode_req("B11", None))
    assert (missing.status, missing.code) == (ResultStatus.FAIL, "AUTH_CODE_REQUIRED")
    assert [r.url.params.get("method") for r in env.wire.requests].count("alipay.trade.pay") == 4  # none for B11


async def test_cancel_of_a_paid_trade_refunds_it_and_the_bill_shows_both(env: Env) -> None:
    code = await env.code("pay")
    paid = await env.adapter.create(barcode_req("B12", code))
    assert paid.status is ResultStatus.SUCCESS
    env.clock.advance(timedelta(seconds=20))

    reversed_ = await env.adapter.cancel(ref("B12"))
    assert (reversed_.status, reversed_.code, reversed_.channel_trade_no) == (
        ResultStatus.SUCCESS, "refund", paid.channel_trade_no,
    )  # fmt: skip
    trade = env.sim.book.find(APP_ID, "B12")
    assert trade is not None and trade.refunded == 1234 and trade.state is TradeState.PAID
    again = await env.adapter.cancel(ref("B12"))  # a repeated cancel refunds nothing more
    assert (again.status, again.code) == (ResultStatus.SUCCESS, "refund") and trade.refunded == 1234

    closed = await env.adapter.query(ref("B12"))
    assert (closed.status, closed.code) == (ResultStatus.FAIL, "TRADE_CLOSED")
    bill = await env.adapter.download_statement(DAY)
    lines = [line for line in parse_statement("alipay", io.BytesIO(bill)) if isinstance(line, StatementLine)]
    assert [(line.kind.value, line.order_no, line.amount) for line in lines] == [
        ("PAYMENT", "B12", 1234), ("REFUND", "B12", 1234),
    ]  # fmt: skip
    assert lines[1].occurred_at == AT + timedelta(seconds=20)


async def test_retry_flag_y_asks_for_the_cancel_again(env: Env) -> None:
    code = await env.code("never")
    await env.adapter.create(barcode_req("B13", code))
    env.sim.barcode.cancel_retries = 1
    first = await env.adapter.cancel(ref("B13"))
    assert (first.status, first.code) == (ResultStatus.WAITING, "RETRY")
    assert env.sim.book.find(APP_ID, "B13").state is TradeState.WAITING  # type: ignore[union-attr]
    second = await env.adapter.cancel(ref("B13"))
    assert (second.status, second.code) == (ResultStatus.SUCCESS, "close")


async def test_cancel_of_a_trade_alipay_never_saw_is_a_reversal_of_nothing(env: Env) -> None:
    result = await env.adapter.cancel(ref("B14"))
    assert (result.status, result.code, result.channel_trade_no) == (ResultStatus.SUCCESS, None, None)


async def test_resent_pay_of_a_paid_trade_is_unknown_never_a_refusal(env: Env) -> None:
    """After a timeout the till may resend the pay: Alipay answers ACQ.TRADE_HAS_SUCCESS, which must not fail it."""
    code = await env.code("pay")
    assert (await env.adapter.create(barcode_req("B15", code))).status is ResultStatus.SUCCESS
    resent = await env.adapter.create(barcode_req("B15", code))
    assert (resent.status, resent.code) == (ResultStatus.UNKNOWN, "ACQ.TRADE_HAS_SUCCESS")
    assert (await env.adapter.query(ref("B15"))).status is ResultStatus.SUCCESS
    other_amount = await env.adapter.create(barcode_req("B15", code, amount=999))
    assert (other_amount.status, other_amount.code) == (ResultStatus.FAIL, "ACQ.CONTEXT_INCONSISTENT")


async def test_a_resent_pay_while_confirming_is_still_waiting(env: Env) -> None:
    code = await env.code("never")
    first = await env.adapter.create(barcode_req("B16", code))
    resent = await env.adapter.create(barcode_req("B16", code))
    assert (resent.status, resent.channel_trade_no) == (ResultStatus.WAITING, first.channel_trade_no)


async def test_simulator_errors_are_unknown(env: Env) -> None:
    env.state.faults["alipay"].error_rate = 1.0
    code = await env.code("pay")
    result = await env.adapter.create(barcode_req("B17", code))
    assert (result.status, result.error) == (ResultStatus.UNKNOWN, ErrorClass.SERVER)
    cancelled = await env.adapter.cancel(ref("B17"))
    assert (cancelled.status, cancelled.error) == (ResultStatus.UNKNOWN, ErrorClass.SERVER)


async def test_a_live_sandbox_notifies_at_the_confirmation_without_any_request(
    keys: dict[str, rsa.RSAPrivateKey],
) -> None:
    """On the system clock a timer settles the payer who confirmed: the notify arrives with no query at all."""
    receiver = Receiver()
    state = make_state(receiver, None)
    sim = AlipaySimulator(state, private_key=keys["alipay"])
    sim.register_app(APP_ID, public_key_pem(keys["app"]))
    app = create_sandbox_app(state)
    async with (
        guarded_client(5.0, transport=httpx.ASGITransport(app=app)) as http,
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=SANDBOX) as payer,
    ):
        receiver.adapter = AlipayAdapter(config(keys, sim), http)
        body = {"channel": "alipay", "behaviour": "confirm_after", "confirm_after_s": 0.2}
        code = (await payer.post("/sandbox/barcodes", json=body)).json()["auth_code"]
        created = await receiver.adapter.create(barcode_req("B18", code))
        assert created.status is ResultStatus.WAITING
        await wait_until(lambda: len(receiver.notifies) == 1)
        assert receiver.notifies[0].status is ResultStatus.SUCCESS
        await state.aclose()


async def wait_until(predicate: Callable[[], bool], timeout_s: float = 5.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not predicate():
            await asyncio.sleep(0.01)


# --- service-provider mode ------------------------------------------------------------------------------------


@pytest.fixture
async def isv() -> AsyncIterator[IsvEnv]:
    async for value in isv_env(isv_keys()):
        yield value


async def test_isv_barcode_pay_and_cancel_act_for_the_sub_merchant(isv: IsvEnv) -> None:
    a = isv.subs["A"]
    answer = await isv.payer.post("/sandbox/barcodes", json={"channel": "alipay", "behaviour": "pay"})
    req = replace(barcode_req("IB1", answer.json()["auth_code"], sub=a), notify_url=ISV_NOTIFY_URL)
    paid = await isv.adapter.create(req)
    assert paid.status is ResultStatus.SUCCESS
    trade = isv.sim.book.find(SUB_A, "IB1")
    assert trade is not None and (trade.merchant_id, trade.extra["app_id"]) == (SUB_A, PROVIDER)
    assert (await isv.adapter.cancel(ref("IB1", sub=a))).code == "refund"
    assert isv.sim.isv.tokens_sent("alipay.trade.pay") == [a.app_auth_token]
    assert isv.sim.isv.tokens_sent("alipay.trade.cancel") == [a.app_auth_token]
    await isv.state.notifier.drain()
    assert [(n.order_no, n.status, n.sub_merchant) for n in isv.receiver.notifies] == [
        ("IB1", ResultStatus.SUCCESS, SUB_A)
    ]

    no_sub = await isv.adapter.create(barcode_req("IB2", answer.json()["auth_code"]))
    assert (no_sub.status, no_sub.code) == (ResultStatus.FAIL, "SUB_MERCHANT_REQUIRED")
    assert (await isv.adapter.cancel(ref("IB2"))).code == "SUB_MERCHANT_REQUIRED"


# --- python-alipay-sdk as an independent peer -------------------------------------------------------------------


class SdkWire:
    """The SDK's `urlopen` routed to the in-process simulator: the SDK runs in a worker thread, each of its GETs
    runs on the test's event loop."""

    def __init__(self, payer: httpx.AsyncClient, loop: asyncio.AbstractEventLoop) -> None:
        self.payer, self.loop = payer, loop

    def __call__(self, url: str, timeout: float | None = None) -> io.BytesIO:
        assert url.startswith(GATEWAY + "?")
        path = url[len(SANDBOX) :]
        response = asyncio.run_coroutine_threadsafe(self.payer.get(path), self.loop).result(timeout=10)
        return io.BytesIO(response.content)


def sdk_client(keys: dict[str, rsa.RSAPrivateKey], sim: AlipaySimulator) -> AliPay:
    client = AliPay(
        appid=APP_ID, app_notify_url=None, app_private_key_string=private_key_pem(keys["app"]),
        alipay_public_key_string=sim.public_key_pem,
    )  # fmt: skip
    client._gateway = GATEWAY
    return client


async def test_sdk_drives_barcode_pay_and_cancel_and_verifies_every_answer(
    env: Env, keys: dict[str, rsa.RSAPrivateKey], monkeypatch: pytest.MonkeyPatch
) -> None:
    import alipay as alipay_sdk

    monkeypatch.setattr(alipay_sdk, "urlopen", SdkWire(env.payer, asyncio.get_running_loop()))
    sdk = sdk_client(keys, env.sim)
    pay_code, never_code = await env.code("pay"), await env.code("never")

    paid = await asyncio.to_thread(
        sdk.api_alipay_trade_pay, "S1", "bar_code", pay_code, "测试 {商品}", notify_url=NOTIFY_URL,
        total_amount="0.01",
    )  # fmt: skip
    assert (paid["code"], paid["out_trade_no"], paid["total_amount"]) == ("10000", "S1", "0.01")
    assert paid["gmt_payment"] == "2026-03-10 10:00:00" and paid["fund_bill_list"][0]["amount"] == "0.01"

    waiting = await asyncio.to_thread(sdk.api_alipay_trade_pay, "S2", "bar_code", never_code, "t", total_amount="2")
    assert (waiting["code"], waiting["msg"].strip()) == ("10003", "order success pay inprocess")
    refused = await asyncio.to_thread(sdk.api_alipay_trade_pay, "S3", "bar_code", "28" + "1" * 16, "t",
                                      total_amount="1")  # fmt: skip
    assert (refused["code"], refused["sub_code"]) == ("40004", "ACQ.PAYMENT_AUTH_CODE_INVALID")

    closed = await asyncio.to_thread(sdk.api_alipay_trade_cancel, out_trade_no="S2")
    assert (closed["code"], closed["retry_flag"], closed["action"]) == ("10000", "N", "close")
    refunded = await asyncio.to_thread(sdk.api_alipay_trade_cancel, out_trade_no="S1")
    assert (refunded["action"], refunded["trade_no"]) == ("refund", paid["trade_no"])
    assert "gmt_refund_pay" in refunded

    # The platform's adapter reads what the SDK did; the SDK verifies the barcode trade's notify.
    assert (await env.adapter.query(TradeRef("S2"))).code == "TRADE_CLOSED"
    await env.state.notifier.drain()
    fields: dict[str, Any] = dict(parse_qsl(env.receiver.bodies[0].decode(), keep_blank_values=True))
    signature = fields.pop("sign")
    assert fields["out_trade_no"] == "S1" and sdk.verify(dict(fields), signature) is True
