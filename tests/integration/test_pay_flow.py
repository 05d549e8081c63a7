"""Issue 3: the pay-order lifecycle end to end on the Alipay protocol (in-process simulator)."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from urllib.parse import urlencode

from sqlalchemy import text

from tomato.channel.models import ChannelAccount


async def wait_for(predicate, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    async with asyncio.timeout(timeout):
        while not await predicate():
            await asyncio.sleep(0.02)


async def events_of(pay, order_no: str, event_type: str) -> int:  # type: ignore[no-untyped-def]
    async with pay.c.db.engine.connect() as conn:
        return int(
            (
                await conn.execute(
                    text("SELECT count(*) FROM outbox_events WHERE aggregate_id = :o AND event_type = :t"),
                    {"o": order_no, "t": event_type},
                )
            ).scalar_one()
        )


async def test_qr_order_is_paid_once(pay) -> None:
    r = await pay.client.create_order(pay_method="ALIPAY_QR")
    assert r.status_code == 201, r.text
    order = r.json()
    assert order["status"] == "PAYING" and order["channel"] == "alipay"
    assert order["pay_data"]["type"] == "qr_code"
    scan = await pay.scan(content=order["pay_data"]["value"], result="paid")
    assert scan.status_code == 200, scan.text

    async def paid() -> bool:
        got = await pay.client.request("GET", f"/v1/pay/orders/{order['order_no']}")
        return got.json()["status"] == "SUCCEEDED"

    await wait_for(paid)
    got = (await pay.client.request("GET", f"/v1/pay/orders/{order['order_no']}")).json()
    assert got["channel_trade_no"] == scan.json()["channel_trade_no"] and got["paid_at"]
    assert await events_of(pay, order["order_no"], "pay.succeeded") == 1


async def wait_status(pay, order_no: str, status: str) -> dict:  # type: ignore[no-untyped-def]
    async def reached() -> bool:
        got = await pay.client.request("GET", f"/v1/pay/orders/{order_no}")
        return bool(got.json()["status"] == status)

    await wait_for(reached)
    return (await pay.client.request("GET", f"/v1/pay/orders/{order_no}")).json()  # type: ignore[no-any-return]


def simulator(pay):  # type: ignore[no-untyped-def]
    from tomato.channel.sandbox import alipay_simulator

    return alipay_simulator(pay.sandbox)


async def post_notify(pay, fields: dict[str, str]):  # type: ignore[no-untyped-def]
    return await pay.http.post(
        f"/callbacks/alipay/{pay.accounts['alipay']}",
        content=urlencode(fields).encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
    )


async def test_every_alipay_method_goes_to_succeeded(pay) -> None:
    for method, data_type in (("ALIPAY_QR", "qr_code"), ("ALIPAY_WAP", "redirect_url"), ("ALIPAY_PC", "redirect_url")):
        r = await pay.client.create_order(pay_method=method, return_url="https://shop.example/done")
        assert r.status_code == 201, r.text
        order = r.json()
        assert order["pay_data"]["type"] == data_type
        assert (await pay.scan(content=order["pay_data"]["value"], result="paid")).status_code == 200
        done = await wait_status(pay, order["order_no"], "SUCCEEDED")
        assert done["channel_trade_no"] and done["paid_at"]
        assert await events_of(pay, order["order_no"], "pay.succeeded") == 1


async def test_fifty_concurrent_duplicate_notifies_make_one_transition(pay) -> None:
    await pay.faults(channel="alipay", drop_notify=True)
    order = (await pay.client.create_order()).json()
    await pay.scan(order_no=order["order_no"], result="paid")
    trade = simulator(pay).book.find_by_order_no(order["order_no"])
    fields = simulator(pay).notify_fields(trade, "dup-notify-1")
    responses = await asyncio.gather(*(post_notify(pay, fields) for _ in range(50)))
    assert [r.text for r in responses] == ["success"] * 50
    assert await events_of(pay, order["order_no"], "pay.succeeded") == 1
    got = (await pay.client.request("GET", f"/v1/pay/orders/{order['order_no']}")).json()
    assert got["status"] == "SUCCEEDED" and got["channel_trade_no"] == trade.channel_trade_no


async def test_wrong_amount_or_bad_signature_changes_nothing(pay) -> None:
    await pay.faults(channel="alipay", drop_notify=True)
    order = (await pay.client.create_order(amount=1234)).json()
    await pay.scan(order_no=order["order_no"], result="paid")
    sim = simulator(pay)
    trade = sim.book.find_by_order_no(order["order_no"])
    trade.amount = 1
    wrong_amount = sim.notify_fields(trade, "n-amount")
    trade.amount = 1234
    r = await post_notify(pay, wrong_amount)
    assert r.status_code == 200 and r.text != "success"
    forged = {**sim.notify_fields(trade, "n-forged"), "buyer_id": "2088000000000000"}
    r = await post_notify(pay, forged)
    assert r.text != "success"
    got = (await pay.client.request("GET", f"/v1/pay/orders/{order['order_no']}")).json()
    assert got["status"] == "PAYING" and got["channel_trade_no"] is None
    assert await events_of(pay, order["order_no"], "pay.succeeded") == 0
    async with pay.c.db.engine.connect() as conn:
        kinds = (await conn.execute(text("SELECT kind FROM pay_anomalies"))).scalars().all()
    assert kinds == ["amount_mismatch"]


async def test_notify_for_another_account_is_refused(pay) -> None:
    from tomato.channel.schemas import ChannelAccountCreate

    await pay.faults(channel="alipay", drop_notify=True)
    order = (await pay.client.create_order()).json()
    await pay.scan(order_no=order["order_no"], result="paid")
    trade = simulator(pay).book.find_by_order_no(order["order_no"])
    fields = simulator(pay).notify_fields(trade, "n-other")
    # a second account with the same credentials: the notify verifies there, but the order never went to it
    other = await pay.c.channels.create_account(
        ChannelAccountCreate(channel="alipay", name="other", config=await _seeded_config(pay))
    )
    r = await pay.http.post(
        f"/callbacks/alipay/{other.id}",
        content=urlencode(fields).encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert r.text != "success"
    assert (await pay.client.request("GET", f"/v1/pay/orders/{order['order_no']}")).json()["status"] == "PAYING"


async def _seeded_config(pay) -> dict:  # type: ignore[no-untyped-def]

    async with pay.c.db.uow() as uow:
        account = await uow.session.get(ChannelAccount, pay.accounts["alipay"])
    return json.loads(pay.c.box.decrypt(account.config_ciphertext, context=f"channel-account:{account.id}"))  # type: ignore[no-any-return]


async def test_dropped_notify_is_recovered_by_the_compensation_query(pay) -> None:
    await pay.faults(channel="alipay", drop_notify=True)
    order = (await pay.client.create_order()).json()
    await pay.scan(order_no=order["order_no"], result="paid")
    assert await pay.c.pay.query_stuck_orders() == 0  # not due yet: first query 30 s after creation
    pay.clock.advance(timedelta(seconds=31))
    assert await pay.c.pay.query_stuck_orders() == 1
    got = (await pay.client.request("GET", f"/v1/pay/orders/{order['order_no']}")).json()
    assert got["status"] == "SUCCEEDED" and got["channel_trade_no"]
    assert await events_of(pay, order["order_no"], "pay.succeeded") == 1


async def test_unpaid_order_stays_paying_and_is_queried_later(pay) -> None:
    order = (await pay.client.create_order()).json()
    pay.clock.advance(timedelta(seconds=31))
    assert await pay.c.pay.query_stuck_orders() == 1  # ACQ.TRADE_NOT_EXIST: nobody scanned yet
    got = (await pay.client.request("GET", f"/v1/pay/orders/{order['order_no']}")).json()
    assert got["status"] == "PAYING"
    assert await pay.c.pay.query_stuck_orders() == 0  # rescheduled 1 minute on, not asked again at once


async def test_expired_order_is_closed_at_the_channel_then_locally(pay) -> None:
    order = (await pay.client.create_order(expire_minutes=1)).json()
    pay.clock.advance(timedelta(seconds=61))
    assert await pay.c.pay.close_expired_orders() == 1
    got = (await pay.client.request("GET", f"/v1/pay/orders/{order['order_no']}")).json()
    assert got["status"] == "CLOSED"
    assert await events_of(pay, order["order_no"], "pay.closed") == 1
    late = await pay.scan(content=order["pay_data"]["value"], result="paid")
    assert late.status_code == 409  # closed at the channel: the payer can no longer pay


async def test_payment_after_close_is_kept_and_flagged(pay) -> None:
    await pay.faults(channel="alipay", ignore_close=True)
    order = (await pay.client.create_order()).json()
    closed = await pay.client.request("POST", f"/v1/pay/orders/{order['order_no']}/close", {})
    assert closed.status_code == 200 and closed.json()["status"] == "CLOSED"
    assert (await pay.scan(content=order["pay_data"]["value"], result="paid")).status_code == 200
    done = await wait_status(pay, order["order_no"], "SUCCEEDED")
    assert done["paid_after_close"] is True
    assert await events_of(pay, order["order_no"], "pay.succeeded") == 1
    assert await events_of(pay, order["order_no"], "pay.closed") == 1


async def test_failed_payment_makes_the_order_failed(pay) -> None:
    order = (await pay.client.create_order()).json()
    assert (await pay.scan(content=order["pay_data"]["value"], result="failed")).status_code == 200
    await wait_status(pay, order["order_no"], "FAILED")
    assert await events_of(pay, order["order_no"], "pay.failed") == 1
    again = await pay.scan(content=order["pay_data"]["value"], result="paid")
    assert again.status_code == 409


async def test_close_semantics(pay) -> None:
    order = (await pay.client.create_order()).json()
    path = f"/v1/pay/orders/{order['order_no']}/close"
    first = await pay.client.request("POST", path, raw=b"")
    assert first.status_code == 200 and first.json()["status"] == "CLOSED"
    again = await pay.client.request("POST", path, {})
    assert again.status_code == 200 and again.json()["status"] == "CLOSED"
    assert await events_of(pay, order["order_no"], "pay.closed") == 1
    paid = (await pay.client.create_order()).json()
    await pay.scan(content=paid["pay_data"]["value"], result="paid")
    await wait_status(pay, paid["order_no"], "SUCCEEDED")
    r = await pay.client.request("POST", f"/v1/pay/orders/{paid['order_no']}/close", {})
    assert r.status_code == 409 and r.json()["error"]["code"] == "ORDER_STATE_CONFLICT"


async def test_lookup_by_out_trade_no(pay) -> None:
    order = (await pay.client.create_order(out_trade_no="shop-42")).json()
    r = await pay.client.request("GET", "/v1/pay/orders?out_trade_no=shop-42")
    assert r.status_code == 200 and r.json()["order_no"] == order["order_no"]
    other_app = await pay.rsa_client.request("GET", "/v1/pay/orders?out_trade_no=shop-42")
    assert other_app.status_code == 404  # orders are scoped to the app that created them
