"""WechatAdapter ↔ the WeChat Pay simulator, in process, plus wechatpayv3 (public-key mode) as an independent peer.

The simulator runs as its ASGI app behind httpx.ASGITransport; its notifies go to a tiny receiver app that
verifies them with the adapter, as the platform's callback route would. Synchronisation waits on conditions
(`notifier.drain()`, polling a predicate), never on fixed sleeps. Keys are generated per module.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import FastAPI, Request, Response
from wechatpayv3 import WeChatPay, WeChatPayType
from wechatpayv3.async_ import AsyncWeChatPay
from wechatpayv3.async_.type import WeChatPayType as AsyncWeChatPayType

from tomato.channel.adapters.wechat import StatementUnavailable, WechatAdapter, codec, parse_config, signing
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
from tomato.channel.sandbox import SandboxState, create_sandbox_app
from tomato.channel.sandbox.wechat import NOTIFY_GAPS_S, WechatSimulator
from tomato.core.clock import FrozenClock
from tomato.core.crypto import generate_rsa_key, private_key_pem, public_key_pem, rsa_verify_b64

SANDBOX = "http://sandbox.test"
NOTIFY_PATH = "/callbacks/wechat/ca1"
NOTIFY_URL = "http://platform.test" + NOTIFY_PATH
MCHID = "1900000109"
APPID = "wxd678efh567hg6787"
SERIAL = "5157F09EFDC096DE15EBE81A47057A7232F1B8E1"
API_V3_KEY = "0123456789abcdefghijABCDEFGHIJ01"  # 32 chars


@pytest.fixture(scope="module")
def keys() -> dict[str, rsa.RSAPrivateKey]:
    return {"merchant": generate_rsa_key(), "wechat": generate_rsa_key(), "other": generate_rsa_key()}


@dataclass
class Receiver:
    """The platform's notify endpoint: verifies with the adapter; refuses the first `fail_first` sends."""

    fail_first: int = 0
    ack: Callable[[int], Response] | None = None  # override the answer for send number n (1-based)
    adapter: WechatAdapter | None = None
    requests: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    notifies: list[ChannelNotify] = field(default_factory=list)
    rejected: int = 0

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post(NOTIFY_PATH)
        async def notify(request: Request) -> Response:
            body = await request.body()
            self.requests.append((dict(request.headers), body))
            if self.ack is not None:
                return self.ack(len(self.requests))
            assert self.adapter is not None
            try:
                self.notifies.append(self.adapter.parse_callback(dict(request.headers), body))
            except CallbackRejected:
                self.rejected += 1
                ack = self.adapter.callback_ack(False, "verification failed")
                return Response(ack.body, ack.status_code, media_type=ack.content_type)
            ack = self.adapter.callback_ack(len(self.requests) > self.fail_first, "try again")
            return Response(ack.body, ack.status_code, media_type=ack.content_type)

        return app


class TimeoutASGITransport(httpx.AsyncBaseTransport):
    """ASGITransport has no timeouts; give it a read timeout so a stalled simulator looks like the network."""

    def __init__(self, inner: httpx.AsyncBaseTransport, timeout_s: float) -> None:
        self._inner = inner
        self._timeout_s = timeout_s

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            return await asyncio.wait_for(self._inner.handle_async_request(request), self._timeout_s)
        except TimeoutError:
            raise httpx.ReadTimeout("simulated read timeout", request=request) from None


def account_config(keys: dict[str, rsa.RSAPrivateKey], sim: WechatSimulator, **overrides: str) -> dict[str, str]:
    return {
        "mchid": MCHID,
        "appid": APPID,
        "serial_no": SERIAL,
        "private_key_pem": private_key_pem(keys["merchant"]),
        "api_v3_key": API_V3_KEY,
        "platform_public_key_pem": sim.public_key_pem,
        "platform_public_key_id": sim.public_key_id,
        "base_url": SANDBOX,
        **overrides,
    }


@dataclass
class Env:
    state: SandboxState
    sim: WechatSimulator
    adapter: WechatAdapter
    payer: httpx.AsyncClient
    receiver: Receiver
    app: FastAPI

    async def scan(self, **body: Any) -> httpx.Response:
        return await self.payer.post("/sandbox/scan", json=body)

    async def faults(self, **body: Any) -> None:
        response = await self.payer.post("/sandbox/faults", json={"channel": "wechat", **body})
        assert response.status_code == 200, response.text


@pytest.fixture
async def env(keys: dict[str, rsa.RSAPrivateKey]) -> AsyncIterator[Env]:
    receiver = Receiver()
    state = SandboxState(time_scale=1_000_000, notify_transport=httpx.ASGITransport(app=receiver.app()))
    sim = WechatSimulator(state, private_key=keys["wechat"])
    sim.register_merchant(MCHID, SERIAL, public_key_pem(keys["merchant"]), API_V3_KEY)
    app = create_sandbox_app(state)
    transport = TimeoutASGITransport(httpx.ASGITransport(app=app), timeout_s=5.0)
    async with (
        guarded_client(5.0, transport=transport) as http,
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=SANDBOX) as payer,
    ):
        adapter = WechatAdapter(parse_config(account_config(keys, sim)), http)
        receiver.adapter = adapter
        yield Env(state, sim, adapter, payer, receiver, app)
        await state.aclose()


