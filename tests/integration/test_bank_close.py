"""Issue 15 item 21: the bank (UnionPay-style web payments) has no close. Closing a `BANK_WEB` order closes it
locally; the bank trade stays payable, and a payment that arrives afterwards makes the order `SUCCEEDED` with
`paid_after_close` and exactly one `pay.succeeded` — no fault switch needed, unlike Alipay's `ignore_close`."""

from __future__ import annotations

from tests.fixtures.pay_stack import PayStack
from tests.integration.test_pay_flow import events_of, wait_status


async def test_a_bank_payment_after_a_local_close_succeeds_flagged_with_one_event(pay: PayStack) -> None:
    created = await pay.client.create_order(pay_method="BANK_WEB", amount=2500)
    assert created.status_code == 201, created.text
    order = created.json()
    assert (order["status"], order["channel"], order["pay_data"]["type"]) == ("PAYING", "bank", "form_html")
    order_no = order["order_no"]

    closed = await pay.client.request("POST", f"/v1/pay/orders/{order_no}/close", {})
    assert closed.status_code == 200 and closed.json()["status"] == "CLOSED", closed.text
    assert await events_of(pay, order_no, "pay.closed") == 1

    # the payer still submits the bank's form: the bank has nothing to close, so it takes the payment
    scan = await pay.scan(order_no=order_no, result="paid")
    assert scan.status_code == 200, scan.text
    assert scan.json()["channel"] == "bank"
    done = await wait_status(pay, order_no, "SUCCEEDED")
    assert done["paid_after_close"] is True and done["amount"] == 2500
    assert done["channel_trade_no"] == scan.json()["channel_trade_no"]
    assert await events_of(pay, order_no, "pay.succeeded") == 1
    assert await events_of(pay, order_no, "pay.closed") == 1
    # closing it again now: it is paid, so the close is refused and nothing is sent
    again = await pay.client.request("POST", f"/v1/pay/orders/{order_no}/close", {})
    assert again.status_code == 409 and again.json()["error"]["code"] == "ORDER_STATE_CONFLICT"
    assert await events_of(pay, order_no, "pay.closed") == 1
