"""Alipay profit sharing (分账): AlipayAdapter ↔ the simulator in ISV mode, and python-alipay-sdk as a peer.

Receivers are bound per sub-merchant; a split is a synchronous `alipay.trade.order.settle` of a trade created with
`royalty_freeze`, limited to 30 % of the trade; `royalty_finish` releases the rest; returns only ride on refunds.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import pytest
from alipay import AliPay, ISVAliPay
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.fixtures.alipay_isv import GATEWAY, NOTIFY_URL, PROVIDER, SUB_A, IsvEnv, create_req, isv_env, isv_keys
from tomato.channel.adapters.alipay import AlipayAdapter
from tomato.channel.breakers import BreakerRegistry
from tomato.channel.guarded import GuardedAdapter
from tomato.channel.health import HealthWindow
from tomato.channel.protocol import (
    ErrorClass,
    ProfitSharingChannel,
    RefundRequest,
    ResultStatus,
    SplitReceiver,
    SplitRef,
    SplitRequest,
    SplitReturnRequest,
    SplitShare,
    SubMerchant,
)
from tomato.channel.sub_merchant import SubMerchantAdapter
from tomato.core.cache import MemoryCache
from tomato.core.crypto import private_key_pem

USER_ID = "2088102000000201"
LOGIN = "receiver@shop.example"


@pytest.fixture(scope="module")
def keys() -> dict[str, rsa.RSAPrivateKey]:
    return isv_keys()


@pytest.fixture
async def env(keys: dict[str, rsa.RSAPrivateKey]) -> AsyncIterator[IsvEnv]:
    async for value in isv_env(keys):
        yield value


def receivers(sub: SubMerchant | None) -> tuple[SplitReceiver, SplitReceiver]:
    return (
        SplitReceiver(USER_ID, "MERCHANT", sub=sub),
        SplitReceiver(LOGIN, "PERSONAL", name="张三", sub=sub),
    )


async def paid(env: IsvEnv, adapter: AlipayAdapter, order_no: str, amount: int, sub: SubMerchant | None,
               *, sharing: bool = True) -> str:  # fmt: skip
    """A QR trade created (with the royalty freeze when `sharing`), scanned and paid: its trade number."""
    created = await adapter.create(replace(create_req(order_no, amount, sub), profit_sharing=sharing))
    assert created.status is ResultStatus.SUCCESS and created.pay_data is not None, created
    scanned = await env.payer.post("/sandbox/scan", json={"content": created.pay_data.value, "result": "paid"})
    assert scanned.status_code == 200, scanned.text
    await env.state.notifier.drain()
    return str(scanned.json()["channel_trade_no"])


async def bound(env: IsvEnv, sub: SubMerchant | None, adapter: AlipayAdapter | None = None) -> None:
    for receiver in receivers(sub):
        result = await (adapter or env.adapter).bind_receiver(receiver)
        assert result.status is ResultStatus.SUCCESS, result


def request(order_no: str, split_no: str, trade_no: str, amounts: tuple[int, ...], sub: SubMerchant | None,
            *, finish: bool = False) -> SplitRequest:  # fmt: skip
    pairs = zip(receivers(sub)[: len(amounts)], amounts, strict=True)
    shares = tuple(SplitShare(receiver, amount, f"commission {n}") for n, (receiver, amount) in enumerate(pairs))
    return SplitRequest(order_no, split_no, trade_no, shares, finish=finish, sub=sub)


async def test_bind_pay_and_split_thirty_percent_to_two_receivers(env: IsvEnv) -> None:
    a = env.subs["A"]
    assert isinstance(env.adapter, ProfitSharingChannel)
    await bound(env, a)
    assert set(env.sim.splits.bound[SUB_A]) == {USER_ID, LOGIN}
    assert env.sim.splits.bound[SUB_A][USER_ID]["type"] == "userId"
    assert env.sim.splits.bound[SUB_A][LOGIN] == {"type": "loginName", "account": LOGIN, "name": "张三",
                                                  "memo": "profit sharing"}  # fmt: skip
    again = await env.adapter.bind_receiver(receivers(a)[0])  # bound already: still SUCCESS
    assert again.status is ResultStatus.SUCCESS

    trade_no = await paid(env, env.adapter, "SP1", 10000, a)
    trade = env.sim.book.find(SUB_A, "SP1")
    assert trade is not None and trade.extra.get("royalty_freeze") == "true"
    result = await env.adapter.split(request("SP1", "S1", trade_no, (1500, 1500), a))
    assert (result.status, result.amount, result.channel_trade_no) == (ResultStatus.SUCCESS, 3000, trade_no)
    assert env.sim.splits.of(trade).received == {USER_ID: 1500, LOGIN: 1500}

    queried = await env.adapter.query_split(SplitRef("SP1", "S1", trade_no, a))
    assert (queried.status, queried.amount) == (ResultStatus.SUCCESS, 3000)
    resent = await env.adapter.split(request("SP1", "S1", trade_no, (1500, 1500), a))  # a resend moves nothing more
    assert resent.status is ResultStatus.SUCCESS and env.sim.splits.of(trade).received[USER_ID] == 1500
    # every call acted for the sub-merchant with its token
    assert {r.app_auth_token for r in env.sim.isv.seen} == {a.app_auth_token}


async def test_direct_mode_splits_the_apps_own_trade(env: IsvEnv) -> None:
    await bound(env, None, env.direct)
    trade_no = await paid(env, env.direct, "SPD", 1000, None)
    result = await env.direct.split(request("SPD", "SD1", trade_no, (200, 100), None))
    assert result.status is ResultStatus.SUCCESS and set(env.sim.splits.bound) == {PROVIDER}
    assert {r.app_auth_token for r in env.sim.isv.seen} == {None}


async def test_a_split_over_thirty_percent_is_refused_and_moves_nothing(env: IsvEnv) -> None:
    a = env.subs["A"]
    await bound(env, a)
    trade_no = await paid(env, env.adapter, "SP2", 10000, a)
    over = await env.adapter.split(request("SP2", "S2", trade_no, (2000, 1001), a))
    assert (over.status, over.error, over.code) == (ResultStatus.FAIL, ErrorClass.REJECTED,
                                                    "ACQ.ALLOC_AMOUNT_VALIDATE_ERROR")  # fmt: skip
    first = await env.adapter.split(request("SP2", "S3", trade_no, (2000,), a))
    assert first.status is ResultStatus.SUCCESS
    rest = await env.adapter.split(request("SP2", "S4", trade_no, (1001,), a))  # 30 % minus what was split
    assert rest.code == "ACQ.ALLOC_AMOUNT_VALIDATE_ERROR"
    last = await env.adapter.split(request("SP2", "S5", trade_no, (1000,), a))
    assert last.status is ResultStatus.SUCCESS
    trade = env.sim.book.find(SUB_A, "SP2")
    assert trade is not None and env.sim.splits.of(trade).received == {USER_ID: 3000}


async def test_a_split_to_an_unbound_receiver_is_refused(env: IsvEnv) -> None:
    a, b = env.subs["A"], env.subs["B"]
    await bound(env, b)  # bound for another sub-merchant only
    trade_no = await paid(env, env.adapter, "SP3", 10000, a)
    result = await env.adapter.split(request("SP3", "S6", trade_no, (100,), a))
    assert (result.status, result.error, result.code) == (ResultStatus.FAIL, ErrorClass.REJECTED,
                                                          "ACQ.ROYALTY_RECEIVER_INVALID")  # fmt: skip


async def test_a_trade_created_without_the_freeze_cannot_be_split(env: IsvEnv) -> None:
    a = env.subs["A"]
    await bound(env, a)
    trade_no = await paid(env, env.adapter, "SP4", 10000, a, sharing=False)
    trade = env.sim.book.find(SUB_A, "SP4")
    assert trade is not None and "royalty_freeze" not in trade.extra
    result = await env.adapter.split(request("SP4", "S7", trade_no, (100,), a))
    assert (result.status, result.code) == (ResultStatus.FAIL, "ACQ.TRADE_SETTLE_ERROR")


async def test_finish_releases_the_rest_and_refuses_further_splits(env: IsvEnv) -> None:
    a = env.subs["A"]
    await bound(env, a)
    with_split = await paid(env, env.adapter, "SP5", 10000, a)
    done = await env.adapter.split(request("SP5", "S8", with_split, (500,), a, finish=True))
    assert done.status is ResultStatus.SUCCESS
    again = await env.adapter.split(request("SP5", "S9", with_split, (500,), a))
    assert (again.status, again.code) == (ResultStatus.FAIL, "ACQ.TRADE_SETTLE_ERROR")

    alone = await paid(env, env.adapter, "SP6", 10000, a)
    finished = await env.adapter.finish_split(SplitRef("SP6", "F1", alone, a))
    assert finished.status is ResultStatus.SUCCESS
    assert (await env.adapter.finish_split(SplitRef("SP6", "F1", alone, a))).status is ResultStatus.SUCCESS  # resent
    after = await env.adapter.split(request("SP6", "S10", alone, (100,), a))
    assert after.code == "ACQ.TRADE_SETTLE_ERROR"


async def test_a_split_left_processing_is_waiting_then_succeeds_on_query(env: IsvEnv) -> None:
    a = env.subs["A"]
    await bound(env, a)
    trade_no = await paid(env, env.adapter, "SP7", 10000, a)
    env.sim.splits.processing_next = 1
    sent = await env.adapter.split(request("SP7", "S11", trade_no, (700, 300), a))
    assert (sent.status, sent.code) == (ResultStatus.UNKNOWN, "ACQ.SYSTEM_ERROR")
    ref = SplitRef("SP7", "S11", trade_no, a)
    waiting = await env.adapter.query_split(ref)
    assert (waiting.status, waiting.code) == (ResultStatus.WAITING, "PROCESSING")
    done = await env.adapter.query_split(ref)
    assert (done.status, done.amount) == (ResultStatus.SUCCESS, 1000)
    unknown = await env.adapter.query_split(SplitRef("SP7", "NOPE", trade_no, a))
    assert unknown.status is ResultStatus.FAIL and unknown.error is ErrorClass.REJECTED


async def test_return_split_is_refused_without_a_call(env: IsvEnv) -> None:
    a = env.subs["A"]
    result = await env.adapter.return_split(
        SplitReturnRequest("SP8", "S12", "R1", "2026031022001", receivers(a)[0], 100, "refund", a)
    )
    assert (result.status, result.error, result.code) == (ResultStatus.FAIL, ErrorClass.REJECTED,
                                                          "RETURN_WITH_REFUND")  # fmt: skip
    assert list(env.sim.isv.seen) == []


async def test_the_platforms_wrappers_reach_the_adapter_for_the_sub_merchant(env: IsvEnv) -> None:
    """As the platform calls it: the sub-merchant view over the breaker-guarded account adapter."""
    a = env.subs["A"]
    guarded = GuardedAdapter("acc1", env.adapter, BreakerRegistry(MemoryCache(), fail_max=3, reset_timeout_s=30.0),
                             HealthWindow())  # fmt: skip
    view = SubMerchantAdapter(guarded, a)
    assert (await view.bind_receiver(SplitReceiver(USER_ID, "MERCHANT"))).status is ResultStatus.SUCCESS
    trade_no = await paid(env, env.adapter, "SPW", 1000, a)
    shares = (SplitShare(SplitReceiver(USER_ID, "MERCHANT"), 300, "fee"),)
    done = await view.split(SplitRequest("SPW", "SW1", trade_no, shares))
    assert (done.status, done.amount) == (ResultStatus.SUCCESS, 300)
    assert (await view.query_split(SplitRef("SPW", "SW1", trade_no))).status is ResultStatus.SUCCESS
    assert (await view.finish_split(SplitRef("SPW", "FW1", trade_no))).status is ResultStatus.SUCCESS
    refused = await view.return_split(SplitReturnRequest("SPW", "SW1", "RW1", trade_no, shares[0].receiver, 1, "r"))
    assert refused.code == "RETURN_WITH_REFUND"
    assert {r.app_auth_token for r in env.sim.isv.seen} == {a.app_auth_token}


# --- python-alipay-sdk as an independent peer -----------------------------------------------------------------


def sdk(env: IsvEnv, token: str) -> AliPay:
    return _with_gateway(ISVAliPay(
        appid=PROVIDER, app_notify_url=NOTIFY_URL, alipay_public_key_string=env.sim.public_key_pem,
        app_private_key_string=private_key_pem(env.keys["provider"]), app_auth_token=token,
    ))  # fmt: skip


def _with_gateway(client: AliPay) -> AliPay:
    client._gateway = GATEWAY
    return client


async def sdk_call(env: IsvEnv, client: AliPay, method: str, biz: dict[str, Any]) -> dict[str, Any]:
    """Sign with the SDK, send, and let the SDK verify the simulator's signed answer."""
    raw = (await env.payer.get("/alipay/gateway.do?" + client.sign_data(client.build_body(method, biz)))).text
    node: dict[str, Any] = client._verify_and_return_sync_response(raw, method.replace(".", "_") + "_response")
    return node


