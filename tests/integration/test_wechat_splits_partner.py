"""WeChat Pay profit sharing in partner mode (服务商) and on payment-code (API v2) orders: the adapter ↔ the
simulator, with wechatpayv3 in partner mode as a second peer. Fixtures and helpers are test_wechat_splits.py's."""

from __future__ import annotations

import json
from dataclasses import replace

from cryptography.hazmat.primitives.asymmetric import rsa

from tests.integration import test_wechat_splits as base
from tests.integration.test_wechat_partner import API_V3_KEY as SP_API_V3_KEY
from tests.integration.test_wechat_partner import SERIAL as SP_SERIAL
from tests.integration.test_wechat_partner import SP_APPID, SP_MCHID, SUB_A, SUB_APPID_A, SUB_X, partner_config
from tests.integration.test_wechat_sandbox import API_V3_KEY, MCHID, SERIAL, account_config, pay_code
from tests.integration.test_wechat_splits import PERSON, SHOP, SPLIT_NOTIFY_PATH, Env, create_req, make_sdk, split_req
from tomato.channel.adapters.wechat import WechatAdapter, parse_config
from tomato.channel.protocol import ResultStatus, SplitRef, SplitReturnRequest, SubMerchant
from tomato.channel.sandbox.wechat_partner import owner_key
from tomato.core.crypto import public_key_pem

keys, env, _sdk_keys = base.keys, base.env, base._sdk_keys  # the fixtures, shared

# --- partner mode -------------------------------------------------------------------------------------------


async def test_partner_mode_names_the_sub_merchant_on_every_profit_sharing_call(
    env: Env, keys: dict[str, rsa.RSAPrivateKey]
) -> None:
    env.sim.register_merchant(SP_MCHID, SP_SERIAL, public_key_pem(keys["provider"]), SP_API_V3_KEY)
    env.sim.register_sub_merchant(SP_MCHID, SUB_A, SUB_APPID_A)
    sub = SubMerchant(sub_mchid=SUB_A, sub_appid=SUB_APPID_A)
    adapter = WechatAdapter(parse_config(partner_config(keys, env.sim)), env.http)
    shop, person = replace(SHOP, sub=sub), replace(PERSON, sub=sub)
    assert (await adapter.bind_receiver(shop)).status is ResultStatus.SUCCESS
    assert (await adapter.bind_receiver(person)).status is ResultStatus.SUCCESS
    _, body = env.wire.last("/v3/profitsharing/receivers/add")
    assert (body["sub_mchid"], body["appid"], body["sub_appid"], body["type"]) == (
        SUB_A,
        SP_APPID,
        SUB_APPID_A,
        "PERSONAL_SUB_OPENID",
    )
    assert set(env.sim.splits.bound(owner_key(SP_MCHID, SUB_A))) == {
        ("MERCHANT_ID", SHOP.account),
        ("PERSONAL_SUB_OPENID", PERSON.account),
    }
    created = await adapter.create(create_req("PO1", 10000, sub=sub))
    scanned = await env.payer.post("/sandbox/scan", json={"content": pay_code(created), "result": "paid"})
    trade_no = str(scanned.json()["channel_trade_no"])
    split = await adapter.split(split_req("PO1", trade_no, "PS1", (shop, 2000), (person, 1000), sub=sub))
    assert (split.status, split.amount) == (ResultStatus.SUCCESS, 3000)
    assert env.wire.last("/v3/profitsharing/orders")[1]["sub_mchid"] == SUB_A
    query = await adapter.query_split(SplitRef("PO1", "PS1", trade_no, sub))
    assert query.status is ResultStatus.SUCCESS
    assert env.wire.sent[-1][1] == f"/v3/profitsharing/orders/PS1?transaction_id={trade_no}&sub_mchid={SUB_A}"
    back = await adapter.return_split(SplitReturnRequest("PO1", "PS1", "PR1", trade_no, shop, 100, "退款", sub))
    assert back.status is ResultStatus.SUCCESS
    assert env.wire.last("/v3/profitsharing/return-orders")[1]["sub_mchid"] == SUB_A
    finished = await adapter.finish_split(SplitRef("PO1", "PF1", trade_no, sub))
    assert (finished.status, finished.amount) == (ResultStatus.SUCCESS, 7000)
    # An unauthorized sub-merchant is refused by WeChat; none at all by the adapter, before any call.
    stranger = await adapter.bind_receiver(replace(SHOP, sub=SubMerchant(sub_mchid=SUB_X)))
    assert (stranger.status, stranger.code) == (ResultStatus.FAIL, "NO_AUTH")
    sent = len(env.wire.sent)
    assert (await adapter.bind_receiver(SHOP)).code == "SUB_MERCHANT_REQUIRED" and len(env.wire.sent) == sent


