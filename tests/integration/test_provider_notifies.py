"""Issue 21 acceptance 2: a verified notify naming another sub-merchant of the same service provider is refused in
the channel's own form and changes nothing; the same notify naming the order's sub-merchant is applied (SQLite and
PostgreSQL).

The notifies are the simulators' own, signed with their keys, with only the sub-merchant changed: exactly what a
second sub-merchant's trade of the same number under the same provider would look like.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from sqlalchemy import text

from tests.fixtures.pay_stack import SANDBOX_URL, PayStack
from tests.fixtures.stack import admin
from tomato.channel.adapters.alipay import codec as alipay_codec
from tomato.channel.adapters.alipay import signing as alipay_signing
from tomato.channel.adapters.wechat import codec as wechat_codec
from tomato.channel.adapters.wechat import signing as wechat_signing
from tomato.channel.sandbox.app import alipay_simulator, wechat_simulator
from tomato.runtime.seed_providers import seed_service_providers

OTHER_SUB_APP = "2021000000009999"
OTHER_SUB_MCHID = "1799999999"


async def _paid_on_provider(pay: PayStack, channel: str, method: str) -> tuple[str, str]:
    """(account id, order no) of an order paid at the provider's simulator, its own notify dropped."""
    mch_no = (await pay.c.merchants.get_app(pay.client.app_id)).mch_no
    providers = await seed_service_providers(pay.c, pay.sandbox, SANDBOX_URL, mch_no, 0)
    account_id = providers[channel]
    rule = {
        "rank": 10,
        "pay_methods": [method],
        "app_id": pay.client.app_id,
        "candidates": [{"channel_account_id": account_id, "priority": 1}],
    }
    assert (await pay.http.post("/admin/routing-rules", json=rule, headers=admin())).status_code == 201
    await pay.faults(channel=channel, drop_notify=True)
    order = (await pay.client.create_order(pay_method=method)).json()
    assert order["status"] == "PAYING", order
    assert (await pay.scan(order_no=order["order_no"], result="paid")).status_code == 200
    return account_id, str(order["order_no"])


async def _unchanged(pay: PayStack, order_no: str) -> None:
    async with pay.c.db.engine.connect() as conn:
        status = (await conn.execute(text("SELECT status FROM pay_orders WHERE order_no = :o"), {"o": order_no})).one()
        events = await conn.execute(
            text("SELECT count(*) FROM outbox_events WHERE aggregate_id = :o AND event_type = 'pay.succeeded'"),
            {"o": order_no},
        )
        assert (status[0], events.scalar_one()) == ("PAYING", 0)


async def _status(pay: PayStack, order_no: str) -> str:
    return str((await pay.client.request("GET", f"/v1/pay/orders/{order_no}")).json()["status"])


async def test_an_alipay_notify_for_another_sub_merchant_is_refused(pay: PayStack) -> None:
    account_id, order_no = await _paid_on_provider(pay, "alipay", "ALIPAY_QR")
    sim = alipay_simulator(pay.sandbox)
    trade = sim.book.find_by_order_no(order_no)
    genuine = sim.notify_fields(trade, uuid.uuid4().hex)

    def post(fields: dict[str, str]) -> Any:
        return pay.http.post(
            f"/callbacks/alipay/{account_id}",
            content=alipay_codec.encode_form(fields),
            headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
        )

    forged = alipay_signing.sign_notify({**genuine, "auth_app_id": OTHER_SUB_APP}, sim._key)
    refused = await post(forged)
    assert (refused.status_code, refused.content) == (200, b"fail")  # Alipay's refusal: it will not count it done
    await _unchanged(pay, order_no)

    accepted = await post(genuine)
    assert (accepted.status_code, accepted.content) == (200, b"success")
    assert await _status(pay, order_no) == "SUCCEEDED"


async def test_a_wechat_notify_for_another_sub_merchant_is_refused(pay: PayStack) -> None:
    account_id, order_no = await _paid_on_provider(pay, "wechat", "WECHAT_NATIVE")
    sim = wechat_simulator(pay.sandbox)
    trade = sim.book.find_by_order_no(order_no)
    sp_mchid = trade.extra["sp_mchid"]
    resource = sim.partner.transaction(trade)

    def post(plain: dict[str, Any]) -> Any:
        body = wechat_signing.seal_notify(
            sim._merchants[sp_mchid].api_v3_key,
            notify_id=str(uuid.uuid4()),
            create_time=wechat_codec.format_time(pay.clock.now()),
            event_type="TRANSACTION.SUCCESS",
            summary="支付成功",
            original_type="transaction",
            plaintext=wechat_codec.dumps(plain),
        )
        headers = wechat_signing.signed_headers(sim._key, sim.public_key_id, body, int(time.time()))
        return pay.http.post(
            f"/callbacks/wechat/{account_id}", content=body, headers={**headers, "Content-Type": "application/json"}
        )

    refused = await post({**resource, "sub_mchid": OTHER_SUB_MCHID})
    assert refused.status_code >= 400 and refused.json()["code"] == "FAIL"  # WeChat's refusal: it retries later
    await _unchanged(pay, order_no)

    accepted = await post(resource)
    assert accepted.status_code in (200, 204), accepted.text
    assert await _status(pay, order_no) == "SUCCEEDED"
