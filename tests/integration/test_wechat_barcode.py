"""WeChat Pay payment-code pay (付款码, API v2 XML): WechatAdapter ↔ the simulator in process, and wechatpy as an
independent peer driving the simulator's v2 endpoints and checking its signatures its own way.

Time is the sandbox's FrozenClock (advanced, never slept on); keys are generated per test module.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
import string
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import requests
import xmltodict
from fastapi import FastAPI
from requests.adapters import BaseAdapter
from requests.structures import CaseInsensitiveDict
from wechatpy.exceptions import WeChatPayException
from wechatpy.pay import WeChatPay
from wechatpy.pay.utils import calculate_signature, calculate_signature_hmac

from tomato.channel.adapters.wechat import WechatAdapter, parse_config
from tomato.channel.protocol import CreateRequest, ErrorClass, ResultStatus, TradeRef
from tomato.channel.sandbox import SandboxState, create_sandbox_app
from tomato.channel.sandbox.state import TradeState, china_date
from tomato.channel.sandbox.wechat import WechatSimulator
from tomato.core.clock import FrozenClock
from tomato.core.crypto import generate_rsa_key, private_key_pem, public_key_pem

SANDBOX = "http://sandbox.test"
MCHID = "1900000109"
APPID = "wxd678efh567hg6787"
SERIAL = "5157F09EFDC096DE15EBE81A47057A7232F1B8E1"
START = datetime(2026, 3, 2, 4, 0, 0, tzinfo=UTC)  # 12:00 Beijing


def random_key() -> str:
    return "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(32))


@pytest.fixture(scope="module")
def keys() -> dict[str, Any]:
    return {"merchant": generate_rsa_key(), "v3": random_key(), "v2": random_key()}


@dataclass
class Recorder(httpx.AsyncBaseTransport):
    """Passes requests to the sandbox and keeps (request, response) pairs; `tamper` may rewrite the answer."""

    inner: httpx.AsyncBaseTransport
    calls: list[tuple[httpx.Request, bytes]] = field(default_factory=list)
    tamper: Any = None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        body = await response.aread()
        if self.tamper is not None:
            body = self.tamper(body)
        self.calls.append((request, body))
        return httpx.Response(response.status_code, headers=response.headers, content=body)


@dataclass
class Env:
    clock: FrozenClock
    state: SandboxState
    sim: WechatSimulator
    app: FastAPI
    adapter: WechatAdapter
    recorder: Recorder
    payer: httpx.AsyncClient
    http: httpx.AsyncClient

    async def code(self, behaviour: str = "pay", channel: str = "wechat", **extra: Any) -> str:
        answer = await self.payer.post("/sandbox/barcodes", json={"channel": channel, "behaviour": behaviour, **extra})
        assert answer.status_code == 200, answer.text
        return str(answer.json()["auth_code"])

    def adapter_with(self, **overrides: Any) -> WechatAdapter:
        return WechatAdapter(parse_config(config(self.sim, self.keys, **overrides)), self.http)

    keys: dict[str, Any] = field(default_factory=dict)


def config(sim: WechatSimulator, keys: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    """The account config; an override of None leaves that key out."""
    values = {
        "mchid": MCHID, "appid": APPID, "serial_no": SERIAL, "private_key_pem": private_key_pem(keys["merchant"]),
        "api_v3_key": keys["v3"], "platform_public_key_pem": sim.public_key_pem,
        "platform_public_key_id": sim.public_key_id, "base_url": SANDBOX, "api_v2_key": keys["v2"], **overrides,
    }
    return {k: v for k, v in values.items() if v is not None}


@pytest.fixture
async def env(keys: dict[str, Any]) -> AsyncIterator[Env]:
    clock = FrozenClock(START)
    state = SandboxState(clock=clock)
    sim = WechatSimulator(state)
    sim.register_merchant(MCHID, SERIAL, public_key_pem(keys["merchant"]), keys["v3"], api_v2_key=keys["v2"])
    app = create_sandbox_app(state)
    recorder = Recorder(httpx.ASGITransport(app=app))
    async with (
        httpx.AsyncClient(transport=recorder) as http,
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=SANDBOX) as payer,
    ):
        adapter = WechatAdapter(parse_config(config(sim, keys)), http)
        yield Env(clock, state, sim, app, adapter, recorder, payer, http, keys)
        await state.aclose()


def barcode_req(order_no: str, auth_code: str | None, amount: int = 1234) -> CreateRequest:
    return CreateRequest(
        order_no=order_no, amount=amount, subject="早餐 豆浆", pay_method="BARCODE", notify_url="",
        expire_at=START + timedelta(minutes=5), client_ip="203.0.113.9", auth_code=auth_code,
    )


def ref(order_no: str) -> TradeRef:
    return TradeRef(order_no, pay_method="BARCODE")


def xml_fields(data: bytes) -> dict[str, str]:
    """wechatpy's own XML reader (xmltodict), not the code under test."""
    return dict(xmltodict.parse(data)["xml"])


