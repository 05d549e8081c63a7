"""Alipay service-provider (ISV) mode: AlipayAdapter ↔ the simulator, and python-alipay-sdk's ISV client as a peer.

A provider app acts for sub-merchants that authorized it: every request carries the sub-merchant's app_auth_token
(checked on the simulator's records), trades belong to the sub-merchant, notifies name it in auth_app_id. Tokens of
another app, unknown tokens and other sub-merchants' tokens are refused and change nothing.
"""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest
from alipay import AliPay, ISVAliPay
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.fixtures.alipay_isv import (
    DAY,
    GATEWAY,
    NOTIFY_URL,
    OTHER_PROVIDER,
    PROVIDER,
    SUB_A,
    SUB_B,
    IsvEnv,
    create_req,
    isv_env,
    isv_keys,
)
from tomato.channel.adapters.alipay import signing
from tomato.channel.protocol import (
    CallbackRejected,
    ErrorClass,
    RefundRef,
    RefundRequest,
    ResultStatus,
    StatementUnavailable,
    SubMerchant,
    TradeRef,
)
from tomato.channel.sandbox.state import TradeState
from tomato.core.crypto import private_key_pem
from tomato.reconciliation.statement import MalformedRow, StatementLine, parse_statement

ALL_FLOWS = [
    "alipay.trade.precreate", "alipay.trade.query", "alipay.trade.refund", "alipay.trade.fastpay.refund.query",
    "alipay.trade.precreate", "alipay.trade.close", "alipay.data.dataservice.bill.downloadurl.query",
]  # fmt: skip


@pytest.fixture(scope="module")
def keys() -> dict[str, rsa.RSAPrivateKey]:
    return isv_keys()


@pytest.fixture
async def env(keys: dict[str, rsa.RSAPrivateKey]) -> AsyncIterator[IsvEnv]:
    async for value in isv_env(keys):
        yield value


def book_snapshot(env: IsvEnv) -> list[tuple[str, str, str, int]]:
    return sorted((t.merchant_id, t.out_trade_no, t.state.value, t.refunded) for t in env.sim.book.trades.values())


def statement_orders(data: bytes) -> list[tuple[str, str | None]]:
    lines = list(parse_statement("alipay", io.BytesIO(data)))
    assert not [line for line in lines if isinstance(line, MalformedRow)], lines
    return [(line.kind.value, line.refund_no or line.order_no) for line in lines if isinstance(line, StatementLine)]


# --- the whole flow acts for the sub-merchant ----------------------------------------------------------------


async def test_every_call_carries_the_sub_merchants_token_and_acts_for_it(env: IsvEnv) -> None:
    a = env.subs["A"]
    trade_no = await env.pay(env.adapter, "PA1", 1234, a)
    trade = env.sim.book.trades[trade_no]
    assert (trade.merchant_id, trade.extra["app_id"]) == (SUB_A, PROVIDER)  # the sub-merchant's trade

    paid = await env.adapter.query(TradeRef("PA1", sub=a))
    assert (paid.status, paid.amount, paid.channel_trade_no) == (ResultStatus.SUCCESS, 1234, trade_no)
    refund = await env.adapter.refund(RefundRequest("PA1", "RA1", 234, 1234, NOTIFY_URL, sub=a))
    assert refund.status is ResultStatus.SUCCESS and trade.refunded == 234
    refunded = await env.adapter.query_refund(RefundRef("PA1", "RA1", sub=a))
    assert (refunded.status, refunded.amount) == (ResultStatus.SUCCESS, 234)

    created = await env.adapter.create(create_req("PA2", 500, a))
    assert created.status is ResultStatus.SUCCESS
    closed = await env.adapter.close(TradeRef("PA2", sub=a))
    assert closed.status is ResultStatus.SUCCESS
    assert env.sim.book.find(SUB_A, "PA2").state is TradeState.CLOSED  # type: ignore[union-attr]

    bill = await env.adapter.download_statement(DAY, a)
    assert statement_orders(bill) == [("PAYMENT", "PA1"), ("REFUND", "RA1")]

    seen = list(env.sim.isv.seen)
    assert [r.method for r in seen] == ALL_FLOWS
    assert {(r.app_id, r.app_auth_token, r.merchant_id) for r in seen} == {(PROVIDER, a.app_auth_token, SUB_A)}
    assert a.app_auth_token not in repr(seen)  # records never print the token