async def test_the_sdk_drives_bind_settle_query_and_refund_of_split_money(env: IsvEnv) -> None:
    token = env.subs["A"].app_auth_token
    assert token is not None
    client = sdk(env, token)
    bind = await sdk_call(env, client, "alipay.trade.royalty.relation.bind", {
        "out_request_no": "BIND1", "receiver_list": [{"type": "userId", "account": USER_ID, "memo": "m"}],
    })  # fmt: skip
    assert (bind["code"], bind["result_code"]) == ("10000", "SUCCESS")
    made = await sdk_call(env, client, "alipay.trade.precreate", {
        "out_trade_no": "SPK1", "total_amount": "100.00", "subject": "t", "extend_params": {"royalty_freeze": "true"},
    })  # fmt: skip
    scanned = await env.payer.post("/sandbox/scan", json={"content": made["qr_code"], "result": "paid"})
    trade_no = scanned.json()["channel_trade_no"]
    # the SDK's own settle body: api_alipay_trade_order_settle's fields, sent here over the test transport
    royalty = [{"royalty_type": "transfer", "trans_in_type": "userId", "trans_in": USER_ID, "amount": "20.00",
                "desc": "commission"}]  # fmt: skip
    settled = await sdk_call(env, client, "alipay.trade.order.settle",
                             {"out_request_no": "SET1", "trade_no": trade_no, "royalty_parameters": royalty})
    assert settled["code"] == "10000" and settled["trade_no"] == trade_no and settled["settle_no"]
    over = await sdk_call(env, client, "alipay.trade.order.settle", {
        "out_request_no": "SET2", "trade_no": trade_no, "royalty_parameters": [dict(royalty[0], amount="10.01")],
    })  # fmt: skip
    assert (over["code"], over["sub_code"]) == ("40004", "ACQ.ALLOC_AMOUNT_VALIDATE_ERROR")
    queried = await sdk_call(env, client, "alipay.trade.order.settle.query", {"settle_no": settled["settle_no"]})
    assert queried["out_request_no"] == "SET1"
    assert [(d["trans_in"], d["amount"], d["state"]) for d in queried["royalty_detail_list"]] == [
        (USER_ID, "20.00", "SUCCESS")
    ]

    # the money comes back only inside a refund: more than the receiver got is refused, the rest comes back
    back = {"royalty_type": "transfer", "trans_out": USER_ID, "trans_out_type": "userId", "amount": "20.01"}
    refused = await sdk_call(env, client, "alipay.trade.refund", {
        "trade_no": trade_no, "refund_amount": "50.00", "out_request_no": "RF1", "refund_royalty_parameters": [back],
    })  # fmt: skip
    assert refused["sub_code"] == "ACQ.ALLOC_AMOUNT_VALIDATE_ERROR"
    refunded = await sdk_call(env, client, "alipay.trade.refund", {
        "trade_no": trade_no, "refund_amount": "50.00", "out_request_no": "RF1",
        "refund_royalty_parameters": [dict(back, amount="20.00")],
    })  # fmt: skip
    assert (refunded["code"], refunded["fund_change"]) == ("10000", "Y")
    trade = env.sim.book.find(SUB_A, "SPK1")
    assert trade is not None and env.sim.splits.of(trade).received == {USER_ID: 0}
    resent = await sdk_call(env, client, "alipay.trade.refund", {
        "trade_no": trade_no, "refund_amount": "50.00", "out_request_no": "RF1",
        "refund_royalty_parameters": [dict(back, amount="20.00")],
    })  # fmt: skip
    assert resent["fund_change"] == "N" and env.sim.splits.of(trade).received == {USER_ID: 0}  # taken back once