def independent_hmac(fields: dict[str, str], key: str) -> str:
    text = "&".join(f"{k}={v}" for k, v in sorted(fields.items()) if k != "sign" and v) + f"&key={key}"
    return hmac.new(key.encode(), text.encode(), hashlib.sha256).hexdigest().upper()


# --- adapter ↔ simulator --------------------------------------------------------------------------------------


async def test_pay_at_once_wire_and_signatures(env: Env, keys: dict[str, Any]) -> None:
    code = await env.code("pay")
    result = await env.adapter.create(barcode_req("B1", code))
    assert (result.status, result.amount, result.paid_at) == (ResultStatus.SUCCESS, 1234, START)
    assert result.channel_trade_no and result.channel_trade_no.startswith("4200")

    request, answer = env.recorder.calls[-1]
    assert (request.method, request.url.path) == ("POST", "/pay/micropay")
    sent = xml_fields(request.content)
    assert set(sent) == {"appid", "mch_id", "nonce_str", "sign_type", "body", "out_trade_no", "total_fee",
                         "spbill_create_ip", "auth_code", "sign"}
    assert (sent["appid"], sent["mch_id"], sent["sign_type"]) == (APPID, MCHID, "HMAC-SHA256")
    assert (sent["out_trade_no"], sent["total_fee"], sent["auth_code"]) == ("B1", "1234", code)
    assert sent["body"] == "早餐 豆浆"
    assert sent["sign"] == independent_hmac(sent, keys["v2"])
    got = xml_fields(answer)
    assert (got["return_code"], got["result_code"], got["trade_type"], got["total_fee"]) == (
        "SUCCESS", "SUCCESS", "MICROPAY", "1234")
    assert got["time_end"] == "20260302120000"  # Beijing time
    assert got["sign"] == independent_hmac(got, keys["v2"])

    queried = await env.adapter.query(ref("B1"))
    assert (queried.status, queried.code, queried.paid_at) == (ResultStatus.SUCCESS, "SUCCESS", START)
    assert xml_fields(env.recorder.calls[-1][0].content)["out_trade_no"] == "B1"
    assert env.recorder.calls[-1][0].url.path == "/pay/orderquery"


async def test_confirm_after_waits_then_query_says_paid_at_confirmation(env: Env) -> None:
    code = await env.code("confirm_after", confirm_after_s=10)
    created = await env.adapter.create(barcode_req("B2", code))
    assert (created.status, created.code) == (ResultStatus.WAITING, "USERPAYING")
    env.clock.advance(timedelta(seconds=9))
    waiting = await env.adapter.query(ref("B2"))
    assert (waiting.status, waiting.code) == (ResultStatus.WAITING, "USERPAYING")
    env.clock.advance(timedelta(seconds=5))
    paid = await env.adapter.query(ref("B2"))
    assert (paid.status, paid.amount, paid.paid_at) == (ResultStatus.SUCCESS, 1234, START + timedelta(seconds=10))
    again = await env.adapter.create(barcode_req("B2", code))  # the till retries the same order: ORDERPAID → query
    assert (again.status, again.paid_at, again.channel_trade_no) == (ResultStatus.SUCCESS, paid.paid_at,
                                                                     paid.channel_trade_no)
    assert [r.url.path for r, _ in env.recorder.calls[-2:]] == ["/pay/micropay", "/pay/orderquery"]
    assert xml_fields(env.recorder.calls[-2][1])["err_code"] == "ORDERPAID"


