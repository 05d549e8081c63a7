"""WeChat Pay partner mode (服务商): WechatAdapter ↔ the simulator, and wechatpayv3 in partner_mode as a second peer.

One provider (SP_MCHID) is authorized for two sub-merchants (A with a sub_appid, B without); a third sub_mchid is
not authorized. Every request the adapter sends is recorded off the wire, so paths, queries and bodies are checked
byte for byte, and the simulator's own log says whom each partner call spoke for. No sleeps: notifies are
awaited with `notifier.drain()`.
"""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import FastAPI
from wechatpayv3 import WeChatPay, WeChatPayType
from wechatpayv3.async_ import AsyncWeChatPay
from wechatpayv3.async_.type import WeChatPayType as AsyncWeChatPayType

from tests.integration.test_wechat_sandbox import NOTIFY_URL, SANDBOX, Receiver, pay_code
from tomato.channel.adapters.wechat import WechatAdapter, codec, parse_config, signing
from tomato.channel.http import guarded_client
from tomato.channel.protocol import (
    CallbackRejected,
    CreateRequest,
    ErrorClass,
    RefundRef,
    RefundRequest,
    ResultStatus,
    SubMerchant,
    TradeRef,
)
from tomato.channel.sandbox import SandboxState, create_sandbox_app
from tomato.channel.sandbox.state import TradeState
from tomato.channel.sandbox.wechat import SIM_OPENID, WechatSimulator
from tomato.channel.sandbox.wechat_partner import PartnerCall, owner_key
from tomato.core.crypto import generate_rsa_key, private_key_pem, public_key_pem, rsa_verify_b64
from tomato.reconciliation.parsers import wechat as wechat_bill
from tomato.reconciliation.parsers.lines import LineKind, StatementLine

SP_MCHID = "1230000109"
SP_APPID = "wxsp1234567890abcd"
SERIAL = "6B0C3A7E5D1F2A9B8C7D6E5F4A3B2C1D0E9F8A7B"
API_V3_KEY = "partnerKEY0123456789abcdefghijkl"  # 32 chars
SUB_A, SUB_APPID_A = "1900000201", "wxsubA0000000000a1"
SUB_B = "1900000202"
SUB_X = "1900000299"  # never authorized
A = SubMerchant(sub_mchid=SUB_A, sub_appid=SUB_APPID_A)
B = SubMerchant(sub_mchid=SUB_B)
X = SubMerchant(sub_mchid=SUB_X)


@pytest.fixture(scope="module")
def keys() -> dict[str, rsa.RSAPrivateKey]:
    return {"provider": generate_rsa_key(), "wechat": generate_rsa_key()}