async def test_wap_redirect_url_carries_the_signed_token(env: IsvEnv) -> None:
    a = env.subs["A"]
    created = await env.adapter.create(create_req("PA3", 300, a, method="ALIPAY_WAP"))
    assert created.status is ResultStatus.SUCCESS and created.pay_data is not None
    params = dict(parse_qsl(urlsplit(str(created.pay_data.value)).query))
    assert params["app_auth_token"] == a.app_auth_token and "app_auth_token" not in params["biz_content"]
    opened = await env.payer.get("/alipay/gateway.do?" + urlsplit(str(created.pay_data.value)).query)
    assert opened.status_code == 200, opened.text
    assert env.sim.book.find(SUB_A, "PA3") is not None and env.sim.book.find(PROVIDER, "PA3") is None


async def test_isv_calls_without_a_token_are_refused_before_any_request(env: IsvEnv) -> None:
    for sub in (None, SubMerchant(auth_app_id=SUB_A)):
        results = [
            await env.adapter.create(create_req("PN1", 100, sub)),
            await env.adapter.create(create_req("PN1", 100, sub, method="ALIPAY_PC")),
            await env.adapter.query(TradeRef("PN1", sub=sub)),
            await env.adapter.close(TradeRef("PN1", sub=sub)),
            await env.adapter.refund(RefundRequest("PN1", "RN1", 100, 100, NOTIFY_URL, sub=sub)),
            await env.adapter.query_refund(RefundRef("PN1", "RN1", sub=sub)),
        ]
        for result in results:
            assert (result.status, result.error, result.code) == (
                ResultStatus.FAIL, ErrorClass.REJECTED, "SUB_MERCHANT_REQUIRED"
            )  # fmt: skip
        with pytest.raises(StatementUnavailable) as caught:
            await env.adapter.download_statement(DAY, sub)
        assert caught.value.result.code == "SUB_MERCHANT_REQUIRED"
    assert list(env.sim.isv.seen) == [] and env.sim.book.trades == {}


async def test_direct_mode_ignores_the_sub_merchant(env: IsvEnv) -> None:
    trade_no = await env.pay(env.direct, "PD1", 700, env.subs["A"])
    assert env.sim.book.trades[trade_no].merchant_id == PROVIDER
    assert [(r.app_auth_token, r.merchant_id) for r in env.sim.isv.seen] == [(None, PROVIDER)]


# --- refused tokens ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("token", ["other_app", "unknown"])
async def test_a_token_not_issued_to_the_app_is_refused_and_changes_nothing(env: IsvEnv, token: str) -> None:
    await env.pay(env.adapter, "PT1", 1000, env.subs["A"])
    before = book_snapshot(env)
    unknown = SubMerchant(app_auth_token="202603BBnot-issued", auth_app_id=SUB_A)
    bad = env.subs["OTHER_A"] if token == "other_app" else unknown
    results = [
        await env.adapter.create(create_req("PT2", 100, bad)),
        await env.adapter.query(TradeRef("PT1", sub=bad)),
        await env.adapter.close(TradeRef("PT1", sub=bad)),
        await env.adapter.refund(RefundRequest("PT1", "RT1", 100, 1000, NOTIFY_URL, sub=bad)),
        await env.adapter.query_refund(RefundRef("PT1", "RT1", sub=bad)),
    ]
    for result in results:
        assert (result.status, result.error, result.code) == (
            ResultStatus.FAIL, ErrorClass.REJECTED, "aop.invalid-app-auth-token"
        ), result  # fmt: skip
    with pytest.raises(StatementUnavailable) as caught:
        await env.adapter.download_statement(DAY, bad)
    assert caught.value.result.code == "aop.invalid-app-auth-token"
    assert book_snapshot(env) == before
    assert [r.merchant_id for r in env.sim.isv.seen][-6:] == [None] * 6


async def test_another_sub_merchants_token_cannot_see_or_touch_the_trade(env: IsvEnv) -> None:
    trade_no = await env.pay(env.adapter, "PS1", 1000, env.subs["A"])
    await env.adapter.create(create_req("PS2", 200, env.subs["A"]))
    await env.payer.post("/sandbox/scan", json={"order_no": "PS2", "result": "pending"})
    before = book_snapshot(env)
    b = env.subs["B"]
    for ref in (TradeRef("PS1", sub=b), TradeRef("PS1", trade_no, sub=b)):
        seen = await env.adapter.query(ref)
        assert (seen.status, seen.code) == (ResultStatus.WAITING, "ACQ.TRADE_NOT_EXIST")  # unknown to B
        refund = await env.adapter.refund(RefundRequest("PS1", "RS1", 100, 1000, NOTIFY_URL, trade_no, sub=b))
        assert (refund.status, refund.code) == (ResultStatus.FAIL, "ACQ.TRADE_NOT_EXIST")
    await env.adapter.close(TradeRef("PS2", sub=b))  # "no such trade" for B: the adapter's success, but…
    assert book_snapshot(env) == before  # … A's waiting trade is still open, nothing refunded
    own = await env.direct.query(TradeRef("PS1"))  # the provider app itself, without a token, does not see it either
    assert own.code == "ACQ.TRADE_NOT_EXIST"