def create_req(order_no: str, pay_method: str = "WECHAT_NATIVE", amount: int = 1234) -> CreateRequest:
    return CreateRequest(
        order_no=order_no,
        amount=amount,
        subject="会员充值",
        pay_method=pay_method,
        notify_url=NOTIFY_URL,
        expire_at=datetime.now(UTC) + timedelta(minutes=30),
        client_ip="203.0.113.9",
        openid="oUpF8uMuAJO_M2pxb1Q9zNjWeS6o",
    )


def pay_code(result: Any) -> str:
    """What the payer scans: the QR text, the H5 URL, or the JSAPI `package`."""
    assert result.status is ResultStatus.SUCCESS and result.pay_data is not None, result
    value = result.pay_data.value
    return value["package"] if isinstance(value, dict) else str(value)


async def wait_until(predicate: Callable[[], bool], timeout_s: float = 5.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not predicate():
            await asyncio.sleep(0.005)


async def pay(env: Env, order_no: str, amount: int = 1234, pay_method: str = "WECHAT_NATIVE") -> str:
    created = await env.adapter.create(create_req(order_no, pay_method, amount))
    scanned = await env.scan(content=pay_code(created), result="paid")
    assert scanned.status_code == 200, scanned.text
    await env.state.notifier.drain()
    return str(scanned.json()["channel_trade_no"])


# --- payments -------------------------------------------------------------------------------------------


async def test_native_create_scan_notify_query(env: Env) -> None:
    created = await env.adapter.create(create_req("P1"))
    assert created.pay_data is not None and created.pay_data.type == "qr_code"
    code_url = str(created.pay_data.value)
    assert code_url.startswith("weixin://wxpay/bizpayurl?pr=")

    before = await env.adapter.query(TradeRef("P1"))
    assert (before.status, before.code, before.amount) == (ResultStatus.WAITING, "NOTPAY", 1234)

    scanned = await env.scan(content=code_url, result="paid")
    assert scanned.status_code == 200
    assert scanned.json()["channel"] == "wechat" and scanned.json()["status"] == "PAID"
    transaction_id = scanned.json()["channel_trade_no"]
    assert len(transaction_id) == 28 and transaction_id.startswith("4200")

    await env.state.notifier.drain()
    assert env.receiver.rejected == 0 and len(env.receiver.notifies) == 1
    notify = env.receiver.notifies[0]
    assert (notify.kind, notify.status, notify.order_no, notify.amount) == ("payment", ResultStatus.SUCCESS, "P1", 1234)
    assert notify.channel_trade_no == transaction_id and notify.paid_at is not None
    assert notify.raw["event_type"] == "TRANSACTION.SUCCESS" and notify.raw["trade_type"] == "NATIVE"
    assert [a.status_code for a in env.state.notifier.attempts] == [204]

    after = await env.adapter.query(TradeRef("P1"))
    assert (after.status, after.code) == (ResultStatus.SUCCESS, "SUCCESS")
    assert (after.channel_trade_no, after.amount, after.paid_at) == (transaction_id, 1234, notify.paid_at)

    assert (await env.scan(content=code_url, result="paid")).status_code == 409
    assert (await env.scan(order_no="P1", result="paid")).status_code == 409


async def test_jsapi_package_is_payable_and_pay_sign_verifies(env: Env, keys: dict[str, rsa.RSAPrivateKey]) -> None:
    created = await env.adapter.create(create_req("P2", "WECHAT_JSAPI"))
    assert created.pay_data is not None and created.pay_data.type == "jsapi"
    params = created.pay_data.value
    assert isinstance(params, dict)
    assert set(params) == {"appId", "timeStamp", "nonceStr", "package", "signType", "paySign"}
    assert params["appId"] == APPID and params["signType"] == "RSA" and params["package"].startswith("prepay_id=wx")
    message = f"{params['appId']}\n{params['timeStamp']}\n{params['nonceStr']}\n{params['package']}\n".encode()
    assert rsa_verify_b64(keys["merchant"].public_key(), message, params["paySign"])

    assert (await env.scan(content=params["package"], result="paid")).status_code == 200
    await env.state.notifier.drain()
    notify = env.receiver.notifies[0]
    assert notify.raw["trade_type"] == "JSAPI" and notify.raw["payer"]["openid"] == "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"


async def test_h5_url_opens_a_page_and_is_payable(env: Env) -> None:
    created = await env.adapter.create(create_req("P3", "WECHAT_H5"))
    assert created.pay_data is not None and created.pay_data.type == "redirect_url"
    h5_url = str(created.pay_data.value)
    assert h5_url.startswith(SANDBOX + "/wechat/checkmweb?prepay_id=wx")
    url = urlsplit(h5_url)
    page = await env.payer.get(url.path + "?" + url.query)
    assert page.status_code == 200 and "12.34" in page.text and "P3" in page.text
    assert (await env.payer.get("/wechat/checkmweb?prepay_id=wxnope")).status_code == 404

    assert (await env.scan(content=h5_url, result="paid")).status_code == 200
    await env.state.notifier.drain()
    assert env.receiver.notifies[0].raw["trade_type"] == "MWEB"


async def test_scan_by_order_no_and_unknown_scans(env: Env) -> None:
    await env.adapter.create(create_req("P4", "WECHAT_JSAPI"))
    assert (await env.scan(order_no="P4", result="paid")).status_code == 200
    assert (await env.scan(content="weixin://wxpay/bizpayurl?pr=nope", result="paid")).status_code == 404
    assert (await env.scan(order_no="P404", result="paid")).status_code == 404


async def test_failed_payment_is_not_notified_and_query_says_payerror(env: Env) -> None:
    created = await env.adapter.create(create_req("P5"))
    failed = await env.scan(content=pay_code(created), result="failed")
    assert failed.status_code == 200 and failed.json()["status"] == "FAILED"
    await env.state.notifier.drain()
    assert env.receiver.requests == []  # WeChat notifies successful payments only
    query = await env.adapter.query(TradeRef("P5"))
    assert (query.status, query.code) == (ResultStatus.FAIL, "PAYERROR") and query.settles_query
    assert query.channel_trade_no == failed.json()["channel_trade_no"]
    assert (await env.scan(order_no="P5", result="paid")).status_code == 409


async def test_create_is_idempotent_per_order(env: Env) -> None:
    first = await env.adapter.create(create_req("P6"))
    second = await env.adapter.create(create_req("P6"))
    assert first.pay_data == second.pay_data
    other = await env.adapter.create(create_req("P6", amount=999))
    assert (other.status, other.error, other.code) == (ResultStatus.FAIL, ErrorClass.REJECTED, "OUT_TRADE_NO_USED")
    await pay(env, "P7")
    paid = await env.adapter.create(create_req("P7"))
    assert (paid.status, paid.code) == (ResultStatus.FAIL, "ORDERPAID")


async def test_query_of_an_unknown_trade_keeps_waiting(env: Env) -> None:
    result = await env.adapter.query(TradeRef("P404"))
    assert (result.status, result.code) == (ResultStatus.WAITING, "ORDER_NOT_EXIST")


# --- close ----------------------------------------------------------------------------------------------


async def test_close_unpaid_then_not_payable(env: Env) -> None:
    created = await env.adapter.create(create_req("P10", "WECHAT_H5"))
    closed = await env.adapter.close(TradeRef("P10"))
    assert (closed.status, closed.code) == (ResultStatus.SUCCESS, None)
    query = await env.adapter.query(TradeRef("P10"))
    assert (query.status, query.code) == (ResultStatus.FAIL, "CLOSED")
    assert (await env.scan(content=pay_code(created), result="paid")).status_code == 409
    again = await env.adapter.close(TradeRef("P10"))
    assert again.status is ResultStatus.SUCCESS


async def test_close_paid_is_refused_and_unknown_counts_as_closed(env: Env) -> None:
    await pay(env, "P11")
    closed = await env.adapter.close(TradeRef("P11"))
    assert (closed.status, closed.error, closed.code) == (ResultStatus.FAIL, ErrorClass.REJECTED, "ORDERPAID")
    unknown = await env.adapter.close(TradeRef("P404"))
    assert (unknown.status, unknown.code) == (ResultStatus.SUCCESS, "ORDER_NOT_EXIST")


async def test_ignore_close_leaves_the_trade_payable(env: Env) -> None:
    await env.faults(ignore_close=True)
    created = await env.adapter.create(create_req("P12"))
    assert (await env.adapter.close(TradeRef("P12"))).status is ResultStatus.SUCCESS
    assert (await env.scan(content=pay_code(created), result="paid")).status_code == 200
    await env.state.notifier.drain()
    assert [n.status for n in env.receiver.notifies] == [ResultStatus.SUCCESS]
    assert (await env.adapter.query(TradeRef("P12"))).status is ResultStatus.SUCCESS


# --- refunds --------------------------------------------------------------------------------------------


def refund_req(refund_no: str, amount: int, order_no: str = "P20") -> RefundRequest:
    return RefundRequest(order_no, refund_no, amount, 1234, NOTIFY_URL, reason="客户退货")


async def test_refunds_partial_notify_replay_beyond_and_full(env: Env) -> None:
    await env.adapter.create(create_req("P20"))
    unpaid = await env.adapter.refund(refund_req("R0", 100))
    assert (unpaid.status, unpaid.error, unpaid.code) == (ResultStatus.FAIL, ErrorClass.REJECTED, "INVALID_REQUEST")
    assert (await env.scan(order_no="P20", result="paid")).status_code == 200
    await env.state.notifier.drain()
    transaction_id = env.receiver.notifies[0].channel_trade_no

    partial = await env.adapter.refund(refund_req("R1", 234))
    assert (partial.status, partial.code, partial.amount) == (ResultStatus.WAITING, "PROCESSING", 234)
    assert partial.channel_refund_no and partial.channel_trade_no == transaction_id
    await env.state.notifier.drain()
    refund_notify = env.receiver.notifies[1]
    assert (refund_notify.kind, refund_notify.status, refund_notify.refund_no) == ("refund", ResultStatus.SUCCESS, "R1")
    assert (refund_notify.order_no, refund_notify.amount) == ("P20", 234)
    assert refund_notify.channel_refund_no == partial.channel_refund_no
    assert refund_notify.raw["event_type"] == "REFUND.SUCCESS"

    confirmed = await env.adapter.query_refund(RefundRef("P20", "R1"))
    assert (confirmed.status, confirmed.amount, confirmed.channel_refund_no) == (
        ResultStatus.SUCCESS,
        234,
        partial.channel_refund_no,
    )
    assert confirmed.paid_at is not None  # the refund's success_time
    replay = await env.adapter.refund(refund_req("R1", 234))
    assert (replay.status, replay.channel_refund_no) == (ResultStatus.SUCCESS, partial.channel_refund_no)
    reused = await env.adapter.refund(refund_req("R1", 235))
    assert (reused.status, reused.code) == (ResultStatus.FAIL, "INVALID_REQUEST")

    beyond = await env.adapter.refund(refund_req("R2", 1001))  # refundable balance is 1000
    assert (beyond.status, beyond.error, beyond.code) == (ResultStatus.FAIL, ErrorClass.REJECTED, "NOT_ENOUGH")
    missing = await env.adapter.query_refund(RefundRef("P20", "R2"))
    assert (missing.status, missing.code) == (ResultStatus.WAITING, "RESOURCE_NOT_EXISTS")

    rest = await env.adapter.refund(refund_req("R3", 1000))
    assert rest.status is ResultStatus.WAITING
    assert (await env.adapter.refund(refund_req("R4", 1))).code == "NOT_ENOUGH"
    await env.state.notifier.drain()
    assert [n.refund_no for n in env.receiver.notifies if n.kind == "refund"] == ["R1", "R3"]
    trade = await env.adapter.query(TradeRef("P20"))
    assert (trade.status, trade.code) == (ResultStatus.SUCCESS, "REFUND")  # still paid: the payment stands


async def test_full_refund_and_reject_refunds_fault(env: Env) -> None:
    await pay(env, "P21")
    await env.faults(reject_refunds=True)
    refused = await env.adapter.refund(refund_req("R1", 1234, "P21"))
    assert (refused.status, refused.error, refused.code) == (ResultStatus.FAIL, ErrorClass.REJECTED, "NO_AUTH")
    assert (await env.payer.delete("/sandbox/faults")).status_code == 200
    full = await env.adapter.refund(refund_req("R1", 1234, "P21"))
    assert (full.status, full.amount) == (ResultStatus.WAITING, 1234)
    assert (await env.adapter.query_refund(RefundRef("P21", "R1"))).status is ResultStatus.SUCCESS
    unknown_order = await env.adapter.refund(refund_req("R9", 1, "P404"))
    assert (unknown_order.status, unknown_order.code) == (ResultStatus.FAIL, "RESOURCE_NOT_EXISTS")


# --- notifies -------------------------------------------------------------------------------------------


async def test_notify_retried_until_2xx_with_a_stable_id_and_fresh_signatures(env: Env) -> None:
    env.receiver.fail_first = 3
    await pay(env, "P30")
    attempts = env.state.notifier.attempts
    assert [(a.status_code, a.accepted) for a in attempts] == [(400, False), (400, False), (400, False), (204, True)]
    assert len({a.notify_id for a in attempts}) == 1
    bodies = {body for _, body in env.receiver.requests}
    assert len(bodies) == 1 and json.loads(bodies.pop())["id"] == attempts[0].notify_id
    nonces = {headers["wechatpay-nonce"] for headers, _ in env.receiver.requests}
    assert len(nonces) == 4  # every send signed afresh
    assert len(env.receiver.notifies) == 4 and env.receiver.rejected == 0


async def test_notify_sent_sixteen_times_then_given_up(env: Env) -> None:
    env.receiver.fail_first = 100
    await pay(env, "P31")
    assert len(NOTIFY_GAPS_S) == 15 and sum(NOTIFY_GAPS_S) == 24 * 3600 + 4 * 60
    assert len(env.state.notifier.attempts) == 16
    assert not any(a.accepted for a in env.state.notifier.attempts)
    assert env.state.notifier.pending == 0


async def test_http_status_decides_the_ack(env: Env) -> None:
    """A 200 is an ack whatever its body says; a 500 or a 202 is not."""
    answers = {1: Response(status_code=500), 2: Response(status_code=202), 3: Response(b'{"code":"FAIL"}', 200)}
    env.receiver.ack = lambda n: answers[n]
    await pay(env, "P32")
    assert [(a.status_code, a.accepted) for a in env.state.notifier.attempts] == [
        (500, False),
        (202, False),
        (200, True),
    ]


async def test_drop_and_duplicate_notify(env: Env) -> None:
    await env.faults(drop_notify=True)
    await pay(env, "P33")
    assert env.receiver.requests == []
    assert (await env.adapter.query(TradeRef("P33"))).status is ResultStatus.SUCCESS  # the platform must query
    await env.faults(drop_notify=False, duplicate_notify=2)
    await pay(env, "P34")
    assert len(env.receiver.notifies) == 3
    assert len({n.raw["notify_id"] for n in env.receiver.notifies}) == 1


async def test_shutdown_cancels_pending_retries(keys: dict[str, rsa.RSAPrivateKey]) -> None:
    receiver = Receiver(fail_first=100)
    state = SandboxState(time_scale=1.0, notify_transport=httpx.ASGITransport(app=receiver.app()))
    sim = WechatSimulator(state, private_key=keys["wechat"])
    sim.register_merchant(MCHID, SERIAL, public_key_pem(keys["merchant"]), API_V3_KEY)
    app = create_sandbox_app(state)
    async with app.router.lifespan_context(app), httpx.AsyncClient(transport=httpx.ASGITransport(app=app)) as http:
        adapter = WechatAdapter(parse_config(account_config(keys, sim)), http)
        receiver.adapter = adapter
        created = await adapter.create(create_req("P35"))
        scanned = await http.post(SANDBOX + "/sandbox/scan", json={"content": pay_code(created), "result": "paid"})
        assert scanned.status_code == 200
        await wait_until(lambda: len(state.notifier.attempts) == 1)
        assert state.notifier.pending == 1  # waiting 15 s for the second send
    assert state.notifier.pending == 0 and len(state.notifier.attempts) == 1


async def test_signatures_use_real_time_when_the_business_clock_is_advanced(keys: dict[str, rsa.RSAPrivateKey]) -> None:
    """Platform tests freeze and advance the sandbox clock by days; signatures must still be fresh for adapters."""
    clock = FrozenClock(datetime(2024, 1, 1, 2, 0, tzinfo=UTC))
    receiver = Receiver()
    state = SandboxState(time_scale=1_000_000, clock=clock, notify_transport=httpx.ASGITransport(app=receiver.app()))
    sim = WechatSimulator(state, private_key=keys["wechat"])
    sim.register_merchant(MCHID, SERIAL, public_key_pem(keys["merchant"]), API_V3_KEY)
    app = create_sandbox_app(state)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=SANDBOX) as http:
        adapter = WechatAdapter(parse_config(account_config(keys, sim)), http)
        receiver.adapter = adapter
        created = await adapter.create(create_req("P45"))
        clock.advance(timedelta(days=2))
        assert (await http.post("/sandbox/scan", json={"content": pay_code(created)})).status_code == 200
        await state.notifier.drain()
        query = await adapter.query(TradeRef("P45"))
        await state.aclose()
    assert receiver.rejected == 0 and receiver.notifies[0].paid_at == datetime(2024, 1, 3, 2, 0, tzinfo=UTC)
    assert (query.status, query.paid_at) == (ResultStatus.SUCCESS, datetime(2024, 1, 3, 2, 0, tzinfo=UTC))