async def test_a_split_never_exceeds_what_the_trade_still_holds(env: IsvEnv) -> None:
    a = env.subs["A"]
    await bound(env, a)
    trade_no = await paid(env, env.adapter, "SP9", 10000, a)
    refunded = await env.adapter.refund(RefundRequest("SP9", "RF9", 9000, 10000, NOTIFY_URL, sub=a))
    assert refunded.status is ResultStatus.SUCCESS
    over = await env.adapter.split(request("SP9", "S13", trade_no, (1001,), a))
    assert over.code == "ACQ.ALLOC_AMOUNT_VALIDATE_ERROR"
    assert (await env.adapter.split(request("SP9", "S14", trade_no, (1000,), a))).status is ResultStatus.SUCCESS


async def test_the_sdk_rejects_a_tampered_settle_answer(env: IsvEnv) -> None:
    from alipay.exceptions import AliPayValidationError

    token = env.subs["A"].app_auth_token
    assert token is not None
    client = sdk(env, token)
    data = client.build_body("alipay.trade.order.settle.query", {"out_request_no": "X", "trade_no": "Y"})
    raw = (await env.payer.get("/alipay/gateway.do?" + client.sign_data(data))).text
    assert json.loads(raw)["alipay_trade_order_settle_query_response"]["sub_code"] == "ACQ.TRADE_NOT_EXIST"
    with pytest.raises(AliPayValidationError):
        client._verify_and_return_sync_response(raw.replace("TRADE_NOT_EXIST", "TRADE_NOT_EXISX"),
                                                "alipay_trade_order_settle_query_response")  # fmt: skip