# --- notifies ------------------------------------------------------------------------------------------------


async def test_the_notify_names_the_provider_app_and_the_sub_merchant(env: IsvEnv) -> None:
    trade_no = await env.pay(env.adapter, "PN2", 880, env.subs["B"])
    [notify] = env.receiver.notifies
    assert (notify.order_no, notify.status, notify.amount) == ("PN2", ResultStatus.SUCCESS, 880)
    assert notify.sub_merchant == SUB_B and notify.channel_trade_no == trade_no
    assert (notify.raw["app_id"], notify.raw["auth_app_id"]) == (PROVIDER, SUB_B)
    # the same notify read by a direct-mode account of the app: no sub-merchant
    assert env.direct.parse_callback({}, env.receiver.bodies[0]).sub_merchant is None


async def test_a_notify_of_another_app_or_without_auth_app_id_is_rejected(env: IsvEnv) -> None:
    await env.pay(env.other, "PO1", 500, env.subs["OTHER_A"])  # OTHER_PROVIDER's trade, notified to our receiver
    assert env.receiver.notifies == [] and len(env.receiver.rejected) == 8  # every retry refused
    assert set(env.receiver.rejected) == {"alipay notify: app_id is not this account's"}
    fields: dict[str, Any] = dict(parse_qsl(env.receiver.bodies[0].decode()))
    assert (fields["app_id"], fields["auth_app_id"]) == (OTHER_PROVIDER, SUB_A)

    trade = env.sim.book.find(SUB_A, "PO1")
    assert trade is not None
    unsigned = {k: v for k, v in env.sim.notify_fields(trade, "n1").items() if k not in ("sign", "auth_app_id")}
    unsigned["app_id"] = PROVIDER
    body = urlencode(signing.sign_notify(unsigned, env.keys["alipay"]))
    with pytest.raises(CallbackRejected, match="auth_app_id"):
        env.adapter.parse_callback({}, body.encode())
    assert env.direct.parse_callback({}, body.encode()).sub_merchant is None  # direct mode never asked for it


# --- bills ---------------------------------------------------------------------------------------------------


async def test_bills_are_per_sub_merchant(env: IsvEnv) -> None:
    await env.pay(env.adapter, "PB1", 100, env.subs["A"])
    await env.pay(env.adapter, "PB2", 200, env.subs["B"])
    await env.pay(env.direct, "PB3", 300, None)
    assert statement_orders(await env.adapter.download_statement(DAY, env.subs["A"])) == [("PAYMENT", "PB1")]
    assert statement_orders(await env.adapter.download_statement(DAY, env.subs["B"])) == [("PAYMENT", "PB2")]
    assert statement_orders(await env.direct.download_statement(DAY)) == [("PAYMENT", "PB3")]
    with pytest.raises(StatementUnavailable) as caught:  # SUB_C never traded: Alipay's "no bill"
        await env.adapter.download_statement(DAY, env.subs["C"])
    assert caught.value.result.code == "isp.bill_not_exist"


# --- the sandbox registration route --------------------------------------------------------------------------


async def test_authorizations_route_validates_and_never_echoes_the_token(env: IsvEnv) -> None:
    good = {"channel": "alipay", "merchant_id": PROVIDER, "app_auth_token": "202603BBfresh0token", "auth_app_id": SUB_B}
    answer = await env.payer.post("/sandbox/authorizations", json=good)
    assert answer.status_code == 200 and answer.json() == {"channel": "alipay", "merchant_id": PROVIDER,
                                                           "auth_app_id": SUB_B}  # fmt: skip
    assert "202603BBfresh0token" not in answer.text
    no_provider = {k: v for k, v in good.items() if k != "merchant_id"}
    for bad in ({**good, "app_auth_token": ""}, {**good, "app_auth_token": "a b"}, {**good, "auth_app_id": ""},
                {**good, "channel": "paypal"}, {**good, "extra": 1}, no_provider):  # fmt: skip
        assert (await env.payer.post("/sandbox/authorizations", json=bad)).status_code == 422, bad
    unknown = await env.payer.post("/sandbox/authorizations", json={**good, "merchant_id": "2021000000009999"})
    assert unknown.status_code == 404 and "202603BB" not in unknown.text
    # the token registered over HTTP works
    fresh = SubMerchant(app_auth_token="202603BBfresh0token", auth_app_id=SUB_B)
    assert (await env.adapter.create(create_req("PR1", 100, fresh))).status is ResultStatus.SUCCESS
    assert env.sim.book.find(SUB_B, "PR1") is not None


