"""WeChat Pay profit sharing (分账): WechatAdapter ↔ the simulator, and wechatpayv3 as an independent second peer.

Every request the adapter sends is recorded off the wire, so paths and bodies are checked as sent; notifies are
awaited with `notifier.drain()` (no sleeps). One merchant (MCHID) binds a merchant receiver and a person; a
provider in partner mode splits for its sub-merchant at the end.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import FastAPI
from wechatpayv3 import WeChatPay, WeChatPayType
from wechatpayv3.async_ import AsyncWeChatPay
from wechatpayv3.async_.type import WeChatPayType as AsyncWeChatPayType

from tests.integration.test_wechat_partner import API_V3_KEY as SP_API_V3_KEY
from tests.integration.test_wechat_partner import SERIAL as SP_SERIAL
from tests.integration.test_wechat_partner import SP_APPID, SP_MCHID
from tests.integration.test_wechat_sandbox import (
    API_V3_KEY,
    APPID,
    MCHID,
    NOTIFY_URL,
    SANDBOX,
    SERIAL,
    Receiver,
    account_config,
    pay_code,
)
from tomato.channel.adapters.wechat import WechatAdapter, parse_config
from tomato.channel.http import guarded_client
from tomato.channel.protocol import (
    CreateRequest,
    ErrorClass,
    ProfitSharingChannel,
    ResultStatus,
    SplitReceiver,
    SplitRef,
    SplitRequest,
    SplitReturnRequest,
    SplitShare,
    SubMerchant,
)
from tomato.channel.sandbox import SandboxState, create_sandbox_app
from tomato.channel.sandbox.wechat import WechatSimulator
from tomato.core.crypto import generate_rsa_key, private_key_pem, public_key_pem

SHOP = SplitReceiver(account="1900000777", account_type="MERCHANT", name="番茄科技有限公司")
SHOP2 = SplitReceiver(account="1900000888", account_type="MERCHANT", name="另一家公司")
PERSON = SplitReceiver(account="oPerson000000000000000000001", account_type="PERSONAL")
STRANGER = SplitReceiver(account="1900000999", account_type="MERCHANT", name="未绑定公司")
SPLIT_NOTIFY_PATH = "/callbacks/wechat/ca1"  # the Receiver's path: the console URL points at the platform


@pytest.fixture(scope="module")
def keys() -> dict[str, rsa.RSAPrivateKey]:
    return {"merchant": generate_rsa_key(), "wechat": generate_rsa_key(), "provider": generate_rsa_key()}


class Recording(httpx.AsyncBaseTransport):
    """Keeps each request the adapter sends (method, raw path, headers, body) before passing it on."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self._inner = inner
        self.sent: list[tuple[str, str, httpx.Headers, bytes]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = await request.aread()
        self.sent.append((request.method, request.url.raw_path.decode(), request.headers, body))
        return await self._inner.handle_async_request(request)

    def last(self, path: str) -> tuple[httpx.Headers, dict[str, Any]]:
        headers, body = next((h, b) for m, p, h, b in reversed(self.sent) if p == path)
        return headers, json.loads(body) if body else {}


@dataclass
class Env:
    state: SandboxState
    sim: WechatSimulator
    adapter: WechatAdapter
    payer: httpx.AsyncClient
    receiver: Receiver
    app: FastAPI
    wire: Recording
    http: httpx.AsyncClient

    async def paid(self, order_no: str, amount: int = 10000, profit_sharing: bool = True) -> str:
        """Create (with the profit-sharing flag unless told otherwise) and pay: WeChat's transaction_id."""
        created = await self.adapter.create(create_req(order_no, amount, profit_sharing))
        scanned = await self.payer.post("/sandbox/scan", json={"content": pay_code(created), "result": "paid"})
        assert scanned.status_code == 200, scanned.text
        await self.state.notifier.drain()
        return str(scanned.json()["channel_trade_no"])

    async def bind(self, *receivers: SplitReceiver) -> None:
        for receiver in receivers:
            assert (await self.adapter.bind_receiver(receiver)).status is ResultStatus.SUCCESS


def create_req(order_no: str, amount: int, profit_sharing: bool = True, sub: SubMerchant | None = None) -> Any:
    return CreateRequest(
        order_no=order_no,
        amount=amount,
        subject="拼团订单",
        pay_method="WECHAT_NATIVE",
        notify_url=NOTIFY_URL,
        expire_at=datetime.now(UTC) + timedelta(minutes=30),
        profit_sharing=profit_sharing,
        sub=sub,
    )


def split_req(order_no: str, trade_no: str, split_no: str, *shares: tuple[SplitReceiver, int], **kw: Any) -> Any:
    return SplitRequest(
        order_no=order_no,
        split_no=split_no,
        channel_trade_no=trade_no,
        shares=tuple(SplitShare(receiver, amount, "平台佣金") for receiver, amount in shares),
        **kw,
    )


@pytest.fixture
async def env(keys: dict[str, rsa.RSAPrivateKey]) -> AsyncIterator[Env]:
    receiver = Receiver()
    state = SandboxState(time_scale=1_000_000, notify_transport=httpx.ASGITransport(app=receiver.app()))
    sim = WechatSimulator(state, private_key=keys["wechat"])
    sim.register_merchant(MCHID, SERIAL, public_key_pem(keys["merchant"]), API_V3_KEY)
    app = create_sandbox_app(state)
    wire = Recording(httpx.ASGITransport(app=app))
    async with (
        guarded_client(5.0, transport=wire) as http,
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=SANDBOX) as payer,
    ):
        adapter = WechatAdapter(parse_config(account_config(keys, sim)), http)
        receiver.adapter = adapter
        yield Env(state, sim, adapter, payer, receiver, app, wire, http)
        await state.aclose()


