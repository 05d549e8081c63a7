"""AlipayAdapter ↔ the Alipay simulator, in process, plus python-alipay-sdk as an independent peer.

The simulator runs as its ASGI app behind httpx.ASGITransport; its notifies go to a tiny receiver app that
verifies them with the adapter, as the platform's callback route would. Synchronisation waits on conditions
(`notifier.drain()`, polling a predicate), never on fixed sleeps.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest
from alipay import AliPay
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import FastAPI, Request, Response

from tomato.channel.adapters.alipay import AlipayAdapter, parse_config
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
from tomato.channel.sandbox import AlipaySimulator, SandboxState, create_sandbox_app
from tomato.core.crypto import generate_rsa_key, private_key_pem, public_key_pem

SANDBOX = "http://sandbox.test"
GATEWAY = SANDBOX + "/alipay/gateway.do"
NOTIFY_URL = "http://platform.test/callbacks/alipay/ca1"
APP_ID = "2021000000000001"


@pytest.fixture(scope="module")
def keys() -> dict[str, rsa.RSAPrivateKey]:
    return {"app": generate_rsa_key(), "alipay": generate_rsa_key(), "other": generate_rsa_key()}


@dataclass
class Receiver:
    """The platform's notify endpoint: verifies with the adapter, answers `fail` for the first `fail_first` sends."""

    fail_first: int = 0
    adapter: AlipayAdapter | None = None
    bodies: list[bytes] = field(default_factory=list)
    notifies: list[ChannelNotify] = field(default_factory=list)
    rejected: int = 0

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/callbacks/alipay/ca1")
        async def notify(request: Request) -> Response:
            body = await request.body()
            self.bodies.append(body)
            assert self.adapter is not None
            try:
                self.notifies.append(self.adapter.parse_callback(dict(request.headers), body))
            except CallbackRejected:
                self.rejected += 1
                ack = self.adapter.callback_ack(False)
                return Response(ack.body, ack.status_code, media_type=ack.content_type)
            ack = self.adapter.callback_ack(len(self.bodies) > self.fail_first)
            return Response(ack.body, ack.status_code, media_type=ack.content_type)

        return app


@dataclass
class Env:
    state: SandboxState
    sim: AlipaySimulator
    adapter: AlipayAdapter
    payer: httpx.AsyncClient
    receiver: Receiver
    app: FastAPI

    async def scan(self, **body: Any) -> httpx.Response:
        return await self.payer.post("/sandbox/scan", json=body)

    async def faults(self, **body: Any) -> None:
        response = await self.payer.post("/sandbox/faults", json={"channel": "alipay", **body})
        assert response.status_code == 200, response.text


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


@pytest.fixture
async def env(keys: dict[str, rsa.RSAPrivateKey]) -> AsyncIterator[Env]:
    receiver = Receiver()
    state = SandboxState(time_scale=1_000_000, notify_transport=httpx.ASGITransport(app=receiver.app()))
    sim = AlipaySimulator(state, private_key=keys["alipay"])
    sim.register_app(APP_ID, public_key_pem(keys["app"]))
    app = create_sandbox_app(state)
    config = parse_config(
        {
            "app_id": APP_ID,
            "private_key_pem": private_key_pem(keys["app"]),
            "alipay_public_key_pem": sim.public_key_pem,
            "gateway_url": GATEWAY,
        }
    )
    transport = TimeoutASGITransport(httpx.ASGITransport(app=app), timeout_s=5.0)
    async with (
        guarded_client(5.0, transport=transport) as http,
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=SANDBOX) as payer,
    ):
        adapter = AlipayAdapter(config, http)
        receiver.adapter = adapter
        yield Env(state, sim, adapter, payer, receiver, app)
        await state.aclose()


def create_req(order_no: str, pay_method: str = "ALIPAY_QR", amount: int = 1234) -> CreateRequest:
    return CreateRequest(
        order_no=order_no,
        amount=amount,
        subject="会员充值",
        pay_method=pay_method,
        notify_url=NOTIFY_URL,
        expire_at=datetime.now(UTC) + timedelta(minutes=30),
        return_url="https://shop.test/done",
    )