# --- python-alipay-sdk's ISV client as an independent peer ---------------------------------------------------


def sdk(env: IsvEnv, token: str | None) -> AliPay:
    common: dict[str, Any] = {
        "appid": PROVIDER, "app_notify_url": NOTIFY_URL, "alipay_public_key_string": env.sim.public_key_pem,
        "app_private_key_string": private_key_pem(env.keys["provider"]),
    }  # fmt: skip
    client = ISVAliPay(**common, app_auth_token=token) if token else AliPay(**common)
    client._gateway = GATEWAY
    return client


async def sdk_call(env: IsvEnv, client: AliPay, method: str, biz: dict[str, Any]) -> dict[str, Any]:
    data = client.build_body(method, biz)
    raw = (await env.payer.get("/alipay/gateway.do?" + client.sign_data(data))).text
    node: dict[str, Any] = client._verify_and_return_sync_response(raw, method.replace(".", "_") + "_response")
    return node


async def test_the_sdks_isv_client_drives_the_simulator(env: IsvEnv) -> None:
    a = env.subs["A"]
    assert a.app_auth_token is not None
    client = sdk(env, a.app_auth_token)
    data = client.build_body("alipay.trade.precreate", {"out_trade_no": "PK1", "total_amount": "0.01", "subject": "t"})
    assert data["app_auth_token"] == a.app_auth_token and "app_auth_token" not in json.dumps(data["biz_content"])

    node = await sdk_call(env, client, "alipay.trade.precreate",
                          {"out_trade_no": "PK1", "total_amount": "0.01", "subject": "测试"})  # fmt: skip
    assert node["code"] == "10000" and node["qr_code"].startswith("https://qr.alipay.com/sim")
    assert env.sim.book.find(SUB_A, "PK1") is not None
    scanned = await env.payer.post("/sandbox/scan", json={"content": node["qr_code"], "result": "paid"})
    assert scanned.status_code == 200
    await env.state.notifier.drain()
    queried = await sdk_call(env, client, "alipay.trade.query", {"out_trade_no": "PK1"})
    assert (queried["code"], queried["trade_status"], queried["total_amount"]) == ("10000", "TRADE_SUCCESS", "0.01")
    assert env.receiver.notifies[-1].sub_merchant == SUB_A  # the SDK-made trade notifies as the sub-merchant's
    assert [r.app_auth_token for r in env.sim.isv.seen] == [a.app_auth_token] * 2

    # without a token the provider app acts for itself: the sub-merchant's trade does not exist for it
    own = await sdk_call(env, sdk(env, None), "alipay.trade.query", {"out_trade_no": "PK1"})
    assert own["sub_code"] == "ACQ.TRADE_NOT_EXIST"
    # a wrong token: the signed refusal Alipay gives, which the SDK verifies like any answer
    for wrong in (env.subs["OTHER_A"].app_auth_token, "202603BBnot-issued"):
        assert wrong is not None
        refused = await sdk_call(env, sdk(env, wrong), "alipay.trade.query", {"out_trade_no": "PK1"})
        assert (refused["code"], refused["msg"], refused["sub_code"]) == (
            "20001", "Insufficient Token Permissions", "aop.invalid-app-auth-token"
        )  # fmt: skip
        made = await sdk_call(env, sdk(env, wrong), "alipay.trade.precreate",
                              {"out_trade_no": "PK2", "total_amount": "0.01", "subject": "t"})  # fmt: skip
        assert made["sub_code"] == "aop.invalid-app-auth-token"
    assert env.sim.book.find(SUB_A, "PK2") is None and env.sim.book.find(PROVIDER, "PK2") is None


async def test_the_sdk_rejects_a_tampered_answer_to_an_isv_call(env: IsvEnv) -> None:
    """The peer can fail: the SDK's check refuses an ISV answer altered after signing."""
    from alipay.exceptions import AliPayValidationError

    a = env.subs["A"]
    assert a.app_auth_token is not None
    client = sdk(env, a.app_auth_token)
    data = client.build_body("alipay.trade.precreate", {"out_trade_no": "PK3", "total_amount": "0.01", "subject": "t"})
    raw = (await env.payer.get("/alipay/gateway.do?" + client.sign_data(data))).text
    with pytest.raises(AliPayValidationError):
        client._verify_and_return_sync_response(raw.replace("PK3", "PK4"), "alipay_trade_precreate_response")