# --- receivers ----------------------------------------------------------------------------------------------


async def test_adapter_is_a_profit_sharing_channel_and_binds_with_the_name_encrypted(env: Env) -> None:
    assert isinstance(env.adapter, ProfitSharingChannel)
    await env.bind(SHOP, PERSON)
    headers, body = env.wire.last("/v3/profitsharing/receivers/add")
    assert body["appid"] == APPID and body["relation_type"] == "PARTNER"
    assert (body["type"], body["account"]) == ("PERSONAL_OPENID", PERSON.account) and "name" not in body
    _, shop_body = next(
        (h, json.loads(b)) for m, p, h, b in env.wire.sent if b and json.loads(b).get("account") == SHOP.account
    )
    assert shop_body["type"] == "MERCHANT_ID" and SHOP.name not in shop_body["name"]  # ciphertext, not the name
    assert headers["Wechatpay-Serial"] == env.sim.public_key_id
    # The simulator decrypted the name with the platform's private key: the encryption is the real one.
    assert env.sim.splits.bound(MCHID) == {
        ("MERCHANT_ID", SHOP.account): SHOP.name,
        ("PERSONAL_OPENID", PERSON.account): None,
    }
    assert (await env.adapter.bind_receiver(SHOP)).status is ResultStatus.SUCCESS  # bound already: still SUCCESS


async def test_a_merchant_receiver_without_its_name_is_refused_before_any_call(env: Env) -> None:
    result = await env.adapter.bind_receiver(replace(SHOP, name=None))
    assert (result.status, result.error, result.code) == (
        ResultStatus.FAIL,
        ErrorClass.REJECTED,
        "RECEIVER_NAME_REQUIRED",
    )
    assert env.wire.sent == []


# --- splits -------------------------------------------------------------------------------------------------