# --- API rules and faults -------------------------------------------------------------------------------


async def test_requests_signed_with_another_key_get_a_signed_401(env: Env, keys: dict[str, rsa.RSAPrivateKey]) -> None:
    env.sim.register_merchant(MCHID, SERIAL, public_key_pem(keys["other"]), API_V3_KEY)
    created = await env.adapter.create(create_req("P40"))
    assert (created.status, created.error, created.code) == (ResultStatus.FAIL, ErrorClass.REJECTED, "SIGN_ERROR")
    query = await env.adapter.query(TradeRef("P40"))
    assert (query.status, query.error, query.code) == (ResultStatus.FAIL, ErrorClass.REJECTED, "SIGN_ERROR")
    assert not query.settles_query  # a refused query says nothing about the trade


@pytest.mark.parametrize(
    "case", ["no_auth", "stale", "other_serial", "unknown_mchid", "tampered_body", "query_not_signed"]
)
async def test_simulator_refuses_bad_authorization(env: Env, keys: dict[str, rsa.RSAPrivateKey], case: str) -> None:
    now = int(datetime.now(UTC).timestamp())
    method, url, body = "POST", "/v3/pay/transactions/out-trade-no/P41/close", codec.dumps({"mchid": MCHID})
    ts, mchid, serial, sent = now, MCHID, SERIAL, body
    if case == "stale":
        ts = now - 301
    elif case == "other_serial":
        serial = "0" * 40
    elif case == "unknown_mchid":
        mchid = "1900000999"
    elif case == "tampered_body":
        sent = body.replace(b"}", b" }")
    signed_url = url
    if case == "query_not_signed":
        method, url, signed_url, sent, body = "GET", url[:-6] + "?mchid=" + MCHID, url[:-6], b"", b""
    headers = {"Content-Type": "application/json"}
    if case != "no_auth":
        headers["Authorization"] = signing.authorization(
            mchid=mchid,
            serial_no=serial,
            private_key=keys["merchant"],
            method=method,
            url=signed_url,
            body=body,
            timestamp=str(ts),
            nonce=signing.nonce_str(),
        )
    response = await env.payer.request(method, url, content=sent, headers=headers)
    assert response.status_code == 401 and response.json()["code"] == "SIGN_ERROR"
    assert signing.verify_response(
        keys["wechat"].public_key(),
        response.headers["wechatpay-timestamp"],
        response.headers["wechatpay-nonce"],
        response.content,
        response.headers["wechatpay-signature"],
    )
    assert response.headers["wechatpay-serial"] == env.sim.public_key_id
    assert response.headers["content-type"] == "application/json; charset=utf-8"


