"""Issue 23, the portal's money pages: the dashboard draws today's paid volume per pay method, orders are found by
each of their numbers, a support user refunds part of an order through a confirmation step (the refund is then the
API's), a finance user requests a payout from the settled balance and downloads the API's statement CSV; the roles
are checked on the server, and a second merchant's ids give 404 on every page and action, changing nothing."""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

from sqlalchemy import func, select

from tests.fixtures.booking import consumer, drain
from tests.fixtures.ledger import fund_available
from tests.fixtures.merchant_client import MerchantClient
from tests.fixtures.pay_stack import PayStack
from tests.fixtures.portal_client import PortalUser, make_user
from tomato.account.payouts.models import Payout
from tomato.core.clock import business_date
from tomato.gateway.paging import encode_cursor
from tomato.merchant.admin_schemas import AuditFilter
from tomato.merchant.schemas import AppCreate, MerchantCreate, SettleCycleUpdate
from tomato.pay.models import Refund

BANK = {"name": "张三", "number": "6216261000000000018", "bank": "Bank of Tests"}


async def _until(client: MerchantClient, path: str, status: str) -> dict[str, Any]:
    deadline = time.monotonic() + 15
    while (got := (await client.request("GET", path)).json())["status"] != status:
        assert time.monotonic() < deadline, f"{path} stayed {got['status']}"
        await asyncio.sleep(0.02)
    return got  # type: ignore[no-any-return]


async def _paid(pay: PayStack, client: MerchantClient, amount: int) -> dict[str, Any]:
    r = await client.create_order(amount=amount, pay_method="WECHAT_NATIVE")
    assert r.status_code == 201, r.text
    assert (await pay.scan(order_no=r.json()["order_no"], result="paid")).status_code == 200
    return await _until(client, f"/v1/pay/orders/{r.json()['order_no']}", "SUCCEEDED")


async def _mch_no(pay: PayStack) -> str:
    return (await pay.c.merchants.app_auth(pay.client.app_id)).mch_no


def _value(page: str, element_id: str) -> str:
    found = re.search(rf'id="{element_id}" value="([^"]*)"', page)
    assert found is not None, element_id
    return found.group(1)


async def _signed_in(pay: PayStack, mch_no: str, role: str) -> PortalUser:
    u = PortalUser(pay.http, pay.c)
    assert (await u.sign_in(await make_user(pay.c, mch_no, role))).status_code == 303
    return u


async def test_dashboard_search_and_a_support_refund_with_confirmation(pay: PayStack) -> None:
    mch_no = await _mch_no(pay)
    order = await _paid(pay, pay.client, 2_500)
    support = await _signed_in(pay, mch_no, "support")

    home = await support.get("/portal")
    assert home.status_code == 200 and 'id="balance"' not in home.text  # support sees volume, not money
    volume = home.text.split('id="chart-volume"')[1].split("</section>")[0]
    assert 'class="bar"' in volume and "WECHAT_NATIVE" in volume
    assert '<tr data-method="WECHAT_NATIVE"><td>WECHAT_NATIVE</td><td>1</td><td>1</td><td>100%</td>' in home.text

    for number in (order["order_no"], order["out_trade_no"], order["channel_trade_no"]):
        found = await support.get(f"/portal/orders?q={number}")
        assert found.status_code == 200 and re.findall(r'data-order="([^"]+)"', found.text) == [order["order_no"]]
    assert 'data-order="' not in (await support.get("/portal/orders?q=no-such-number")).text
    filtered = await support.get("/portal/orders?status=SUCCEEDED&pay_method=WECHAT_NATIVE")
    assert f'data-order="{order["order_no"]}"' in filtered.text
    assert 'data-order="' not in (await support.get("/portal/orders?status=CLOSED")).text
    today = business_date(pay.clock.now(), pay.c.settings.business_timezone)
    dated = await support.get(f"/portal/orders?created_from={today}&created_to={today}")
    assert f'data-order="{order["order_no"]}"' in dated.text
    assert 'data-order="' not in (await support.get("/portal/orders?created_to=2020-01-01")).text
    assert (await support.get("/portal/orders?status=BOGUS")).status_code == 422

    form = await support.get(f"/portal/orders/{order['order_no']}/refund")
    assert form.status_code == 200
    out_refund_no = _value(form.text, "refund-out-no")
    fields = {"amount": "7.50", "reason": "one cup cold", "out_refund_no": out_refund_no}
    confirm = await support.post(f"/portal/orders/{order['order_no']}/refund", fields)
    assert confirm.status_code == 200 and 'id="refund-confirm-form"' in confirm.text
    assert "¥7.50" in confirm.text and 'name="confirm" value="yes"' in confirm.text
    async with pay.c.db.uow() as uow:  # the confirmation page wrote nothing
        assert await uow.session.scalar(select(func.count()).select_from(Refund)) == 0
    too_much = await support.post(f"/portal/orders/{order['order_no']}/refund",
                                  {**fields, "amount": "25.01", "confirm": "yes"})  # fmt: skip
    assert too_much.status_code == 409 and "REFUND_AMOUNT_EXCEEDED" in too_much.text  # the API's rule and code
    done = await support.post(f"/portal/orders/{order['order_no']}/refund", {**fields, "confirm": "yes"})
    assert done.status_code == 303, done.text
    refund_no = done.headers["location"].split("?")[0].rsplit("/", 1)[1]
    page = await support.get(done.headers["location"])
    assert page.status_code == 200 and refund_no in page.text and "¥7.50" in page.text

    api = await pay.client.request("GET", f"/v1/refunds/{refund_no}")
    assert api.status_code == 200
    assert (api.json()["amount"], api.json()["out_refund_no"], api.json()["order_no"]) == (
        750,
        out_refund_no,
        order["order_no"],
    )
    for number in (refund_no, out_refund_no, order["order_no"]):
        listed = await support.get(f"/portal/refunds?q={number}")
        assert re.findall(r'data-refund="([^"]+)"', listed.text) == [refund_no], number
    detail = await support.get(f"/portal/orders/{order['order_no']}")
    assert f'data-refund="{refund_no}"' in detail.text
    (entry,) = await pay.c.merchants.list_admin_audit(AuditFilter(action="refund.create", mch_no=mch_no), None, 10)
    assert (entry.via, entry.target) == ("portal", refund_no)
    assert entry.actor.startswith("portal:support:")