async def test_create_carries_the_flag_and_a_30_percent_split_to_two_receivers_succeeds(env: Env) -> None:
    await env.bind(SHOP, PERSON)
    trade_no = await env.paid("SO1", 10000)
    _, created = env.wire.last("/v3/pay/transactions/native")
    assert created["settle_info"] == {"profit_sharing": True}

    result = await env.adapter.split(split_req("SO1", trade_no, "SP1", (SHOP, 2000), (PERSON, 1000)))
    assert (result.status, result.code, result.amount, result.channel_trade_no) == (
        ResultStatus.SUCCESS,
        "FINISHED",
        3000,
        trade_no,
    )
    _, body = env.wire.last("/v3/profitsharing/orders")
    assert body == {
        "appid": APPID,
        "transaction_id": trade_no,
        "out_order_no": "SP1",
        "receivers": [
            {"type": "MERCHANT_ID", "account": SHOP.account, "amount": 2000, "description": "平台佣金"},
            {"type": "PERSONAL_OPENID", "account": PERSON.account, "amount": 1000, "description": "平台佣金"},
        ],
        "unfreeze_unsplit": False,
    }
    query = await env.adapter.query_split(SplitRef("SO1", "SP1", trade_no))
    assert (query.status, query.amount) == (ResultStatus.SUCCESS, 3000)
    assert env.wire.sent[-1][1] == f"/v3/profitsharing/orders/SP1?transaction_id={trade_no}"
    again = await env.adapter.split(split_req("SO1", trade_no, "SP1", (SHOP, 2000), (PERSON, 1000)))
    assert again.status is ResultStatus.SUCCESS  # one split_no is one split: a resend changes nothing


async def test_the_30_percent_limit_counts_every_split_of_the_trade(env: Env) -> None:
    await env.bind(SHOP, PERSON)
    trade_no = await env.paid("SO2", 10000)
    over = await env.adapter.split(split_req("SO2", trade_no, "SP2a", (SHOP, 3001)))
    assert (over.status, over.error, over.code) == (ResultStatus.FAIL, ErrorClass.REJECTED, "INVALID_REQUEST")
    assert over.message == "分账金额超出最大分账比例"
    assert (await env.adapter.split(split_req("SO2", trade_no, "SP2b", (SHOP, 2500)))).status is ResultStatus.SUCCESS
    second = await env.adapter.split(split_req("SO2", trade_no, "SP2c", (PERSON, 501)))
    assert (second.status, second.message) == (ResultStatus.FAIL, "分账金额超出最大分账比例")
    assert (await env.adapter.split(split_req("SO2", trade_no, "SP2d", (PERSON, 500)))).status is ResultStatus.SUCCESS


async def test_a_split_to_an_unbound_receiver_is_refused(env: Env) -> None:
    await env.bind(SHOP)
    trade_no = await env.paid("SO3")
    result = await env.adapter.split(split_req("SO3", trade_no, "SP3", (SHOP, 100), (STRANGER, 100)))
    assert (result.status, result.error, result.code) == (ResultStatus.FAIL, ErrorClass.REJECTED, "INVALID_REQUEST")
    assert result.message is not None and "分账接收方关系不存在" in result.message


async def test_a_trade_created_without_the_flag_cannot_be_split(env: Env) -> None:
    await env.bind(SHOP)
    trade_no = await env.paid("SO4", profit_sharing=False)
    _, created = env.wire.last("/v3/pay/transactions/native")
    assert "settle_info" not in created
    result = await env.adapter.split(split_req("SO4", trade_no, "SP4", (SHOP, 100)))
    assert (result.status, result.error, result.message) == (
        ResultStatus.FAIL,
        ErrorClass.REJECTED,
        "非分账订单不支持分账",
    )


async def test_an_unknown_split_is_waiting_not_failed(env: Env) -> None:
    trade_no = await env.paid("SO5")
    result = await env.adapter.query_split(SplitRef("SO5", "NEVER", trade_no))
    assert (result.status, result.code) == (ResultStatus.WAITING, "RESOURCE_NOT_EXISTS")


async def test_finish_releases_the_rest_and_further_splits_are_refused(env: Env) -> None:
    await env.bind(SHOP)
    trade_no = await env.paid("SO6", 10000)
    assert (await env.adapter.split(split_req("SO6", trade_no, "SP6", (SHOP, 1000)))).status is ResultStatus.SUCCESS
    finished = await env.adapter.finish_split(SplitRef("SO6", "SP6F", trade_no))
    assert (finished.status, finished.amount) == (ResultStatus.SUCCESS, 9000)  # the rest went to the merchant
    _, body = env.wire.last("/v3/profitsharing/orders/unfreeze")
    assert body == {"transaction_id": trade_no, "out_order_no": "SP6F", "description": "解冻全部剩余资金"}
    after = await env.adapter.split(split_req("SO6", trade_no, "SP6b", (SHOP, 100)))
    assert (after.status, after.error, after.code) == (ResultStatus.FAIL, ErrorClass.REJECTED, "NOT_ENOUGH")
    assert (await env.adapter.finish_split(SplitRef("SO6", "SP6F", trade_no))).status is ResultStatus.SUCCESS
    twice = await env.adapter.finish_split(SplitRef("SO6", "SP6G", trade_no))
    assert (twice.status, twice.code) == (ResultStatus.FAIL, "NOT_ENOUGH")


