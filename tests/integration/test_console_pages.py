"""Issue 19, the console over real data: finance reconciles a day, resolves a discrepancy with a note (recorded as
the finance token, audited via console) and exports CSV; the operator finds orders and refunds by each of their
numbers and sees the day's volume drawn per channel."""

from __future__ import annotations

import asyncio
import re
import time
from zoneinfo import ZoneInfo

import pytest

from tests.fixtures.console_client import ConsoleUser
from tests.fixtures.pay_stack import PayStack
from tomato.merchant.admin_schemas import AuditFilter

TZ = ZoneInfo("Asia/Shanghai")


async def _until(pay: PayStack, path: str, status: str) -> dict:  # type: ignore[type-arg]
    deadline = time.monotonic() + 15
    while (got := (await pay.client.request("GET", path)).json())["status"] != status:
        assert time.monotonic() < deadline, f"{path} stayed {got['status']}"
        await asyncio.sleep(0.02)
    return got  # type: ignore[no-any-return]


async def _paid(pay: PayStack, amount: int) -> dict:  # type: ignore[type-arg]
    r = await pay.client.create_order(amount=amount, pay_method="WECHAT_NATIVE")
    assert r.status_code == 201, r.text
    assert (await pay.scan(order_no=r.json()["order_no"], result="paid")).status_code == 200
    return await _until(pay, f"/v1/pay/orders/{r.json()['order_no']}", "SUCCEEDED")


@pytest.fixture
def recon(pay: PayStack) -> PayStack:
    pay.c.reconciliation.deps.suspense_minutes = 0  # orders made "now" never wait in the suspense pool
    return pay


async def test_finance_reconciles_resolves_with_a_note_and_exports(recon: PayStack) -> None:
    pay = recon
    orders = [await _paid(pay, 1_000 + i) for i in range(3)]
    day = pay.clock.now().astimezone(TZ).date().isoformat()
    faults = [{"type": "AMOUNT_MISMATCH", "order_no": orders[0]["order_no"]}]
    body = {"channel": "wechat", "date": day, "faults": faults}
    r = await pay.sandbox_http.post("/sandbox/statement-faults", json=body)
    assert r.status_code == 200

    u = ConsoleUser(pay.http)
    await u.sign_in("finance")
    listing = await u.get(f"/console/reconciliation?date={day}")
    assert listing.status_code == 200 and "data-batch=" not in listing.text  # no batch yet
    ran = await u.post("/console/reconciliation/run", {"channel_account_id": pay.accounts["wechat"], "date": day})
    assert ran.status_code == 303, ran.text
    batch_id = ran.headers["location"].rsplit("/", 1)[1]
    page = await u.get(ran.headers["location"])
    assert page.status_code == 200 and batch_id in page.text
    assert re.search(r"<dd>3</dd>", page.text)  # three statement rows, shown in the summary
    found = await u.get(f"/console/discrepancies?batch_id={batch_id}&type=AMOUNT_MISMATCH&status=OPEN")
    (discrepancy_id,) = set(re.findall(r'data-discrepancy="(RD[0-9]+)"', found.text))

    await u.get(f"/console/discrepancies/{discrepancy_id}")
    missing_note = await u.post(f"/console/discrepancies/{discrepancy_id}/resolve", {"action": "ACCEPT_CHANNEL"})
    assert missing_note.status_code == 422 and "note" in missing_note.text
    done = await u.post(f"/console/discrepancies/{discrepancy_id}/resolve",
                        {"action": "ACCEPT_CHANNEL", "note": "channel says +1 fen"})  # fmt: skip
    assert done.status_code == 303
    view = await pay.c.reconciliation.get_discrepancy(discrepancy_id)
    assert view.status == "RESOLVED" and view.resolution is not None
    assert (view.resolution.note, view.resolution.by) == ("channel says +1 fen", "finance:bootstrap-finance")
    again = await u.post(f"/console/discrepancies/{discrepancy_id}/resolve", {"action": "WRITE_OFF", "note": "twice"})
    assert again.status_code == 409 and "ORDER_STATE_CONFLICT" in again.text
    (entry,) = await pay.c.merchants.list_admin_audit(AuditFilter(action="reconciliation.resolve"), None, 10)
    assert (entry.via, entry.target, entry.actor) == ("console", discrepancy_id, "finance:bootstrap-finance")
    assert entry.after is not None and entry.after["status"] == "RESOLVED"

    csv = await u.get(f"/console/discrepancies.csv?batch_id={batch_id}")
    rows = csv.content.decode("utf-8-sig").splitlines()
    assert rows[0].startswith("id,batch_id,type,status") and len(rows) == 2
    assert "channel says +1 fen" in rows[1] and "ACCEPT_CHANNEL" in rows[1]
    trial = await u.get("/console/ledger/trial-balance.csv")
    assert trial.status_code == 200 and trial.content.decode("utf-8-sig").startswith("account_type,accounts")
    assert trial.content.decode("utf-8-sig").splitlines()[-1].startswith("TOTAL,")
    settlements = await u.get("/console/settlements.csv")
    assert settlements.content.decode("utf-8-sig").startswith("id,mch_no,date,amount_fen")
    for path in ("/console/ledger", "/console/settlements", "/console/anomalies", "/console"):
        assert (await u.get(path)).status_code == 200, path
    home = await u.get("/console")
    assert 'id="chart-discrepancies"' in home.text and 'class="bar"' in home.text