async def test_never_then_cancel_closes_and_stays_closed(env: Env) -> None:
    code = await env.code("never")
    assert (await env.adapter.create(barcode_req("B3", code))).status is ResultStatus.WAITING
    env.clock.advance(timedelta(hours=1))
    assert (await env.adapter.query(ref("B3"))).code == "USERPAYING"
    cancelled = await env.adapter.cancel(ref("B3"))
    assert cancelled.status is ResultStatus.SUCCESS
    assert env.recorder.calls[-1][0].url.path == "/secapi/pay/reverse"
    closed = await env.adapter.query(ref("B3"))
    assert (closed.status, closed.error, closed.code) == (ResultStatus.FAIL, ErrorClass.NONE, "REVOKED")
    assert closed.settles_query
    retried = await env.adapter.create(barcode_req("B3", code))
    assert (retried.status, retried.error, retried.code) == (ResultStatus.FAIL, ErrorClass.REJECTED, "ORDERREVERSED")
    assert (await env.adapter.cancel(ref("B3"))).status is ResultStatus.SUCCESS  # reverse is idempotent


async def test_confirm_after_cancelled_before_confirmation_never_pays(env: Env) -> None:
    code = await env.code("confirm_after", confirm_after_s=10)
    await env.adapter.create(barcode_req("B4", code))
    assert (await env.adapter.cancel(ref("B4"))).status is ResultStatus.SUCCESS
    env.clock.advance(timedelta(seconds=30))
    assert (await env.adapter.query(ref("B4"))).code == "REVOKED"


async def test_refused_for_funds_then_query_says_payerror(env: Env) -> None:
    result = await env.adapter.create(barcode_req("B5", await env.code("refuse")))
    assert (result.status, result.error, result.code) == (ResultStatus.FAIL, ErrorClass.REJECTED, "NOTENOUGH")
    queried = await env.adapter.query(ref("B5"))
    assert (queried.status, queried.error, queried.code) == (ResultStatus.FAIL, ErrorClass.NONE, "PAYERROR")


async def test_invalid_codes_are_refused(env: Env) -> None:
    never_issued = "13" + "0" * 16
    for order_no, code in (("B6", never_issued), ("B7", await env.code("pay", channel="alipay"))):
        result = await env.adapter.create(barcode_req(order_no, code))
        assert (result.status, result.error, result.code) == (ResultStatus.FAIL, ErrorClass.REJECTED,
                                                              "AUTH_CODE_INVALID")
    unknown = await env.adapter.query(ref("B6"))  # no trade was made: as for a create that never arrived
    assert (unknown.status, unknown.code) == (ResultStatus.WAITING, "ORDERNOTEXIST")
    assert (await env.adapter.create(barcode_req("B8", None))).code == "AUTH_CODE_REQUIRED"


async def test_cancel_of_a_paid_trade_refunds_it_and_no_bill_lists_it(env: Env) -> None:
    paid = await env.adapter.create(barcode_req("B9", await env.code("pay")))
    kept = await env.adapter.create(barcode_req("B10", await env.code("pay"), amount=500))
    assert paid.status is kept.status is ResultStatus.SUCCESS
    assert (await env.adapter.cancel(TradeRef("B9", paid.channel_trade_no, pay_method="BARCODE"))).status is (
        ResultStatus.SUCCESS)
    sent = xml_fields(env.recorder.calls[-1][0].content)
    assert (sent["transaction_id"], sent["out_trade_no"]) == (paid.channel_trade_no, "B9")
    queried = await env.adapter.query(ref("B9"))
    assert (queried.status, queried.code) == (ResultStatus.FAIL, "REVOKED")
    rows = env.state.statement_rows("wechat", MCHID, china_date(START))
    assert [(r.trade.out_trade_no, r.amount) for r in rows] == [("B10", 500)]
    bill = await env.adapter.download_statement(china_date(START))  # the v3 trade bill lists the kept payment only
    assert b"B10" in bill and b"B9" not in bill and b"MICROPAY" in bill


async def test_reverse_recall_is_waiting_then_success(env: Env) -> None:
    await env.adapter.create(barcode_req("B11", await env.code("never")))
    env.sim.barcode.recalls = 1
    first = await env.adapter.cancel(ref("B11"))
    assert (first.status, first.code) == (ResultStatus.WAITING, "SYSTEMERROR")
    assert (await env.adapter.query(ref("B11"))).code == "USERPAYING"  # the recall did nothing
    assert (await env.adapter.cancel(ref("B11"))).status is ResultStatus.SUCCESS