async def test_a_split_with_finish_sends_unfreeze_unsplit_and_its_amount_is_the_shares_only(env: Env) -> None:
    await env.bind(SHOP)
    trade_no = await env.paid("SO7", 10000)
    result = await env.adapter.split(split_req("SO7", trade_no, "SP7", (SHOP, 1500), finish=True))
    assert (result.status, result.amount) == (ResultStatus.SUCCESS, 1500)
    assert env.wire.last("/v3/profitsharing/orders")[1]["unfreeze_unsplit"] is True
    later = await env.adapter.split(split_req("SO7", trade_no, "SP7b", (SHOP, 100)))
    assert later.code == "NOT_ENOUGH"


async def test_waiting_then_query_success(env: Env) -> None:
    await env.bind(SHOP, PERSON)
    trade_no = await env.paid("SO8")
    env.sim.splits.hold = True
    accepted = await env.adapter.split(split_req("SO8", trade_no, "SP8", (SHOP, 300), (PERSON, 200)))
    assert (accepted.status, accepted.code) == (ResultStatus.WAITING, "PROCESSING")
    done = await env.adapter.query_split(SplitRef("SO8", "SP8", trade_no))
    assert (done.status, done.amount) == (ResultStatus.SUCCESS, 500)


async def test_a_closed_share_fails_the_split_with_its_reason(env: Env) -> None:
    await env.bind(SHOP, PERSON)
    trade_no = await env.paid("SO9")
    env.sim.splits.hold = True
    env.sim.splits.close_accounts.add(PERSON.account)
    assert (await env.adapter.split(split_req("SO9", trade_no, "SP9", (SHOP, 300), (PERSON, 200)))).status is (
        ResultStatus.WAITING
    )
    result = await env.adapter.query_split(SplitRef("SO9", "SP9", trade_no))
    assert (result.status, result.error, result.code) == (ResultStatus.FAIL, ErrorClass.NONE, "ACCOUNT_ABNORMAL")


# --- returns ------------------------------------------------------------------------------------------------


def return_req(trade_no: str, return_no: str, amount: int, receiver: SplitReceiver = SHOP) -> SplitReturnRequest:
    return SplitReturnRequest("SR", "SPR", return_no, trade_no, receiver, amount, "用户退款")


async def test_return_takes_back_at_most_what_the_receiver_got(env: Env) -> None:
    await env.bind(SHOP, PERSON)
    trade_no = await env.paid("SR", 10000)
    assert (await env.adapter.split(split_req("SR", trade_no, "SPR", (SHOP, 2000), (PERSON, 500)))).status is (
        ResultStatus.SUCCESS
    )
    back = await env.adapter.return_split(return_req(trade_no, "RT1", 1500))
    assert (back.status, back.amount) == (ResultStatus.SUCCESS, 1500) and back.channel_refund_no
    _, body = env.wire.last("/v3/profitsharing/return-orders")
    assert body == {
        "out_order_no": "SPR",
        "out_return_no": "RT1",
        "return_mchid": SHOP.account,
        "amount": 1500,
        "description": "用户退款",
    }
    too_much = await env.adapter.return_split(return_req(trade_no, "RT2", 501))
    assert (too_much.status, too_much.error, too_much.code) == (
        ResultStatus.FAIL,
        ErrorClass.REJECTED,
        "INVALID_REQUEST",
    )
    assert (await env.adapter.return_split(return_req(trade_no, "RT3", 500))).status is ResultStatus.SUCCESS
    assert env.sim.splits.received("SPR", SHOP.account, MCHID) == 0
    again = await env.adapter.return_split(return_req(trade_no, "RT1", 1500))  # same return_no: same return
    assert again.status is ResultStatus.SUCCESS and env.sim.splits.received("SPR", SHOP.account, MCHID) == 0
    person = await env.adapter.return_split(return_req(trade_no, "RT4", 100, PERSON))
    assert (person.status, person.code) == (ResultStatus.FAIL, "SPLIT_RETURN_NOT_SUPPORTED")