async def test_finance_requests_a_payout_and_downloads_the_apis_statement(pay: PayStack) -> None:
    mch_no = await _mch_no(pay)
    order = await _paid(pay, pay.client, 100_000)
    await drain(consumer(pay.c.db, pay.c.ids))  # the ledger books the payment into pending
    await pay.c.merchants.set_settle_cycle(mch_no, SettleCycleUpdate(cycle="D+0"))
    today = business_date(pay.clock.now(), pay.c.settings.business_timezone)
    settled = await pay.c.settlement.run(pay.c.settlement.today())
    assert settled.settled_amount == 99_400  # 100,000 less the 0.6 % fee, now available
    finance = await _signed_in(pay, mch_no, "finance")

    home = await finance.get("/portal")
    assert '<dd id="balance-available">¥994.00</dd>' in home.text
    balance = await finance.get("/portal/balance")
    assert balance.status_code == 200 and '<dd id="balance-available">¥994.00</dd>' in balance.text
    assert order["order_no"] in balance.text
    settlements = await finance.get("/portal/settlements")
    assert len(re.findall(r'data-settlement="SB', settlements.text)) == 1 and "¥994.00" in settlements.text

    form = await finance.get("/portal/payouts/new")
    assert form.status_code == 200
    fields = {"app_id": pay.client.app_id, "amount": "300", "out_payout_no": _value(form.text, "payout-out-no"),
              **BANK}  # fmt: skip
    confirm = await finance.post("/portal/payouts", fields)
    assert confirm.status_code == 200 and "¥300.00" in confirm.text and 'id="payout-confirm-form"' in confirm.text
    async with pay.c.db.uow() as uow:
        assert await uow.session.scalar(select(func.count()).select_from(Payout)) == 0
    too_much = await finance.post("/portal/payouts", {**fields, "amount": "994.01", "confirm": "yes"})
    assert too_much.status_code == 409 and "INSUFFICIENT_BALANCE" in too_much.text
    done = await finance.post("/portal/payouts", {**fields, "confirm": "yes"})
    assert done.status_code == 303, done.text
    payout_no = done.headers["location"].split("?")[0].rsplit("/", 1)[1]
    listed = await finance.get("/portal/payouts")
    assert re.findall(r'data-payout="([^"]+)"', listed.text) == [payout_no]
    detail = await finance.get(f"/portal/payouts/{payout_no}")
    assert detail.status_code == 200 and "¥300.00" in detail.text and BANK["number"] not in detail.text
    api = await pay.client.request("GET", f"/v1/payouts/{payout_no}")
    assert api.status_code == 200 and api.json()["amount"] == 30_000
    (entry,) = await pay.c.merchants.list_admin_audit(AuditFilter(action="payout.create", mch_no=mch_no), None, 10)
    assert (entry.via, entry.target, entry.actor.split(":")[1]) == ("portal", payout_no, "finance")

    picked = await finance.get(f"/portal/statements?date={today}")
    assert picked.status_code == 200 and f'href="/portal/statements/{today}.csv"' in picked.text
    mine = await finance.get(f"/portal/statements/{today}.csv")
    theirs = await pay.client.request("GET", f"/v1/statements/{today}")
    assert mine.status_code == theirs.status_code == 200
    assert mine.content == theirs.content and order["order_no"] in mine.text and payout_no in mine.text
    assert mine.headers["content-type"].startswith("text/csv")