async def test_cancel_of_an_order_wechat_never_took_has_nothing_to_reverse(env: Env) -> None:
    """A micropay lost on its way: nothing was taken, so the platform may close the order (it would otherwise ask
    to reverse it for ever)."""
    result = await env.adapter.cancel(ref("NEVER"))
    assert (result.status, result.code) == (ResultStatus.SUCCESS, "ORDERNOTEXIST")


async def test_without_v2_key_or_in_partner_mode_barcode_is_not_supported(env: Env) -> None:
    code = await env.code("pay")
    no_key = env.adapter_with(api_v2_key=None)
    partner = env.adapter_with(mode="partner", sp_mchid=MCHID, sp_appid=APPID, mchid=None, appid=None)
    for adapter in (no_key, partner):
        for result in (await adapter.create(barcode_req("B12", code)), await adapter.cancel(ref("B12"))):
            assert (result.status, result.error, result.code) == (ResultStatus.FAIL, ErrorClass.REJECTED,
                                                                  "BARCODE_NOT_SUPPORTED")
    assert env.recorder.calls == []  # refused before any HTTP call
    assert env.state.barcodes.lookup(code) is not None and not env.sim.book.trades


async def test_unsigned_and_tampered_answers_are_unknown(env: Env, keys: dict[str, Any]) -> None:
    wrong_key = env.adapter_with(api_v2_key=random_key())
    refused = await wrong_key.create(barcode_req("B13", await env.code("pay")))
    assert (refused.status, refused.error) == (ResultStatus.UNKNOWN, ErrorClass.BAD_SIGNATURE)
    assert xml_fields(env.recorder.calls[-1][1]) == {"return_code": "FAIL", "return_msg": "签名错误"}
    assert not env.sim.book.trades  # a badly signed request does nothing

    env.recorder.tamper = lambda body: body.replace(b"<total_fee><![CDATA[1234]]>", b"<total_fee><![CDATA[1]]>")
    tampered = await env.adapter.create(barcode_req("B14", await env.code("pay")))
    assert (tampered.status, tampered.error) == (ResultStatus.UNKNOWN, ErrorClass.BAD_SIGNATURE)
    env.recorder.tamper = lambda body: b'<!DOCTYPE x [<!ENTITY a "b">]><xml><return_code>&a;</return_code></xml>'
    evil = await env.adapter.query(ref("B14"))
    assert (evil.status, evil.error) == (ResultStatus.UNKNOWN, ErrorClass.MALFORMED)
    env.recorder.tamper = None

    await env.payer.post("/sandbox/faults", json={"channel": "wechat", "error_rate": 1.0})
    failed = await env.adapter.create(barcode_req("B15", await env.code("pay")))
    assert (failed.status, failed.error) == (ResultStatus.UNKNOWN, ErrorClass.SERVER)


async def test_registration_route_takes_an_api_v2_key(env: Env, keys: dict[str, Any]) -> None:
    other_key, v2_key = generate_rsa_key(), random_key()
    body = {"channel": "wechat", "merchant_id": "1900000200", "serial_no": "AB12", "api_v3_key": random_key(),
            "public_key_pem": public_key_pem(other_key), "api_v2_key": v2_key}
    answer = await env.payer.post("/sandbox/apps", json=body)
    assert answer.status_code == 200 and v2_key not in answer.text
    bad = await env.payer.post("/sandbox/apps", json={**body, "api_v2_key": "short"})
    assert bad.status_code == 422
    other = env.adapter_with(mchid="1900000200", api_v2_key=v2_key)
    assert (await other.create(barcode_req("B16", await env.code("pay")))).status is ResultStatus.SUCCESS
    assert env.sim.book.find("1900000200", "B16") is not None and env.sim.book.find(MCHID, "B16") is None


# --- wechatpy (python SDK for API v2) as an independent peer ---------------------------------------------------