async def signed_call(
    env: Env, keys: dict[str, rsa.RSAPrivateKey], method: str, url: str, body: bytes = b""
) -> httpx.Response:
    """A request signed like a merchant's, with whatever body the test wants to send."""
    auth = signing.authorization(
        mchid=MCHID,
        serial_no=SERIAL,
        private_key=keys["merchant"],
        method=method,
        url=url,
        body=body,
        timestamp=str(int(datetime.now(UTC).timestamp())),
        nonce=signing.nonce_str(),
    )
    return await env.payer.request(method, url, content=body, headers={"Authorization": auth})


@pytest.mark.parametrize(
    ("method", "url", "body", "status", "code"),
    [
        ("POST", "/v3/pay/transactions/native", b"[1]", 400, "PARAM_ERROR"),
        ("POST", "/v3/pay/transactions/native", b"{not json", 400, "PARAM_ERROR"),
        ("POST", "/v3/pay/transactions/jsapi", {"payer": "oX"}, 400, "PARAM_ERROR"),
        ("POST", "/v3/pay/transactions/h5", {"scene_info": "x"}, 400, "PARAM_ERROR"),
        ("POST", "/v3/pay/transactions/h5", {"scene_info": {"payer_client_ip": "1.2.3.4"}}, 400, "PARAM_ERROR"),
        ("POST", "/v3/pay/transactions/native", {"amount": {"total": 12.34}}, 400, "PARAM_ERROR"),
        ("POST", "/v3/pay/transactions/native", {"amount": {"total": "1234"}}, 400, "PARAM_ERROR"),
        ("POST", "/v3/pay/transactions/native", {"amount": {"total": 1, "currency": "USD"}}, 400, "PARAM_ERROR"),
        ("POST", "/v3/pay/transactions/native", {"mchid": "1900000999"}, 400, "PARAM_ERROR"),
        ("POST", "/v3/pay/transactions/native", {"time_expire": "tomorrow"}, 400, "PARAM_ERROR"),
        ("GET", "/v3/pay/transactions/out-trade-no/P1?mchid=1900000999", None, 400, "PARAM_ERROR"),
        ("GET", "/v3/pay/transactions/id/4200?mchid=" + MCHID, None, 404, "ORDER_NOT_EXIST"),
        ("POST", "/v3/pay/transactions/out-trade-no/P1/close", {"mchid": "1"}, 400, "PARAM_ERROR"),
        ("GET", "/v3/bill/tradebill?bill_date=2024-13-01", None, 400, "PARAM_ERROR"),
        ("GET", "/v3/bill/tradebill?bill_date=2024-01-01&bill_type=REFUND", None, 400, "PARAM_ERROR"),
        ("GET", "/v3/billdownload/file?token=nope", None, 404, "RESOURCE_NOT_EXISTS"),
        ("GET", "/v3/certificates", None, 404, "NOT_FOUND"),
    ],
)
async def test_simulator_answers_bad_requests_with_signed_errors(
    env: Env, keys: dict[str, rsa.RSAPrivateKey], method: str, url: str, body: Any, status: int, code: str
) -> None:
    base: dict[str, Any] = {
        "appid": APPID,
        "mchid": MCHID,
        "description": "d",
        "out_trade_no": "P1",
        "notify_url": NOTIFY_URL,
        "amount": {"total": 1, "currency": "CNY"},
    }
    if isinstance(body, dict):
        amount = body.pop("amount", None)
        content = json.dumps({**base, **body, **({"amount": amount} if amount else {})}).encode()
    else:
        content = body or b""
    response = await signed_call(env, keys, method, url, content)
    assert (response.status_code, response.json()["code"]) == (status, code), response.text
    assert signing.verify_response(
        keys["wechat"].public_key(),
        response.headers["wechatpay-timestamp"],
        response.headers["wechatpay-nonce"],
        response.content,
        response.headers["wechatpay-signature"],
    )