async def test_roles_are_checked_on_the_server(pay: PayStack) -> None:
    mch_no = await _mch_no(pay)
    await fund_available(pay.c.db, pay.c.ids, mch_no, 10_000)
    order = await _paid(pay, pay.client, 1_000)
    support = await _signed_in(pay, mch_no, "support")
    today = business_date(pay.clock.now(), pay.c.settings.business_timezone)
    for path in ("/portal/payouts", "/portal/payouts/new", "/portal/balance", "/portal/settlements",
                 "/portal/statements", f"/portal/statements/{today}.csv"):  # fmt: skip
        assert (await support.get(path)).status_code == 403, path
    body = {"app_id": pay.client.app_id, "amount": "10", "out_payout_no": "WD-support", "confirm": "yes", **BANK}
    assert (await support.post("/portal/payouts", body)).status_code == 403
    await support.post("/portal/logout")

    finance = await _signed_in(pay, mch_no, "finance")
    assert (await finance.get(f"/portal/orders/{order['order_no']}")).status_code == 200  # everyone reads orders
    assert (await finance.get(f"/portal/orders/{order['order_no']}/refund")).status_code == 403
    refund = {"amount": "1", "out_refund_no": "RF-finance", "confirm": "yes"}
    assert (await finance.post(f"/portal/orders/{order['order_no']}/refund", refund)).status_code == 403
    async with pay.c.db.uow() as uow:
        assert await uow.session.scalar(select(func.count()).select_from(Refund)) == 0
        assert await uow.session.scalar(select(func.count()).select_from(Payout)) == 0


async def test_another_merchants_ids_are_not_found_anywhere(pay: PayStack) -> None:
    mine = await _mch_no(pay)
    other = await pay.c.merchants.create_merchant(MerchantCreate(name="Other"))
    made = await pay.c.merchants.create_app(other.mch_no, AppCreate(name="other", pay_methods=["WECHAT_NATIVE"]))
    assert made.secret is not None
    client = MerchantClient(pay.http, made.app.app_id, secret=made.secret)
    order = await _paid(pay, client, 5_000)
    body: dict[str, Any] = {"order_no": order["order_no"], "out_refund_no": "RF-o", "amount": 100}
    r = await client.request("POST", "/v1/refunds", body)
    assert r.status_code == 201, r.text
    refund_no = r.json()["refund_no"]
    await fund_available(pay.c.db, pay.c.ids, other.mch_no, 10_000)
    r = await client.request("POST", "/v1/payouts", {"out_payout_no": "WD-o", "amount": 1_000, "bank_account": BANK})
    assert r.status_code == 201, r.text
    payout_no = r.json()["payout_no"]
    await fund_available(pay.c.db, pay.c.ids, mine, 10_000)

    async def snapshot() -> tuple[Any, ...]:
        async with pay.c.db.uow() as uow:
            s = uow.session
            refunds = (await s.execute(select(Refund.refund_no, Refund.status).order_by(Refund.refund_no))).all()
            payouts = (await s.execute(select(Payout.payout_no, Payout.amount).order_by(Payout.payout_no))).all()
        audit = await pay.c.merchants.list_admin_audit(AuditFilter(), None, 100)
        return tuple(refunds), tuple(payouts), len(audit)

    owner = await _signed_in(pay, mine, "owner")
    before = await snapshot()
    for path in (f"/portal/orders/{order['order_no']}", f"/portal/orders/{order['order_no']}/refund",
                 f"/portal/refunds/{refund_no}", f"/portal/payouts/{payout_no}"):  # fmt: skip
        assert (await owner.get(path)).status_code == 404, path
    refund = {"amount": "1", "out_refund_no": "RF-cross", "reason": "x"}
    payout = {"app_id": made.app.app_id, "amount": "1", "out_payout_no": "WD-cross", **BANK}
    for path, data in ((f"/portal/orders/{order['order_no']}/refund", refund), ("/portal/payouts", payout)):
        for confirm in ({}, {"confirm": "yes"}):
            r = await owner.post(path, {**data, **confirm})
            assert r.status_code == 404, (path, confirm, r.status_code)
    # the lists never show them, whatever is searched; a cursor naming them is unknown, like a made-up one
    for path, marker in ((f"/portal/orders?q={order['order_no']}", "data-order="),
                         (f"/portal/orders?q={order['out_trade_no']}", "data-order="),
                         (f"/portal/refunds?q={refund_no}", "data-refund="),
                         (f"/portal/refunds?q={order['order_no']}", "data-refund="),
                         ("/portal/payouts", "data-payout="), ("/portal/settlements", "data-settlement="),
                         ("/portal/balance", order["order_no"])):  # fmt: skip
        page = await owner.get(path)
        assert page.status_code == 200 and marker not in page.text, path
    for path, key in (("/portal/orders", order["order_no"]), ("/portal/refunds", refund_no),
                      ("/portal/payouts", payout_no)):  # fmt: skip
        assert (await owner.get(f"{path}?cursor={encode_cursor(key)}")).status_code == 422, path
    today = business_date(pay.clock.now(), pay.c.settings.business_timezone)
    csv = await owner.get(f"/portal/statements/{today}.csv")
    assert csv.status_code == 200 and order["order_no"] not in csv.text and payout_no not in csv.text
    assert 'data-method="WECHAT_NATIVE"' not in (await owner.get("/portal")).text  # their volume is not ours
    assert await snapshot() == before