async def test_a_processing_return_is_waiting_until_asked_again(env: Env) -> None:
    await env.bind(SHOP)
    trade_no = await env.paid("SR", 10000)
    assert (await env.adapter.split(split_req("SR", trade_no, "SPR", (SHOP, 2000)))).status is ResultStatus.SUCCESS
    env.sim.splits.hold = True
    first = await env.adapter.return_split(return_req(trade_no, "RT5", 700))
    assert (first.status, first.code) == (ResultStatus.WAITING, "PROCESSING")
    query = await env.http.get(f"{SANDBOX}/v3/profitsharing/return-orders/RT5?out_order_no=SPR")
    assert query.status_code == 401  # unsigned: the simulator wants the merchant's signature even to answer
    async with make_sdk(env, env.app) as sdk:
        code, text = await sdk.profitsharing_return_query(out_order_no="SPR", out_return_no="RT5")
    assert code == 200 and json.loads(text)["result"] == "SUCCESS"
    assert (await env.adapter.return_split(return_req(trade_no, "RT5", 700))).status is ResultStatus.SUCCESS


async def test_a_refund_of_a_split_trade_is_not_held_back_by_its_splits(env: Env) -> None:
    """WeChat refunds from the merchant's balance without asking for the splits back first; so does the sandbox."""
    from tomato.channel.protocol import RefundRequest

    await env.bind(SHOP)
    trade_no = await env.paid("SRF", 10000)
    assert (await env.adapter.split(split_req("SRF", trade_no, "SPRF", (SHOP, 3000)))).status is ResultStatus.SUCCESS
    refund = await env.adapter.refund(RefundRequest("SRF", "RF1", 10000, 10000, NOTIFY_URL))
    assert refund.status is ResultStatus.WAITING


# --- notifies -----------------------------------------------------------------------------------------------


async def test_each_share_is_notified_and_parsed_as_a_split_notify(env: Env) -> None:
    await env.bind(SHOP, PERSON)
    trade_no = await env.paid("SN", 10000)
    env.sim.splits.set_notify_url(MCHID, "http://platform.test" + SPLIT_NOTIFY_PATH)
    env.sim.splits.close_accounts.add(PERSON.account)
    before = len(env.receiver.notifies)
    result = await env.adapter.split(split_req("SN", trade_no, "SPN", (SHOP, 700), (PERSON, 300)))
    assert (result.status, result.code) == (ResultStatus.FAIL, "ACCOUNT_ABNORMAL")
    await env.state.notifier.drain()
    notifies = env.receiver.notifies[before:]
    assert [(n.kind, n.status, n.split_no, n.channel_trade_no, n.amount) for n in notifies] == [
        ("split", ResultStatus.WAITING, "SPN", trade_no, 700),  # one share arrived: ask query_split for the rest
        ("split", ResultStatus.FAIL, "SPN", trade_no, 300),  # a closed share fails the split
    ]
    assert notifies[0].raw["event_type"] == "PROFITSHARING.SUCCESS" and notifies[0].order_no == ""
    assert env.receiver.rejected == 0


# --- the SDK as a second peer -------------------------------------------------------------------------------


def make_sdk(env: Env, app: FastAPI, partner: bool = False, keys: dict[str, Any] | None = None) -> Any:
    """wechatpayv3's async client (public-key mode) pointed at the simulator in process, as a context manager."""

    class _Ctx:
        async def __aenter__(self) -> AsyncWeChatPay:
            self.http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app))
            client = AsyncWeChatPay(
                wechatpay_type=AsyncWeChatPayType.NATIVE,
                mchid=SP_MCHID if partner else MCHID,
                private_key=private_key_pem(_SDK_KEYS["provider" if partner else "merchant"]),
                cert_serial_no=SP_SERIAL if partner else SERIAL,
                appid=SP_APPID if partner else APPID,
                apiv3_key=SP_API_V3_KEY if partner else API_V3_KEY,
                notify_url=NOTIFY_URL,
                partner_mode=partner,
                public_key=env.sim.public_key_pem,
                public_key_id=env.sim.public_key_id,
            )
            client._core._gate_way = SANDBOX
            client._core._client = self.http
            return client

        async def __aexit__(self, *exc: object) -> None:
            await self.http.aclose()

    return _Ctx()