async def test_error_rate_is_unknown_server_and_reset_restores(env: Env) -> None:
    await env.faults(error_rate=1.0)
    result = await env.adapter.create(create_req("P42"))
    assert (result.status, result.error) == (ResultStatus.UNKNOWN, ErrorClass.SERVER)
    assert (await env.payer.delete("/sandbox/faults")).status_code == 200
    assert (await env.adapter.create(create_req("P42"))).status is ResultStatus.SUCCESS


async def test_timeout_rate_times_the_client_out(env: Env, keys: dict[str, rsa.RSAPrivateKey]) -> None:
    await env.faults(timeout_rate=1.0, latency_ms=1)
    transport = TimeoutASGITransport(httpx.ASGITransport(app=env.app), timeout_s=0.2)
    async with guarded_client(0.2, transport=transport) as http:
        adapter = WechatAdapter(parse_config(account_config(keys, env.sim)), http)
        result = await adapter.create(create_req("P43"))
    assert (result.status, result.error) == (ResultStatus.UNKNOWN, ErrorClass.TIMEOUT)
    await env.faults(timeout_rate=0.0)
    # The stalled request was done all the same: the outcome was unknown, not a failure.
    assert (await env.adapter.query(TradeRef("P43"))).code == "NOTPAY"


async def test_adapter_refuses_a_simulator_with_another_key(env: Env, keys: dict[str, rsa.RSAPrivateKey]) -> None:
    config = account_config(keys, env.sim, platform_public_key_pem=public_key_pem(keys["other"]))
    adapter = WechatAdapter(parse_config(config), env.adapter._http)
    result = await adapter.create(create_req("P44"))
    assert (result.status, result.error) == (ResultStatus.UNKNOWN, ErrorClass.BAD_SIGNATURE)