async def wait_until(predicate: Callable[[], bool], timeout_s: float = 5.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not predicate():
            await asyncio.sleep(0.005)


async def pay_qr(env: Env, order_no: str, amount: int = 1234) -> str:
    created = await env.adapter.create(create_req(order_no, amount=amount))
    assert created.status is ResultStatus.SUCCESS and created.pay_data is not None
    scanned = await env.scan(content=created.pay_data.value, result="paid")
    assert scanned.status_code == 200, scanned.text
    await env.state.notifier.drain()
    return str(scanned.json()["channel_trade_no"])


# --- payments -------------------------------------------------------------------------------------------


async def test_qr_create_scan_notify_query(env: Env) -> None:
    created = await env.adapter.create(create_req("P1"))
    assert created.status is ResultStatus.SUCCESS and created.pay_data is not None
    assert created.pay_data.type == "qr_code"
    qr = str(created.pay_data.value)
    assert qr.startswith("https://qr.alipay.com/sim")

    before = await env.adapter.query(TradeRef("P1"))
    assert (before.status, before.code) == (ResultStatus.WAITING, "ACQ.TRADE_NOT_EXIST")

    scanned = await env.scan(content=qr, result="paid")
    assert scanned.status_code == 200
    body = scanned.json()
    assert body["channel"] == "alipay" and body["status"] == "PAID"
    trade_no = body["channel_trade_no"]
    assert len(trade_no) == 28 and trade_no.isdigit()

    await env.state.notifier.drain()
    assert len(env.receiver.notifies) == 1 and env.receiver.rejected == 0
    notify = env.receiver.notifies[0]
    assert (notify.kind, notify.status, notify.order_no) == ("payment", ResultStatus.SUCCESS, "P1")
    assert notify.amount == 1234 and notify.channel_trade_no == trade_no and notify.paid_at is not None
    fields = dict(parse_qsl(env.receiver.bodies[0].decode(), keep_blank_values=True))
    assert all(v != "" for v in fields.values())
    assert fields["total_amount"] == "12.34" and fields["notify_type"] == "trade_status_sync"

    after = await env.adapter.query(TradeRef("P1"))
    assert after.status is ResultStatus.SUCCESS
    assert (after.channel_trade_no, after.amount) == (trade_no, 1234)
    assert after.paid_at == notify.paid_at

    again = await env.scan(content=qr, result="paid")
    assert again.status_code == 409
    by_order = await env.scan(order_no="P1", result="paid")
    assert by_order.status_code == 409


async def test_precreate_is_idempotent_per_order(env: Env) -> None:
    first = await env.adapter.create(create_req("P2"))
    second = await env.adapter.create(create_req("P2"))
    assert first.pay_data == second.pay_data
    other_amount = await env.adapter.create(create_req("P2", amount=999))
    assert (other_amount.status, other_amount.error) == (ResultStatus.FAIL, ErrorClass.REJECTED)


async def test_unknown_scans_are_404(env: Env) -> None:
    assert (await env.scan(content="https://qr.alipay.com/simnope", result="paid")).status_code == 404
    assert (await env.scan(order_no="P404", result="paid")).status_code == 404
    assert (await env.scan(result="paid")).status_code == 422


async def test_wap_url_opened_then_paid_by_order_no(env: Env) -> None:
    created = await env.adapter.create(create_req("P3", "ALIPAY_WAP"))
    assert created.pay_data is not None and created.pay_data.type == "redirect_url"
    assert (await env.scan(order_no="P3", result="paid")).status_code == 404  # nobody opened the URL yet

    url = urlsplit(str(created.pay_data.value))
    page = await env.payer.get(url.path + "?" + url.query)
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "12.34" in page.text

    waiting = await env.adapter.query(TradeRef("P3"))
    assert (waiting.status, waiting.code) == (ResultStatus.WAITING, "WAIT_BUYER_PAY")
    paid = await env.scan(order_no="P3", result="paid")
    assert paid.status_code == 200
    await env.state.notifier.drain()
    assert [n.status for n in env.receiver.notifies] == [ResultStatus.SUCCESS]
    assert (await env.adapter.query(TradeRef("P3"))).status is ResultStatus.SUCCESS


async def test_pc_redirect_url_scanned_directly(env: Env) -> None:
    created = await env.adapter.create(create_req("P4", "ALIPAY_PC"))
    assert created.pay_data is not None
    paid = await env.scan(content=created.pay_data.value, result="paid")
    assert paid.status_code == 200
    await env.state.notifier.drain()
    assert env.receiver.notifies[0].order_no == "P4"


async def test_tampered_redirect_url_is_refused(env: Env) -> None:
    created = await env.adapter.create(create_req("P5", "ALIPAY_PC"))
    assert created.pay_data is not None
    tampered = str(created.pay_data.value).replace("12.34", "0.01")
    assert (await env.scan(content=tampered, result="paid")).status_code == 404
    url = urlsplit(tampered)
    assert (await env.payer.get(url.path + "?" + url.query)).status_code == 400


async def test_failed_payment(env: Env) -> None:
    created = await env.adapter.create(create_req("P6"))
    assert created.pay_data is not None
    failed = await env.scan(content=created.pay_data.value, result="failed")
    assert failed.status_code == 200 and failed.json()["status"] == "FAILED"
    await env.state.notifier.drain()
    assert [n.status for n in env.receiver.notifies] == [ResultStatus.FAIL]
    query = await env.adapter.query(TradeRef("P6"))
    assert (query.status, query.code) == (ResultStatus.FAIL, "TRADE_CLOSED")
    assert (await env.scan(order_no="P6", result="paid")).status_code == 409


# --- close ----------------------------------------------------------------------------------------------


async def test_close_waiting_trade(env: Env) -> None:
    created = await env.adapter.create(create_req("P7", "ALIPAY_WAP"))
    assert created.pay_data is not None
    assert (await env.scan(content=created.pay_data.value, result="failed")).status_code == 200
    # A fresh order, opened but unpaid, then closed.
    created = await env.adapter.create(create_req("P8", "ALIPAY_PC"))
    assert created.pay_data is not None
    url = urlsplit(str(created.pay_data.value))
    assert (await env.payer.get(url.path + "?" + url.query)).status_code == 200
    closed = await env.adapter.close(TradeRef("P8"))
    assert closed.status is ResultStatus.SUCCESS and closed.channel_trade_no
    query = await env.adapter.query(TradeRef("P8"))
    assert (query.status, query.code) == (ResultStatus.FAIL, "TRADE_CLOSED")
    assert (await env.scan(order_no="P8", result="paid")).status_code == 409


async def test_close_unscanned_qr_still_closes(env: Env) -> None:
    created = await env.adapter.create(create_req("P9"))
    assert created.pay_data is not None
    closed = await env.adapter.close(TradeRef("P9"))
    assert (closed.status, closed.code) == (ResultStatus.SUCCESS, "ACQ.TRADE_NOT_EXIST")
    assert (await env.scan(content=created.pay_data.value, result="paid")).status_code == 409


async def test_close_paid_trade_is_refused(env: Env) -> None:
    await pay_qr(env, "P10")
    closed = await env.adapter.close(TradeRef("P10"))
    assert (closed.status, closed.error, closed.code) == (
        ResultStatus.FAIL,
        ErrorClass.REJECTED,
        "ACQ.TRADE_STATUS_ERROR",
    )


async def test_ignore_close_leaves_the_trade_payable(env: Env) -> None:
    await env.faults(ignore_close=True)
    created = await env.adapter.create(create_req("P11", "ALIPAY_WAP"))
    assert created.pay_data is not None
    url = urlsplit(str(created.pay_data.value))
    assert (await env.payer.get(url.path + "?" + url.query)).status_code == 200
    assert (await env.adapter.close(TradeRef("P11"))).status is ResultStatus.SUCCESS
    assert (await env.scan(order_no="P11", result="paid")).status_code == 200
    await env.state.notifier.drain()
    assert [n.status for n in env.receiver.notifies] == [ResultStatus.SUCCESS]
    assert (await env.adapter.query(TradeRef("P11"))).status is ResultStatus.SUCCESS

    qr = await env.adapter.create(create_req("P12"))
    assert qr.pay_data is not None
    assert (await env.adapter.close(TradeRef("P12"))).status is ResultStatus.SUCCESS
    assert (await env.scan(content=qr.pay_data.value, result="paid")).status_code == 200


# --- refunds --------------------------------------------------------------------------------------------


def refund_req(refund_no: str, amount: int) -> RefundRequest:
    return RefundRequest("P20", refund_no, amount, 1234, NOTIFY_URL)


async def test_refunds_partial_replay_beyond_and_full(env: Env) -> None:
    before_paid = await env.adapter.create(create_req("P20"))
    assert before_paid.status is ResultStatus.SUCCESS
    not_paid = await env.adapter.refund(refund_req("R0", 100))
    assert (not_paid.status, not_paid.code) == (ResultStatus.FAIL, "ACQ.TRADE_NOT_EXIST")
    scanned = await env.scan(order_no="P20", result="paid")
    assert scanned.status_code == 200
    await env.state.notifier.drain()

    partial = await env.adapter.refund(refund_req("R1", 234))
    assert (partial.status, partial.amount) == (ResultStatus.SUCCESS, 234)
    replay = await env.adapter.refund(refund_req("R1", 234))
    assert replay.status is ResultStatus.WAITING  # fund_change N
    confirmed = await env.adapter.query_refund(RefundRef("P20", "R1"))
    assert (confirmed.status, confirmed.amount) == (ResultStatus.SUCCESS, 234)
    assert (await env.adapter.query_refund(RefundRef("P20", "R9"))).status is ResultStatus.WAITING

    beyond = await env.adapter.refund(refund_req("R2", 1001))  # balance is 10.00
    assert (beyond.status, beyond.error, beyond.code) == (
        ResultStatus.FAIL,
        ErrorClass.REJECTED,
        "ACQ.REFUND_AMT_NOT_EQUAL_TOTAL",
    )
    assert (await env.adapter.query_refund(RefundRef("P20", "R2"))).status is ResultStatus.WAITING

    rest = await env.adapter.refund(refund_req("R3", 1000))
    assert rest.status is ResultStatus.SUCCESS
    assert (await env.adapter.refund(refund_req("R4", 1))).code == "ACQ.REFUND_AMT_NOT_EQUAL_TOTAL"
    fully_refunded = await env.adapter.query(TradeRef("P20"))
    assert (fully_refunded.status, fully_refunded.code) == (ResultStatus.FAIL, "TRADE_CLOSED")


async def test_full_refund_in_one_go_and_reject_refunds_fault(env: Env) -> None:
    await pay_qr(env, "P20")
    await env.faults(reject_refunds=True)
    refused = await env.adapter.refund(refund_req("R1", 1234))
    assert (refused.status, refused.error) == (ResultStatus.FAIL, ErrorClass.REJECTED)
    assert (await env.payer.delete("/sandbox/faults")).status_code == 200
    full = await env.adapter.refund(refund_req("R1", 1234))
    assert (full.status, full.amount) == (ResultStatus.SUCCESS, 1234)


# --- notifies -------------------------------------------------------------------------------------------


async def test_notify_retried_until_success_with_a_stable_notify_id(env: Env) -> None:
    env.receiver.fail_first = 3
    await pay_qr(env, "P30")
    attempts = env.state.notifier.attempts
    assert [a.accepted for a in attempts] == [False, False, False, True]
    assert len({a.notify_id for a in attempts}) == 1
    ids = {dict(parse_qsl(b.decode()))["notify_id"] for b in env.receiver.bodies}
    assert ids == {attempts[0].notify_id} and len(env.receiver.bodies) == 4


async def test_notify_sent_eight_times_then_given_up(env: Env) -> None:
    env.receiver.fail_first = 100
    await pay_qr(env, "P31")
    assert len(env.state.notifier.attempts) == 8
    assert not any(a.accepted for a in env.state.notifier.attempts)
    assert env.state.notifier.pending == 0


async def test_drop_notify_sends_nothing(env: Env) -> None:
    await env.faults(drop_notify=True)
    await pay_qr(env, "P32")
    assert env.receiver.bodies == [] and env.state.notifier.attempts == []
    assert (await env.adapter.query(TradeRef("P32"))).status is ResultStatus.SUCCESS  # the platform must query


async def test_duplicate_notify_sends_extra_copies(env: Env) -> None:
    await env.faults(duplicate_notify=2)
    await pay_qr(env, "P33")
    assert len(env.receiver.notifies) == 3
    assert len({n.raw["notify_id"] for n in env.receiver.notifies}) == 1


async def test_shutdown_cancels_pending_retries(keys: dict[str, rsa.RSAPrivateKey]) -> None:
    receiver = Receiver(fail_first=100)
    state = SandboxState(time_scale=1.0, notify_transport=httpx.ASGITransport(app=receiver.app()))
    sim = AlipaySimulator(state, private_key=keys["alipay"])
    sim.register_app(APP_ID, public_key_pem(keys["app"]))
    app = create_sandbox_app(state)
    config = {
        "app_id": APP_ID,
        "private_key_pem": private_key_pem(keys["app"]),
        "alipay_public_key_pem": sim.public_key_pem,
        "gateway_url": GATEWAY,
    }
    async with app.router.lifespan_context(app), httpx.AsyncClient(transport=httpx.ASGITransport(app=app)) as http:
        adapter = AlipayAdapter(parse_config(config), http)
        receiver.adapter = adapter
        created = await adapter.create(create_req("P34"))
        assert created.pay_data is not None
        response = await http.post(
            SANDBOX + "/sandbox/scan", json={"content": created.pay_data.value, "result": "paid"}
        )
        assert response.status_code == 200
        await wait_until(lambda: len(state.notifier.attempts) == 1)
        assert state.notifier.pending == 1  # waiting 4 minutes for the second send
    assert state.notifier.pending == 0
    assert len(state.notifier.attempts) == 1


# --- gateway rules and faults ---------------------------------------------------------------------------


async def test_requests_signed_with_another_key_get_a_signed_refusal(
    env: Env, keys: dict[str, rsa.RSAPrivateKey]
) -> None:
    env.sim.register_app(APP_ID, public_key_pem(keys["other"]))
    result = await env.adapter.query(TradeRef("P40"))
    assert (result.status, result.error, result.code) == (
        ResultStatus.FAIL,
        ErrorClass.REJECTED,
        "isv.invalid-signature",
    )


async def test_unknown_app_id(env: Env, keys: dict[str, rsa.RSAPrivateKey]) -> None:
    config = parse_config(
        {
            "app_id": "2021000000000999",
            "private_key_pem": private_key_pem(keys["app"]),
            "alipay_public_key_pem": env.sim.public_key_pem,
            "gateway_url": GATEWAY,
        }
    )
    stranger = AlipayAdapter(config, env.adapter._http)
    result = await stranger.query(TradeRef("P41"))
    assert (result.status, result.code) == (ResultStatus.FAIL, "isv.invalid-app-id")


async def test_error_rate_is_unknown_server_and_reset_restores(env: Env) -> None:
    await env.faults(error_rate=1.0)
    result = await env.adapter.create(create_req("P42"))
    assert (result.status, result.error) == (ResultStatus.UNKNOWN, ErrorClass.SERVER)
    assert (await env.payer.delete("/sandbox/faults")).status_code == 200
    assert (await env.adapter.create(create_req("P42"))).status is ResultStatus.SUCCESS


async def test_timeout_rate_times_the_client_out(env: Env, keys: dict[str, rsa.RSAPrivateKey]) -> None:
    env.state.timeout_sleep_s = 30.0
    await env.faults(timeout_rate=1.0, latency_ms=1)
    transport = TimeoutASGITransport(httpx.ASGITransport(app=env.app), timeout_s=0.2)
    config = parse_config(
        {
            "app_id": APP_ID,
            "private_key_pem": private_key_pem(keys["app"]),
            "alipay_public_key_pem": env.sim.public_key_pem,
            "gateway_url": GATEWAY,
        }
    )
    async with guarded_client(0.2, transport=transport) as http:
        result = await AlipayAdapter(config, http).create(create_req("P43"))
    assert (result.status, result.error) == (ResultStatus.UNKNOWN, ErrorClass.TIMEOUT)


async def test_faults_api_keeps_omitted_fields(env: Env) -> None:
    await env.faults(latency_ms=5, duplicate_notify=1)
    await env.faults(ignore_close=True)
    faults = env.state.faults["alipay"]
    assert (faults.latency_ms, faults.duplicate_notify, faults.ignore_close) == (5, 1, True)
    assert (await env.payer.post("/sandbox/faults", json={"channel": "paypal"})).status_code == 422
    assert (await env.payer.post("/sandbox/faults", json={"channel": "alipay", "error_rate": 2})).status_code == 422
    assert (await env.payer.delete("/sandbox/faults")).status_code == 200
    assert env.state.faults["alipay"].latency_ms == 0 and not env.state.faults["alipay"].ignore_close


# --- python-alipay-sdk as an independent peer -----------------------------------------------------------


def sdk_client(keys: dict[str, rsa.RSAPrivateKey], sim: AlipaySimulator) -> AliPay:
    client = AliPay(
        appid=APP_ID,
        app_notify_url=NOTIFY_URL,
        app_private_key_string=private_key_pem(keys["app"]),
        alipay_public_key_string=sim.public_key_pem,
    )
    client._gateway = GATEWAY
    return client


async def test_sdk_signed_precreate_verifies_and_its_response_passes_the_sdk(
    env: Env, keys: dict[str, rsa.RSAPrivateKey]
) -> None:
    sdk = sdk_client(keys, env.sim)
    data = sdk.build_body(
        "alipay.trade.precreate",
        {"out_trade_no": "P50", "total_amount": "0.01", "subject": "测试 {商品}"},
        notify_url=NOTIFY_URL,
    )
    query = sdk.sign_data(data)
    raw = (await env.payer.get("/alipay/gateway.do?" + query)).text
    node = sdk._verify_and_return_sync_response(raw, "alipay_trade_precreate_response")
    assert node["code"] == "10000" and node["out_trade_no"] == "P50"
    assert node["qr_code"].startswith("https://qr.alipay.com/sim")
    assert raw.startswith('{"alipay_trade_precreate_response":{') and ',"sign":"' in raw

    # A signed business failure passes the SDK's verification too.
    query_data = sdk.build_body("alipay.trade.query", {"out_trade_no": "P50"})
    raw = (await env.payer.get("/alipay/gateway.do?" + sdk.sign_data(query_data))).text
    refused = sdk._verify_and_return_sync_response(raw, "alipay_trade_query_response")
    assert refused["sub_code"] == "ACQ.TRADE_NOT_EXIST"

    # The trade the SDK created is payable and the notify reaches our receiver.
    assert (await env.scan(content=node["qr_code"], result="paid")).status_code == 200
    await env.state.notifier.drain()
    assert env.receiver.notifies[0].amount == 1


async def test_sdk_response_check_fails_when_tampered(env: Env, keys: dict[str, rsa.RSAPrivateKey]) -> None:
    """The peer can fail: the same check rejects a node altered after signing."""
    from alipay.exceptions import AliPayValidationError

    sdk = sdk_client(keys, env.sim)
    data = sdk.build_body("alipay.trade.precreate", {"out_trade_no": "P51", "total_amount": "0.01", "subject": "t"})
    raw = (await env.payer.get("/alipay/gateway.do?" + sdk.sign_data(data))).text
    with pytest.raises(AliPayValidationError):
        sdk._verify_and_return_sync_response(raw.replace("P51", "P52"), "alipay_trade_precreate_response")


async def test_sdk_verifies_the_simulator_notify(env: Env, keys: dict[str, rsa.RSAPrivateKey]) -> None:
    await pay_qr(env, "P53")
    fields: dict[str, Any] = dict(parse_qsl(env.receiver.bodies[0].decode(), keep_blank_values=True))
    signature = fields.pop("sign")
    assert "sign_type" in fields
    sdk = sdk_client(keys, env.sim)
    assert sdk.verify(dict(fields), signature) is True
    fields["total_amount"] = "0.01"
    assert sdk.verify(dict(fields), signature) is False
    assert json.loads(fields["fund_bill_list"])[0]["fundChannel"] == "ALIPAYACCOUNT"