class ToSandbox(BaseAdapter):
    """A requests adapter that runs each request against the sandbox app on the test's event loop."""

    def __init__(self, http: httpx.AsyncClient, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self._http, self._loop = http, loop

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        call = self._http.request(str(request.method), str(request.url), content=request.body,
                                  headers=dict(request.headers))
        answer = asyncio.run_coroutine_threadsafe(call, self._loop).result(timeout=30)
        response = requests.Response()
        response.status_code, response._content = answer.status_code, answer.content
        response.headers = CaseInsensitiveDict(answer.headers)
        response.url, response.request, response.encoding = str(request.url), request, "utf-8"
        return response

    def close(self) -> None:
        pass


@pytest.fixture
async def sdk(env: Env, keys: dict[str, Any]) -> AsyncIterator[WeChatPay]:
    client = WeChatPay(appid=APPID, api_key=keys["v2"], mch_id=MCHID, timeout=30)
    client.API_BASE_URL = SANDBOX + "/"
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=env.app)) as http:
        client._http.mount("http://", ToSandbox(http, asyncio.get_running_loop()))
        yield client


async def test_sdk_micropay_query_reverse_with_md5_and_its_checks(env: Env, sdk: WeChatPay) -> None:
    code = await env.code("pay")
    paid = await asyncio.to_thread(sdk.micropay.create, "SDK 早餐", 88, code, client_ip="203.0.113.9",
                                   out_trade_no="S1")
    assert (paid["result_code"], paid["trade_type"], paid["total_fee"], paid["out_trade_no"]) == (
        "SUCCESS", "MICROPAY", "88", "S1")
    assert sdk.check_signature(paid)  # MD5 request → MD5-signed answer, checked by wechatpy
    queried = await asyncio.to_thread(sdk.order.query, out_trade_no="S1")
    assert queried["trade_state"] == "SUCCESS" and queried["transaction_id"] == paid["transaction_id"]
    assert sdk.check_signature(queried)
    reversed_ = await asyncio.to_thread(sdk.order.reverse, out_trade_no="S1")
    assert reversed_["recall"] == "N" and sdk.check_signature(reversed_)
    assert (await asyncio.to_thread(sdk.order.query, out_trade_no="S1"))["trade_state"] == "REVOKED"
    # the adapter sees what the SDK did
    assert (await env.adapter.query(ref("S1"))).code == "REVOKED"


async def test_sdk_sees_refusals_and_hmac_signed_answers(env: Env, sdk: WeChatPay, keys: dict[str, Any]) -> None:
    with pytest.raises(WeChatPayException) as info:
        await asyncio.to_thread(sdk.micropay.create, "x", 1, await env.code("refuse"), client_ip="203.0.113.9",
                                out_trade_no="S2")
    assert info.value.errcode == "NOTENOUGH"
    answer = xml_fields(info.value.response.content)
    assert answer["sign"] == calculate_signature({k: v for k, v in answer.items() if k != "sign"}, keys["v2"])

    code = await env.code("confirm_after", confirm_after_s=5)
    with pytest.raises(WeChatPayException) as waiting:
        await asyncio.to_thread(sdk.micropay.create, "x", 2, code, client_ip="203.0.113.9", out_trade_no="S3")
    assert waiting.value.errcode == "USERPAYING"
    env.clock.advance(timedelta(seconds=5))
    data = {"appid": APPID, "out_trade_no": "S3", "sign_type": "HMAC-SHA256"}
    hmac_answer = await asyncio.to_thread(sdk.post, "pay/orderquery", data=data)
    assert hmac_answer["trade_state"] == "SUCCESS" and hmac_answer["time_end"] == "20260302120005"
    unsigned = {k: v for k, v in hmac_answer.items() if k != "sign"}
    assert hmac_answer["sign"] == calculate_signature_hmac(unsigned, keys["v2"])
    assert not sdk.check_signature(hmac_answer)  # not MD5: the sign type follows the request's

    stranger = WeChatPay(appid=APPID, api_key=random_key(), mch_id=MCHID)
    stranger.API_BASE_URL, stranger._http = sdk.API_BASE_URL, sdk._http
    with pytest.raises(WeChatPayException) as bad:
        await asyncio.to_thread(stranger.order.query, out_trade_no="S3")
    assert (bad.value.return_code, bad.value.errmsg) == ("FAIL", None)
    trade = env.sim.book.find(MCHID, "S3")
    assert trade is not None and trade.state is TradeState.PAID