# --- statements -----------------------------------------------------------------------------------------


async def test_trade_bill_lists_payments_and_refunds(env: Env) -> None:
    await pay(env, "P50")
    await pay(env, "P51", amount=500, pay_method="WECHAT_JSAPI")
    await env.adapter.refund(refund_req("R50", 234, "P50"))
    today = codec.beijing_date(datetime.now(UTC))
    text = await env.adapter.download_statement(today)
    bill = codec.parse_trade_bill(text)
    rows = sorted(bill.rows, key=lambda r: (r["商户订单号"], r["交易状态"]))
    assert [(r["商户订单号"], r["交易状态"], r["应结订单金额"], r["退款金额"]) for r in rows] == [
        ("P50", "REFUND", "0.00", "2.34"),
        ("P50", "SUCCESS", "12.34", "0.00"),
        ("P51", "SUCCESS", "5.00", "0.00"),
    ]
    assert rows[0]["商户退款单号"] == "R50" and rows[2]["交易类型"] == "JSAPI"
    assert bill.summary["总交易单数"] == "3" and bill.summary["应结订单总金额"] == "17.34"
    assert bill.summary["退款总金额"] == "2.34"
    with pytest.raises(StatementUnavailable) as info:
        await env.adapter.download_statement(today - timedelta(days=400))
    assert (info.value.result.status, info.value.result.code) == (ResultStatus.FAIL, "NO_STATEMENT_EXIST")