async def test_operator_finds_orders_and_refunds_by_any_number_and_sees_volume(pay: PayStack) -> None:
    order = await _paid(pay, 2_500)
    body = {"order_no": order["order_no"], "out_refund_no": "RF-console-1", "amount": 500}
    r = await pay.client.request("POST", "/v1/refunds", body)
    assert r.status_code == 201, r.text
    refund = await _until(pay, f"/v1/refunds/{r.json()['refund_no']}", "SUCCEEDED")

    u = ConsoleUser(pay.http)
    await u.sign_in("operator")
    numbers = [order["order_no"], order["out_trade_no"], order["channel_trade_no"], refund["refund_no"], "RF-console-1"]
    for number in numbers:
        page = await u.get(f"/console/orders?q={number}")
        assert page.status_code == 200
        assert page.text.count(f"<td>{order['order_no']}</td>") >= 1, number
        assert f"<td>{refund['refund_no']}</td>" in page.text, number
    nothing = await u.get("/console/orders?q=no-such-number")
    assert order["order_no"] not in nothing.text
    bad = await u.get("/console/orders?q=%3Cscript%3E")
    assert bad.status_code == 422

    home = await u.get("/console")
    assert 'id="chart-volume"' in home.text and 'id="chart-backlog"' in home.text
    volume = home.text.split('id="chart-volume"')[1].split("</section>")[0]
    assert 'class="bar"' in volume and "wechat" in volume and "¥25" in volume  # 2,500 fen drawn for wechat
    channels = await u.get("/console/channels")
    assert channels.status_code == 200 and f'data-account="{pay.accounts["wechat"]}"' in channels.text


async def test_operator_forms_for_plans_routing_channels_and_deliveries(pay: PayStack) -> None:
    c = pay.c
    u = ConsoleUser(pay.http)
    await u.sign_in("operator")
    for path in (
        "/console/fee-plans",
        "/console/routing",
        "/console/channels",
        "/console/deliveries",
        "/console/tokens",
    ):
        assert (await u.get(path)).status_code == 200, path

    form = {"name": "Retail 0.6%", "rate_ALIPAY_QR": "6000", "rate_WECHAT_NATIVE": ""}
    form |= {"min_fee": "1", "refund_fee": "none"}
    made = await u.post("/console/fee-plans", form)
    assert made.status_code == 303
    (plan,) = [p for p in await c.merchants.list_fee_plans(None, 100) if p.name == "Retail 0.6%"]
    assert (plan.rates, plan.min_fee, plan.refund_fee) == ({"ALIPAY_QR": 6000}, 1, "none")
    (merchant, *_) = await c.merchants.list_merchants(None, 10)
    assigned = await u.post(f"/console/merchants/{merchant.mch_no}/fee-plan", {"fee_plan_id": plan.id})
    assert assigned.status_code == 303 and (await c.merchants.get_merchant(merchant.mch_no)).fee_plan_id == plan.id
    unknown = await u.post(f"/console/merchants/{merchant.mch_no}/fee-plan", {"fee_plan_id": "FP999"})
    assert unknown.status_code == 404 and "FEE_PLAN_NOT_FOUND" in unknown.text

    account = pay.accounts["alipay"]
    rule = await u.post("/console/routing", {"rank": "50", "pay_methods": ["ALIPAY_QR", "ALIPAY_WAP"],
                                             "min_amount": "100", "candidates": f"{account} 2 30\n\n"})  # fmt: skip
    assert rule.status_code == 303, rule.text
    (created,) = [r for r in await c.channels.list_rules(None, 100) if r.rank == 50]
    assert created.pay_methods == ["ALIPAY_QR", "ALIPAY_WAP"] and created.min_amount == 100
    assert [(x.channel_account_id, x.priority, x.weight) for x in created.candidates] == [(account, 2, 30)]
    assert (await u.post(f"/console/routing/{created.id}/delete")).status_code == 303
    assert all(r.id != created.id for r in await c.channels.list_rules(None, 100))
    gone = await u.post(f"/console/routing/{created.id}/delete")
    assert gone.status_code == 404

    assert (await u.post(f"/console/channels/{account}/disable")).status_code == 303
    assert (await c.channels.get_account(account)).status == "DISABLED"
    page = await u.get("/console/channels")
    assert f'data-account="{account}"' in page.text and "status-disabled" in page.text
    assert (await u.post(f"/console/channels/{account}/enable")).status_code == 303
    assert (await c.channels.get_account(account)).status == "ACTIVE"
    actions = {e.action for e in await c.merchants.list_admin_audit(AuditFilter(), None, 50) if e.via == "console"}
    assert {"fee_plan.create", "fee_plan.assign", "routing_rule.create", "routing_rule.delete",
            "channel_account.disable", "channel_account.enable"} <= actions  # fmt: skip


async def test_a_secret_not_viewed_within_five_minutes_is_gone(pay: PayStack) -> None:
    from datetime import timedelta

    u = ConsoleUser(pay.http)
    await u.sign_in("operator")
    await u.get("/console/tokens")
    assert (await u.post("/console/tokens", {"role": "finance", "name": "late"})).status_code == 303
    pay.clock.advance(timedelta(minutes=5, seconds=1))
    late = await u.get("/console/reveal")
    assert late.status_code == 410 and 'id="new-token"' not in late.text