class Recording(httpx.AsyncBaseTransport):
    """Keeps every request the adapter sends (method, raw path with query, body, Authorization) before passing it."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self._inner = inner
        self.sent: list[tuple[str, str, bytes, str]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = await request.aread()
        self.sent.append(
            (request.method, request.url.raw_path.decode(), body, request.headers.get("authorization", ""))
        )
        return await self._inner.handle_async_request(request)


@dataclass
class Env:
    state: SandboxState
    sim: WechatSimulator
    adapter: WechatAdapter
    payer: httpx.AsyncClient
    receiver: Receiver
    app: FastAPI
    wire: Recording
    config: dict[str, str] = field(default_factory=dict)

    async def pay(self, order_no: str, sub: SubMerchant, amount: int = 1234) -> None:
        created = await self.adapter.create(create_req(order_no, sub, amount=amount))
        assert (
            await self.payer.post("/sandbox/scan", json={"content": pay_code(created), "result": "paid"})
        ).is_success
        await self.state.notifier.drain()


def partner_config(keys: dict[str, rsa.RSAPrivateKey], sim: WechatSimulator) -> dict[str, str]:
    return {
        "mode": "partner",
        "sp_mchid": SP_MCHID,
        "sp_appid": SP_APPID,
        "serial_no": SERIAL,
        "private_key_pem": private_key_pem(keys["provider"]),
        "api_v3_key": API_V3_KEY,
        "platform_public_key_pem": sim.public_key_pem,
        "platform_public_key_id": sim.public_key_id,
        "base_url": SANDBOX,
    }


@pytest.fixture
async def env(keys: dict[str, rsa.RSAPrivateKey]) -> AsyncIterator[Env]:
    receiver = Receiver()
    state = SandboxState(time_scale=1_000_000, notify_transport=httpx.ASGITransport(app=receiver.app()))
    sim = WechatSimulator(state, private_key=keys["wechat"])
    sim.register_merchant(SP_MCHID, SERIAL, public_key_pem(keys["provider"]), API_V3_KEY)
    sim.register_sub_merchant(SP_MCHID, SUB_A, SUB_APPID_A)
    sim.register_sub_merchant(SP_MCHID, SUB_B)
    app = create_sandbox_app(state)
    wire = Recording(httpx.ASGITransport(app=app))
    config = partner_config(keys, sim)
    async with (
        guarded_client(5.0, transport=wire) as http,
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=SANDBOX) as payer,
    ):
        adapter = WechatAdapter(parse_config(config), http)
        receiver.adapter = adapter
        yield Env(state, sim, adapter, payer, receiver, app, wire, config)
        await state.aclose()


def create_req(order_no: str, sub: SubMerchant | None, pay_method: str = "WECHAT_NATIVE", amount: int = 1234) -> Any:
    return CreateRequest(
        order_no=order_no,
        amount=amount,
        subject="会员充值",
        pay_method=pay_method,
        notify_url=NOTIFY_URL,
        expire_at=datetime(2030, 1, 1, 4, 0, tzinfo=UTC),
        client_ip="203.0.113.9",
        openid="oPayer000000000000000000001",
        sub=sub,
    )


def refund_req(order_no: str, refund_no: str, amount: int, sub: SubMerchant | None) -> RefundRequest:
    return RefundRequest(order_no, refund_no, amount, 1234, NOTIFY_URL, reason="退货", sub=sub)


# --- the adapter against the simulator ------------------------------------------------------------------


async def test_partner_native_pay_query_close_refund_and_notifies(env: Env) -> None:
    created = await env.adapter.create(create_req("SP1", A))
    assert created.status is ResultStatus.SUCCESS and str(pay_code(created)).startswith("weixin://wxpay/bizpayurl")
    method, path, body, auth = env.wire.sent[-1]
    assert (method, path) == ("POST", "/v3/pay/partner/transactions/native")
    assert body == codec.dumps(
        {
            "sp_appid": SP_APPID,
            "sp_mchid": SP_MCHID,
            "sub_appid": SUB_APPID_A,
            "sub_mchid": SUB_A,
            "description": "会员充值",
            "out_trade_no": "SP1",
            "time_expire": "2030-01-01T12:00:00+08:00",
            "notify_url": NOTIFY_URL,
            "amount": {"total": 1234, "currency": "CNY"},
        }
    )
    assert signing.parse_authorization(auth)["mchid"] == SP_MCHID  # the provider signs

    waiting = await env.adapter.query(TradeRef("SP1", sub=A))
    assert (waiting.status, waiting.code, waiting.amount) == (ResultStatus.WAITING, "NOTPAY", 1234)
    assert (
        env.wire.sent[-1][1] == f"/v3/pay/partner/transactions/out-trade-no/SP1?sp_mchid={SP_MCHID}&sub_mchid={SUB_A}"
    )

    scanned = await env.payer.post("/sandbox/scan", json={"content": pay_code(created), "result": "paid"})
    assert scanned.status_code == 200
    await env.state.notifier.drain()
    assert env.receiver.rejected == 0 and len(env.receiver.notifies) == 1
    notify = env.receiver.notifies[0]
    assert (notify.kind, notify.status, notify.order_no, notify.sub_merchant) == (
        "payment",
        ResultStatus.SUCCESS,
        "SP1",
        SUB_A,
    )
    assert (notify.raw["sp_mchid"], notify.raw["sub_appid"], notify.raw["sp_appid"]) == (
        SP_MCHID,
        SUB_APPID_A,
        SP_APPID,
    )
    assert "mchid" not in notify.raw and notify.raw["payer"] == {"sp_openid": SIM_OPENID, "sub_openid": SIM_OPENID}

    paid = await env.adapter.query(TradeRef("SP1", sub=A))
    assert (paid.status, paid.channel_trade_no) == (ResultStatus.SUCCESS, scanned.json()["channel_trade_no"])

    partial = await env.adapter.refund(refund_req("SP1", "SR1", 234, A))
    assert (partial.status, partial.code, partial.amount) == (ResultStatus.WAITING, "PROCESSING", 234)
    method, path, body, _ = env.wire.sent[-1]
    assert (method, path) == ("POST", "/v3/refund/domestic/refunds")
    assert json.loads(body)["sub_mchid"] == SUB_A and list(json.loads(body))[0] == "sub_mchid"
    await env.state.notifier.drain()
    refund_notify = env.receiver.notifies[1]
    assert (refund_notify.kind, refund_notify.refund_no, refund_notify.amount) == ("refund", "SR1", 234)
    assert refund_notify.sub_merchant == SUB_A and refund_notify.raw["sp_mchid"] == SP_MCHID
    done = await env.adapter.query_refund(RefundRef("SP1", "SR1", sub=A))
    assert (done.status, done.amount) == (ResultStatus.SUCCESS, 234)
    assert env.wire.sent[-1][1] == f"/v3/refund/domestic/refunds/SR1?sub_mchid={SUB_A}"

    await env.adapter.create(create_req("SP2", A))
    closed = await env.adapter.close(TradeRef("SP2", sub=A))
    assert closed.status is ResultStatus.SUCCESS
    method, path, body, _ = env.wire.sent[-1]
    assert (method, path, body) == (
        "POST",
        "/v3/pay/partner/transactions/out-trade-no/SP2/close",
        codec.dumps({"sp_mchid": SP_MCHID, "sub_mchid": SUB_A}),
    )
    after_close = await env.adapter.query(TradeRef("SP2", sub=A))
    assert (after_close.status, after_close.code) == (ResultStatus.FAIL, "CLOSED")

    # The simulator saw the provider and the sub-merchant on every call the adapter sent.
    assert [(c.method, c.path) for c in env.sim.partner.calls] == [(m, p.split("?")[0]) for m, p, _, _ in env.wire.sent]
    assert {(c.sp_mchid, c.sub_mchid) for c in env.sim.partner.calls} == {(SP_MCHID, SUB_A)}
    trade = env.sim.book.find(owner_key(SP_MCHID, SUB_A), "SP1")
    assert trade is not None and trade.refunded == 234


async def test_jsapi_payer_is_sub_openid_with_a_sub_appid_else_sp_openid(
    env: Env, keys: dict[str, rsa.RSAPrivateKey]
) -> None:
    with_app = await env.adapter.create(create_req("SJ1", A, "WECHAT_JSAPI"))
    body = json.loads(env.wire.sent[-1][2])
    assert env.wire.sent[-1][1] == "/v3/pay/partner/transactions/jsapi"
    assert body["payer"] == {"sub_openid": "oPayer000000000000000000001"} and body["sub_appid"] == SUB_APPID_A
    assert with_app.pay_data is not None and isinstance(with_app.pay_data.value, dict)
    params = with_app.pay_data.value
    assert params["appId"] == SUB_APPID_A  # the payer's openid belongs to the sub-merchant's app: it pays there
    message = "\n".join([SUB_APPID_A, params["timeStamp"], params["nonceStr"], params["package"], ""]).encode()
    assert rsa_verify_b64(keys["provider"].public_key(), message, params["paySign"])

    without_app = await env.adapter.create(create_req("SJ2", B, "WECHAT_JSAPI"))
    body = json.loads(env.wire.sent[-1][2])
    assert body["payer"] == {"sp_openid": "oPayer000000000000000000001"} and "sub_appid" not in body
    assert without_app.pay_data is not None and isinstance(without_app.pay_data.value, dict)
    assert without_app.pay_data.value["appId"] == SP_APPID

    await env.payer.post("/sandbox/scan", json={"order_no": "SJ1", "result": "paid"})
    await env.state.notifier.drain()
    assert env.receiver.notifies[0].raw["payer"] == {
        "sp_openid": SIM_OPENID,
        "sub_openid": "oPayer000000000000000000001",
    }


async def test_h5_in_partner_mode(env: Env) -> None:
    created = await env.adapter.create(create_req("SH1", B, "WECHAT_H5"))
    assert created.status is ResultStatus.SUCCESS and created.pay_data is not None
    assert created.pay_data.type == "redirect_url"
    body = json.loads(env.wire.sent[-1][2])
    assert env.wire.sent[-1][1] == "/v3/pay/partner/transactions/h5"
    assert body["scene_info"]["payer_client_ip"] == "203.0.113.9" and body["sub_mchid"] == SUB_B


async def test_a_request_without_a_sub_merchant_is_refused_before_any_http(env: Env) -> None:
    calls = [
        env.adapter.create(create_req("SN1", None)),
        env.adapter.create(create_req("SN1", SubMerchant(sub_appid=SUB_APPID_A))),
        env.adapter.query(TradeRef("SN1")),
        env.adapter.close(TradeRef("SN1")),
        env.adapter.refund(refund_req("SN1", "SNR1", 1, None)),
        env.adapter.query_refund(RefundRef("SN1", "SNR1")),
    ]
    for call in calls:
        result = await call
        assert (result.status, result.error, result.code) == (
            ResultStatus.FAIL,
            ErrorClass.REJECTED,
            "SUB_MERCHANT_REQUIRED",
        )
        assert not result.settles_query
    assert env.wire.sent == [] and env.sim.book.trades == {}


async def test_an_unauthorized_sub_merchant_is_refused_and_nothing_changes(env: Env) -> None:
    refused = await env.adapter.create(create_req("SU1", X))
    assert (refused.status, refused.error, refused.code) == (ResultStatus.FAIL, ErrorClass.REJECTED, "NO_AUTH")
    assert refused.message == "受理关系不存在"
    assert env.sim.book.trades == {} and env.sim.partner.calls[-1] == PartnerCall(
        "POST", "/v3/pay/partner/transactions/native", SP_MCHID, SUB_X
    )
    for result in (
        await env.adapter.query(TradeRef("SU1", sub=X)),
        await env.adapter.close(TradeRef("SU1", sub=X)),
        await env.adapter.refund(refund_req("SU1", "SUR1", 1, X)),
        await env.adapter.query_refund(RefundRef("SU1", "SUR1", sub=X)),
    ):
        assert (result.status, result.error, result.code) == (ResultStatus.FAIL, ErrorClass.REJECTED, "NO_AUTH")
    today = codec.beijing_date(datetime.now(UTC))
    with pytest.raises(Exception, match="NO_AUTH"):
        await env.adapter.download_statement(today, X)
    assert env.sim.book.trades == {}


async def test_another_sub_merchant_cannot_query_close_or_refund_the_trade(env: Env) -> None:
    await env.pay("SO1", A)
    await env.adapter.create(create_req("SO2", A))  # unpaid
    assert (await env.adapter.refund(refund_req("SO1", "SOR1", 100, A))).status is ResultStatus.WAITING

    query = await env.adapter.query(TradeRef("SO1", sub=B))
    assert (query.status, query.code) == (ResultStatus.WAITING, "ORDER_NOT_EXIST")  # unknown to B: never a failure
    close = await env.adapter.close(TradeRef("SO2", sub=B))
    assert close.code == "ORDER_NOT_EXIST"  # as good as closed for B: B has no such trade…
    trade = env.sim.book.find(owner_key(SP_MCHID, SUB_A), "SO2")
    assert trade is not None and trade.state is TradeState.WAITING  # …and A's trade is untouched
    refund = await env.adapter.refund(refund_req("SO1", "SOR2", 100, B))
    assert (refund.status, refund.error, refund.code) == (ResultStatus.FAIL, ErrorClass.REJECTED, "RESOURCE_NOT_EXISTS")
    refund_query = await env.adapter.query_refund(RefundRef("SO1", "SOR1", sub=B))
    assert (refund_query.status, refund_query.code) == (ResultStatus.WAITING, "RESOURCE_NOT_EXISTS")
    paid = env.sim.book.find(owner_key(SP_MCHID, SUB_A), "SO1")
    assert paid is not None and paid.refunded == 100 and list(paid.refunds) == ["SOR1"]
    still = await env.adapter.query(TradeRef("SO1", sub=A))
    assert (still.status, still.code) == (ResultStatus.SUCCESS, "REFUND")


def _signed_notify(
    env: Env, keys: dict[str, rsa.RSAPrivateKey], resource: dict[str, Any]
) -> tuple[dict[str, str], bytes]:
    body = signing.seal_notify(
        API_V3_KEY,
        notify_id="n-1",
        create_time=codec.format_time(datetime.now(UTC)),
        event_type="TRANSACTION.SUCCESS",
        summary="支付成功",
        original_type="transaction",
        plaintext=codec.dumps(resource),
    )
    headers = signing.signed_headers(keys["wechat"], env.sim.public_key_id, body, int(datetime.now(UTC).timestamp()))
    return headers, body


async def test_a_partner_notify_for_another_provider_is_rejected(env: Env, keys: dict[str, rsa.RSAPrivateKey]) -> None:
    resource = {
        "sp_appid": SP_APPID,
        "sp_mchid": SP_MCHID,
        "sub_mchid": SUB_B,
        "out_trade_no": "SC1",
        "transaction_id": "4200000000000000000000000001",
        "trade_type": "NATIVE",
        "trade_state": "SUCCESS",
        "success_time": "2030-01-01T10:00:00+08:00",
        "amount": {"total": 100, "currency": "CNY"},
    }
    ours = env.adapter.parse_callback(*_signed_notify(env, keys, resource))
    assert (ours.sub_merchant, ours.order_no, ours.amount) == (SUB_B, "SC1", 100)  # the control: it parses
    for bad in (
        {**resource, "sp_mchid": "1999999999"},  # another provider
        {k: v for k, v in resource.items() if k != "sub_mchid"},  # names no sub-merchant
        {**{k: v for k, v in resource.items() if k not in ("sp_mchid", "sub_mchid")}, "mchid": SP_MCHID},  # direct
    ):
        with pytest.raises(CallbackRejected):
            env.adapter.parse_callback(*_signed_notify(env, keys, bad))


# --- the partner trade bill ---------------------------------------------------------------------------


async def test_partner_trade_bill_lists_every_sub_merchant_and_parses(env: Env) -> None:
    await env.pay("SB1", A)
    await env.pay("SB2", B, amount=500)
    await env.adapter.refund(refund_req("SB1", "SBR1", 234, A))
    today = codec.beijing_date(datetime.now(UTC))

    whole = await env.adapter.download_statement(today)
    assert env.wire.sent[-2][1] == f"/v3/bill/tradebill?bill_date={today.isoformat()}&bill_type=ALL&tar_type=GZIP"
    rows = codec.parse_trade_bill(whole).rows
    cells = sorted((r["商户订单号"], r["交易状态"], r["商户号"], r["特约商户号"]) for r in rows)
    assert cells == [
        ("SB1", "REFUND", SP_MCHID, SUB_A),
        ("SB1", "SUCCESS", SP_MCHID, SUB_A),
        ("SB2", "SUCCESS", SP_MCHID, SUB_B),
    ]
    only_a = await env.adapter.download_statement(today, A)
    assert env.wire.sent[-2][1].endswith(f"&tar_type=GZIP&sub_mchid={SUB_A}")
    assert {r["特约商户号"] for r in codec.parse_trade_bill(only_a).rows} == {SUB_A}
    only_b = codec.parse_trade_bill(await env.adapter.download_statement(today, B)).rows
    assert [(r["商户订单号"], r["应结订单金额"]) for r in only_b] == [("SB2", "5.00")]

    # The reconciliation parser reads the provider's bill and matches on our out_trade_no (its COPY fast path, for
    # bills past one 64 KiB block, is checked on a large partner bill in tests/unit/test_wechat_partner.py).
    lines = [line for line in wechat_bill.parse(io.BytesIO(whole)) if isinstance(line, StatementLine)]
    assert sorted((line.kind, line.order_no, line.refund_no, line.amount) for line in lines) == [
        (LineKind.PAYMENT, "SB1", None, 1234),
        (LineKind.PAYMENT, "SB2", None, 500),
        (LineKind.REFUND, "SB1", "SBR1", 234),
    ]
    general = list(wechat_bill.records(io.BytesIO(whole), "batch-2", copy_text=True))
    staged = [record for item in general if isinstance(item, list) for record in item]
    assert sorted((r[2], r[3], r[4]) for r in staged) == [
        ("PAYMENT", "SB1", "SB1"),
        ("PAYMENT", "SB2", "SB2"),
        ("REFUND", "SBR1", "SB1"),
    ]


# --- wechatpayv3 in partner_mode as an independent peer ------------------------------------------------


@pytest.fixture
async def sdk(env: Env, keys: dict[str, rsa.RSAPrivateKey]) -> AsyncIterator[AsyncWeChatPay]:
    client = AsyncWeChatPay(
        wechatpay_type=AsyncWeChatPayType.NATIVE,
        mchid=SP_MCHID,
        private_key=private_key_pem(keys["provider"]),
        cert_serial_no=SERIAL,
        appid=SP_APPID,
        apiv3_key=API_V3_KEY,
        notify_url=NOTIFY_URL,
        partner_mode=True,
        public_key=env.sim.public_key_pem,
        public_key_id=env.sim.public_key_id,
    )
    client._core._gate_way = SANDBOX
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=env.app)) as http:
        client._core._client = http
        yield client


async def test_sdk_partner_mode_drives_the_simulator_and_verifies_every_answer(env: Env, sdk: AsyncWeChatPay) -> None:
    """The SDK raises unless each 2xx answer verifies with its own validator, so every 200/204 here is verified."""
    code, text = await sdk.pay(
        description="sdk", out_trade_no="SK1", amount={"total": 10, "currency": "CNY"}, sub_mchid=SUB_B
    )
    assert code == 200 and json.loads(text)["code_url"].startswith("weixin://wxpay/bizpayurl?pr=")
    code, text = await sdk.query(out_trade_no="SK1", sub_mchid=SUB_B)
    answer = json.loads(text)
    assert code == 200 and answer["trade_state"] == "NOTPAY"
    assert (answer["sp_mchid"], answer["sub_mchid"], answer["sp_appid"]) == (SP_MCHID, SUB_B, SP_APPID)

    assert (await env.payer.post("/sandbox/scan", json={"order_no": "SK1", "result": "paid"})).status_code == 200
    await env.state.notifier.drain()
    code, text = await sdk.query(out_trade_no="SK1", sub_mchid=SUB_B)
    assert code == 200 and json.loads(text)["trade_state"] == "SUCCESS"
    transaction_id = json.loads(text)["transaction_id"]
    code, text = await sdk.query(transaction_id=transaction_id, sub_mchid=SUB_B)
    assert code == 200 and json.loads(text)["out_trade_no"] == "SK1"

    code, text = await sdk.refund(
        out_refund_no="SKR1", amount={"refund": 4, "total": 10, "currency": "CNY"}, out_trade_no="SK1", sub_mchid=SUB_B
    )
    assert code == 200 and json.loads(text)["status"] == "PROCESSING"
    code, text = await sdk.query_refund(out_refund_no="SKR1", sub_mchid=SUB_B)
    assert code == 200 and json.loads(text)["status"] == "SUCCESS"

    code, _ = await sdk.pay(
        description="close me", out_trade_no="SK2", amount={"total": 3}, sub_mchid=SUB_A, sub_appid=SUB_APPID_A
    )
    assert code == 200
    code, text = await sdk.close(out_trade_no="SK2", sub_mchid=SUB_A)
    assert (code, text) == (204, b"")
    code, text = await sdk.trade_bill(bill_date=codec.beijing_date(datetime.now(UTC)).isoformat(), sub_mchid=SUB_B)
    assert code == 200 and json.loads(text)["hash_type"] == "SHA1"

    assert [(c.sp_mchid, c.sub_mchid) for c in env.sim.partner.calls][:2] == [(SP_MCHID, SUB_B)] * 2
    trade = env.sim.book.find(owner_key(SP_MCHID, SUB_A), "SK2")
    assert trade is not None and trade.state is TradeState.CLOSED


async def test_sdk_partner_mode_unauthorized_sub_merchant_and_wrong_sp(env: Env, sdk: AsyncWeChatPay) -> None:
    code, text = await sdk.pay(description="x", out_trade_no="SK9", amount={"total": 1}, sub_mchid=SUB_X)
    assert code == 403 and json.loads(text) == {"code": "NO_AUTH", "message": "受理关系不存在"}
    code, text = await sdk.query(out_trade_no="SK9", sub_mchid=SUB_X)
    assert code == 403 and json.loads(text)["code"] == "NO_AUTH"
    code, text = await sdk.pay(
        description="x", out_trade_no="SK9", amount={"total": 1}, sub_mchid=SUB_A, mchid="1999999999"
    )  # an sp_mchid other than the one that signs
    assert code == 400 and json.loads(text)["code"] == "PARAM_ERROR"
    code, text = await sdk.pay(
        description="x", out_trade_no="SK9", amount={"total": 1}, sub_mchid=SUB_B, sub_appid="wxNotBoundToB000001"
    )
    assert code == 400 and json.loads(text)["code"] == "PARAM_ERROR"
    assert env.sim.book.trades == {}


async def test_sdk_decrypts_partner_notifies(env: Env, keys: dict[str, rsa.RSAPrivateKey]) -> None:
    await env.pay("SD1", B)
    await env.adapter.refund(refund_req("SD1", "SDR1", 34, B))
    await env.state.notifier.drain()
    wx = WeChatPay(
        wechatpay_type=WeChatPayType.NATIVE,
        mchid=SP_MCHID,
        private_key=private_key_pem(keys["provider"]),
        cert_serial_no=SERIAL,
        appid=SP_APPID,
        apiv3_key=API_V3_KEY,
        notify_url=NOTIFY_URL,
        partner_mode=True,
        public_key=env.sim.public_key_pem,
        public_key_id=env.sim.public_key_id,
    )
    (pay_headers, pay_body), (refund_headers, refund_body) = env.receiver.requests
    payment = wx.callback(pay_headers, pay_body)["resource"]
    assert (payment["sp_mchid"], payment["sub_mchid"], payment["out_trade_no"]) == (SP_MCHID, SUB_B, "SD1")
    refund = wx.callback(refund_headers, refund_body)["resource"]
    assert (refund["sp_mchid"], refund["sub_mchid"], refund["out_refund_no"]) == (SP_MCHID, SUB_B, "SDR1")


# --- registration over HTTP ---------------------------------------------------------------------------


async def test_authorizations_over_http(env: Env) -> None:
    new_sub = "1900000333"
    body = {"channel": "wechat", "merchant_id": SP_MCHID, "sub_mchid": new_sub, "sub_appid": "wxNew0000000000001"}
    registered = await env.payer.post("/sandbox/authorizations", json=body)
    assert registered.status_code == 200 and registered.json() == body
    created = await env.adapter.create(
        create_req("SA1", SubMerchant(sub_mchid=new_sub, sub_appid="wxNew0000000000001"))
    )
    assert created.status is ResultStatus.SUCCESS, created

    unknown = await env.payer.post("/sandbox/authorizations", json={**body, "merchant_id": "1777777777"})
    assert unknown.status_code == 404 and "merchant_id" in unknown.text
    for change, name in (
        ({"sub_mchid": "19x"}, "sub_mchid"),
        ({"sub_mchid": SP_MCHID}, "sub_mchid"),
        ({"sub_appid": "wx bad"}, "sub_appid"),
        ({"channel": "paypal"}, "channel"),
        ({"extra": "1"}, "extra"),
    ):
        bad = await env.payer.post("/sandbox/authorizations", json={**body, **change})
        assert bad.status_code == 422 and name in bad.text, (change, bad.text)
    no_app = await env.payer.post(
        "/sandbox/authorizations", json={"channel": "wechat", "merchant_id": SP_MCHID, "sub_mchid": "1900000444"}
    )
    assert no_app.status_code == 200 and no_app.json()["sub_appid"] is None
    refused = await env.adapter.create(create_req("SA2", SubMerchant(sub_mchid="1900000555")))
    assert refused.code == "NO_AUTH"