# --- wechatpayv3 as an independent peer -----------------------------------------------------------------


def sdk_sync(keys: dict[str, rsa.RSAPrivateKey], sim: WechatSimulator) -> WeChatPay:
    return WeChatPay(
        wechatpay_type=WeChatPayType.NATIVE,
        mchid=MCHID,
        private_key=private_key_pem(keys["merchant"]),
        cert_serial_no=SERIAL,
        appid=APPID,
        apiv3_key=API_V3_KEY,
        notify_url=NOTIFY_URL,
        public_key=sim.public_key_pem,
        public_key_id=sim.public_key_id,
    )


@pytest.fixture
async def sdk(env: Env, keys: dict[str, rsa.RSAPrivateKey]) -> AsyncIterator[AsyncWeChatPay]:
    """The SDK's async client in public-key mode, its httpx client pointed at the simulator in process."""
    client = AsyncWeChatPay(
        wechatpay_type=AsyncWeChatPayType.NATIVE,
        mchid=MCHID,
        private_key=private_key_pem(keys["merchant"]),
        cert_serial_no=SERIAL,
        appid=APPID,
        apiv3_key=API_V3_KEY,
        notify_url=NOTIFY_URL,
        public_key=env.sim.public_key_pem,
        public_key_id=env.sim.public_key_id,
    )
    client._core._gate_way = SANDBOX
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=env.app)) as http:
        client._core._client = http
        yield client