_SDK_KEYS: dict[str, rsa.RSAPrivateKey] = {}


@pytest.fixture(autouse=True)
def _sdk_keys(keys: dict[str, rsa.RSAPrivateKey]) -> None:
    _SDK_KEYS.update(keys)


async def test_sdk_drives_every_profit_sharing_endpoint_and_verifies_each_answer(env: Env) -> None:
    """The SDK raises unless each 2xx answer verifies with its own validator; it encrypts `name` itself."""
    trade_no = await env.paid("SK1", 10000)
    env.sim.splits.set_notify_url(MCHID, "http://platform.test" + SPLIT_NOTIFY_PATH)
    async with make_sdk(env, env.app) as sdk:
        code, text = await sdk.profitsharing_add_receiver(
            account_type="MERCHANT_ID", account=SHOP.account, relation_type="PARTNER", name=SHOP.name
        )
        assert code == 200 and json.loads(text)["account"] == SHOP.account
        assert env.sim.splits.bound(MCHID)[("MERCHANT_ID", SHOP.account)] == SHOP.name  # its OAEP decrypts here
        receivers = [{"type": "MERCHANT_ID", "account": SHOP.account, "amount": 2000, "description": "佣金"}]
        code, text = await sdk.profitsharing_order(
            transaction_id=trade_no, out_order_no="SKS1", receivers=receivers, unfreeze_unsplit=False
        )
        answer = json.loads(text)
        assert code == 200 and answer["state"] == "FINISHED" and answer["receivers"][0]["result"] == "SUCCESS"
        code, text = await sdk.profitsharing_order_query(transaction_id=trade_no, out_order_no="SKS1")
        assert code == 200 and json.loads(text)["order_id"] == answer["order_id"]
        code, text = await sdk.profitsharing_amount_query(transaction_id=trade_no)
        assert code == 200 and json.loads(text)["unsplit_amount"] == 8000
        code, text = await sdk.profitsharing_return(
            out_order_no="SKS1", out_return_no="SKR1", return_mchid=SHOP.account, amount=500, description="退款"
        )
        assert code == 200 and json.loads(text)["result"] == "SUCCESS"
        code, text = await sdk.profitsharing_return_query(out_order_no="SKS1", out_return_no="SKR1")
        assert code == 200 and json.loads(text)["amount"] == 500
        code, text = await sdk.profitsharing_unfreeze(transaction_id=trade_no, out_order_no="SKU1", description="解冻")
        unfrozen = json.loads(text)
        assert code == 200 and unfrozen["receivers"] == [
            {**unfrozen["receivers"][0], "type": "MERCHANT_ID", "account": MCHID, "amount": 8000, "result": "SUCCESS"}
        ]
        code, text = await sdk.profitsharing_order(
            transaction_id=trade_no, out_order_no="SKS2", receivers=receivers, unfreeze_unsplit=False
        )
        assert (code, json.loads(text)["code"]) == (403, "NOT_ENOUGH")
        code, _ = await sdk.profitsharing_delete_receiver(account_type="MERCHANT_ID", account=SHOP.account)
        assert code == 200 and env.sim.splits.bound(MCHID) == {}
    await env.state.notifier.drain()
    headers, body = env.receiver.requests[-1]
    wx = WeChatPay(
        wechatpay_type=WeChatPayType.NATIVE,
        mchid=MCHID,
        private_key=private_key_pem(_SDK_KEYS["merchant"]),
        cert_serial_no=SERIAL,
        appid=APPID,
        apiv3_key=API_V3_KEY,
        notify_url=NOTIFY_URL,
        public_key=env.sim.public_key_pem,
        public_key_id=env.sim.public_key_id,
    )
    notify = wx.callback(headers, body)  # verifies the notify's signature and decrypts it
    assert notify["event_type"] == "PROFITSHARING.SUCCESS"
    assert notify["resource"]["out_order_no"] == "SKS1" and notify["resource"]["mchid"] == MCHID