async def test_sdk_partner_mode_reads_the_max_ratio(env: Env, keys: dict[str, rsa.RSAPrivateKey]) -> None:
    env.sim.register_merchant(SP_MCHID, SP_SERIAL, public_key_pem(keys["provider"]), SP_API_V3_KEY)
    env.sim.register_sub_merchant(SP_MCHID, SUB_A, SUB_APPID_A)
    async with make_sdk(env, env.app, partner=True) as sdk:
        code, text = await sdk.profitsharing_config_query(sub_mchid=SUB_A)
        assert code == 200 and json.loads(text) == {"sub_mchid": SUB_A, "max_ratio": 3000}
        code, text = await sdk.profitsharing_add_receiver(
            account_type="MERCHANT_ID",
            account=SHOP.account,
            relation_type="SERVICE_PROVIDER",
            name=SHOP.name,
            sub_mchid=SUB_A,
        )
        assert code == 200 and json.loads(text)["sub_mchid"] == SUB_A
        code, text = await sdk.profitsharing_config_query(sub_mchid=SUB_X)
        assert (code, json.loads(text)["code"]) == (403, "NO_AUTH")


async def test_partner_split_notifies_name_the_sub_merchant(env: Env, keys: dict[str, rsa.RSAPrivateKey]) -> None:
    env.sim.register_merchant(SP_MCHID, SP_SERIAL, public_key_pem(keys["provider"]), SP_API_V3_KEY)
    env.sim.register_sub_merchant(SP_MCHID, SUB_A, SUB_APPID_A)
    sub = SubMerchant(sub_mchid=SUB_A, sub_appid=SUB_APPID_A)
    adapter = WechatAdapter(parse_config(partner_config(keys, env.sim)), env.http)
    env.receiver.adapter = adapter  # the provider's APIv3 key opens the provider's notifies
    env.sim.splits.set_notify_url(SP_MCHID, "http://platform.test" + SPLIT_NOTIFY_PATH)
    shop = replace(SHOP, sub=sub)
    assert (await adapter.bind_receiver(shop)).status is ResultStatus.SUCCESS
    created = await adapter.create(create_req("PN1", 10000, sub=sub))
    scanned = await env.payer.post("/sandbox/scan", json={"content": pay_code(created), "result": "paid"})
    trade_no = str(scanned.json()["channel_trade_no"])
    await env.state.notifier.drain()
    before = len(env.receiver.notifies)
    assert (
        await adapter.split(split_req("PN1", trade_no, "PNS", (shop, 1000), sub=sub))
    ).status is ResultStatus.SUCCESS
    await env.state.notifier.drain()
    (notify,) = env.receiver.notifies[before:]
    assert (notify.kind, notify.split_no, notify.sub_merchant, notify.raw["sp_mchid"]) == (
        "split",
        "PNS",
        SUB_A,
        SP_MCHID,
    )
    assert env.receiver.rejected == 0


async def test_a_barcode_order_with_the_flag_can_be_split(env: Env, keys: dict[str, rsa.RSAPrivateKey]) -> None:
    """Payment codes are API v2 (micropay `profit_sharing=Y`); their splits are v3's, on the same trade."""
    v2_key = "v2KEY0123456789abcdefghijklmnopq"
    env.sim.register_merchant(MCHID, SERIAL, public_key_pem(keys["merchant"]), API_V3_KEY, api_v2_key=v2_key)
    adapter = WechatAdapter(parse_config(account_config(keys, env.sim, api_v2_key=v2_key)), env.http)
    await env.bind(SHOP)
    codes = []
    for _ in range(2):
        issued = await env.payer.post("/sandbox/barcodes", json={"channel": "wechat", "behaviour": "pay"})
        codes.append(str(issued.json()["auth_code"]))
    flagged = replace(create_req("BC1", 10000), pay_method="BARCODE", auth_code=codes[0])
    paid = await adapter.create(flagged)
    assert paid.status is ResultStatus.SUCCESS and paid.channel_trade_no
    assert b"<profit_sharing><![CDATA[Y]]></profit_sharing>" in env.wire.sent[-1][3]
    split = await adapter.split(split_req("BC1", paid.channel_trade_no, "BCS1", (SHOP, 3000)))
    assert split.status is ResultStatus.SUCCESS
    plain = await adapter.create(replace(flagged, order_no="BC2", auth_code=codes[1], profit_sharing=False))
    assert plain.channel_trade_no and b"profit_sharing" not in env.wire.sent[-1][3]
    refused = await adapter.split(split_req("BC2", plain.channel_trade_no, "BCS2", (SHOP, 100)))
    assert (refused.status, refused.message) == (ResultStatus.FAIL, "非分账订单不支持分账")