async def test_sdk_signed_requests_pass_and_sdk_verifies_every_answer(env: Env, sdk: AsyncWeChatPay) -> None:
    """The SDK signs (its own Authorization), and raises unless each 2xx answer verifies with its validator."""
    code, text = await sdk.pay(description="测试 商品", out_trade_no="P60", amount={"total": 1, "currency": "CNY"})
    assert code == 200 and json.loads(text)["code_url"].startswith("weixin://wxpay/bizpayurl?pr=")
    code, text = await sdk.query(out_trade_no="P60")
    assert code == 200 and json.loads(text)["trade_state"] == "NOTPAY"

    assert (await env.scan(order_no="P60", result="paid")).status_code == 200
    await env.state.notifier.drain()
    code, text = await sdk.query(out_trade_no="P60")
    transaction = json.loads(text)
    assert transaction["trade_state"] == "SUCCESS" and transaction["amount"]["payer_total"] == 1
    code, text = await sdk.query(transaction_id=transaction["transaction_id"])
    assert code == 200 and json.loads(text)["out_trade_no"] == "P60"

    code, text = await sdk.refund(
        out_refund_no="R60",
        amount={"refund": 1, "total": 1, "currency": "CNY"},
        out_trade_no="P60",
        notify_url=NOTIFY_URL,
    )
    assert code == 200 and json.loads(text)["status"] == "PROCESSING"
    code, text = await sdk.query_refund(out_refund_no="R60")
    assert code == 200 and json.loads(text)["status"] == "SUCCESS"

    code, _ = await sdk.pay(
        description="jsapi",
        out_trade_no="P61",
        amount={"total": 2},
        payer={"openid": "oSdk"},
        pay_type=AsyncWeChatPayType.JSAPI,
    )
    assert code == 200
    code, text = await sdk.close(out_trade_no="P61")
    assert (code, text) == (204, b"")  # an empty 204, and its signature over the empty body verified


async def test_sdk_verification_can_fail(env: Env, sdk: AsyncWeChatPay, keys: dict[str, rsa.RSAPrivateKey]) -> None:
    code, text = await sdk.query(out_trade_no="P63")
    assert code == 404 and json.loads(text)["code"] == "ORDER_NOT_EXIST"  # the SDK checks 2xx answers only
    code, _ = await sdk.pay(description="t", out_trade_no="P63", amount={"total": 1})
    assert code == 200
    sdk._core._public_key = keys["other"].public_key()
    with pytest.raises(Exception, match="failed to verify the signature"):
        await sdk.query(out_trade_no="P63")


async def test_sdk_decrypts_our_payment_and_refund_notifies(env: Env, keys: dict[str, rsa.RSAPrivateKey]) -> None:
    await pay(env, "P62")
    await env.adapter.refund(refund_req("R62", 100, "P62"))
    await env.state.notifier.drain()
    wx = sdk_sync(keys, env.sim)
    (pay_headers, pay_body), (refund_headers, refund_body) = env.receiver.requests
    payment = wx.callback(pay_headers, pay_body)
    assert payment["event_type"] == "TRANSACTION.SUCCESS" and payment["resource_type"] == "encrypt-resource"
    assert payment["resource"]["out_trade_no"] == "P62" and payment["resource"]["amount"]["total"] == 1234
    assert payment["resource"]["trade_state"] == "SUCCESS" and payment["resource"]["mchid"] == MCHID
    refund = wx.callback(refund_headers, refund_body)
    assert refund["event_type"] == "REFUND.SUCCESS" and refund["resource"]["out_refund_no"] == "R62"
    assert refund["resource"]["refund_status"] == "SUCCESS" and refund["resource"]["amount"]["refund"] == 100

    assert wx.callback(pay_headers, pay_body.replace(b'"event_type"', b'"event_type" ')) is None
    no_type = {k: v for k, v in pay_headers.items() if k != "wechatpay-signature-type"}
    with pytest.raises(Exception, match="does not support this algorithm"):
        wx.callback(no_type, pay_body)
    other_key = WeChatPay(
        wechatpay_type=WeChatPayType.NATIVE,
        mchid=MCHID,
        private_key=private_key_pem(keys["merchant"]),
        cert_serial_no=SERIAL,
        appid=APPID,
        apiv3_key="X" * 32,
        notify_url=NOTIFY_URL,
        public_key=env.sim.public_key_pem,
        public_key_id=env.sim.public_key_id,
    )
    assert other_key.callback(pay_headers, pay_body) is None  # a wrong APIv3 key cannot decrypt
