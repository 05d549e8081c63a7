"""Issue 18: daily reconciliation against the simulators' real statements — a clean day is MATCHED on every
channel; one fault of each type is classified exactly, with no false positive; the MISSING_LOCAL payment is repaired
through pay's confirm path; re-runs keep resolutions and book no second adjustment; two runs at once make one batch;
rows near midnight wait in the suspense pool and are matched by the next day's run."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import text

from tests.fixtures.pay_stack import PayStack
from tests.fixtures.stack import admin
from tomato.core.clock import as_utc
from tomato.reconciliation.errors import StatementFailed
from tomato.reconciliation.schemas import BatchView

TZ = ZoneInfo("Asia/Shanghai")
METHOD = {"alipay": "ALIPAY_QR", "wechat": "WECHAT_NATIVE", "bank": "BANK_WEB"}
TYPES = ("MISSING_LOCAL", "MISSING_CHANNEL", "AMOUNT_MISMATCH", "FEE_MISMATCH", "STATUS_MISMATCH", "DUPLICATE")


async def wait_for(predicate: Callable[[], Awaitable[bool]], timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not await predicate():
            await asyncio.sleep(0.02)


async def order_status(pay: PayStack, order_no: str) -> str:
    return str((await pay.client.request("GET", f"/v1/pay/orders/{order_no}")).json()["status"])


async def paid_order(pay: PayStack, channel: str, amount: int) -> str:
    r = await pay.client.create_order(amount=amount, pay_method=METHOD[channel])
    assert r.status_code == 201, r.text
    order_no = str(r.json()["order_no"])
    assert (await pay.scan(order_no=order_no, result="paid")).status_code == 200

    async def succeeded() -> bool:
        return await order_status(pay, order_no) == "SUCCEEDED"

    await wait_for(succeeded)
    return order_no


async def refunded(pay: PayStack, order_no: str, amount: int, out_refund_no: str) -> str:
    body = {"order_no": order_no, "out_refund_no": out_refund_no, "amount": amount}
    r = await pay.client.request("POST", "/v1/refunds", body)
    assert r.status_code in (200, 201), r.text
    refund_no = str(r.json()["refund_no"])

    async def succeeded() -> bool:
        got = await pay.client.request("GET", f"/v1/refunds/{refund_no}")
        return bool(got.json()["status"] == "SUCCEEDED")

    await wait_for(succeeded)
    return refund_no


def today(pay: PayStack) -> date:
    return pay.clock.now().astimezone(TZ).date()


async def scalar(pay: PayStack, sql: str, **params: Any) -> Any:
    async with pay.c.db.engine.connect() as conn:
        return (await conn.execute(text(sql), params)).scalar_one()


async def discrepancies(pay: PayStack, batch_id: str) -> list[dict[str, Any]]:
    r = await pay.http.get(
        f"/admin/reconciliation/discrepancies?batch_id={batch_id}&limit=100", headers=admin("finance")
    )
    assert r.status_code == 200, r.text
    return list(r.json()["data"])


@pytest.fixture
def recon(pay: PayStack) -> PayStack:
    # the orders of these tests are made "now": none waits in the suspense pool, whatever the time of day
    pay.c.reconciliation.deps.suspense_minutes = 0
    return pay


async def test_a_clean_day_is_matched_on_every_channel(recon: PayStack) -> None:
    pay = recon
    day = today(pay)
    for channel in ("alipay", "wechat", "bank"):
        first = await paid_order(pay, channel, 100_000)
        await paid_order(pay, channel, 2_345)
        await refunded(pay, first, 30_000, f"{channel}-r1")
        await refunded(pay, first, 70_000, f"{channel}-r2")
        body = {"channel_account_id": pay.accounts[channel], "date": day.isoformat()}
        r = await pay.http.post("/admin/reconciliation/run", json=body, headers=admin("finance"))
        assert r.status_code == 200, (channel, r.text)
        batch = r.json()
        assert batch["status"] == "MATCHED", (channel, batch)
        assert batch["discrepancies"] == 0
        counts = batch["counts"]
        assert (counts["channel_rows"], counts["local_rows"], counts["matched"]) == (4, 4, 4), (channel, counts)
        assert all(counts[t] == 0 for t in TYPES)
        # the matched day settles the channel receivable: payments − refunds − fees + fees returned
        facts = json.loads(await scalar(pay, "SELECT facts FROM outbox_events WHERE event_type = "
                                        "'reconciliation.settled' AND aggregate_id = :b", b=batch["id"]))  # fmt: skip
        fee = (100_000 * 3_800 + 500_000) // 1_000_000 + (2_345 * 3_800 + 500_000) // 1_000_000
        assert facts["payments"] == 102_345 and facts["refunds"] == 100_000 and facts["fees"] == fee
        assert facts["fees_returned"] == 380  # both refunds together return the first payment's whole fee
        assert facts["net"] == 102_345 - 100_000 - fee + 380


async def test_one_fault_of_each_type_is_classified_exactly(recon: PayStack) -> None:
    pay = recon
    day = today(pay)
    account = pay.accounts["wechat"]
    orders = [await paid_order(pay, "wechat", 1_000 + i) for i in range(8)]
    r = await pay.client.create_order(amount=4_321, pay_method="WECHAT_NATIVE")
    unpaid = str(r.json()["order_no"])
    faults = [
        {"type": "MISSING_CHANNEL", "order_no": orders[0]},
        {"type": "AMOUNT_MISMATCH", "order_no": orders[1]},
        {"type": "FEE_MISMATCH", "order_no": orders[2]},
        {"type": "STATUS_MISMATCH", "order_no": orders[3]},
        {"type": "DUPLICATE", "order_no": orders[4]},
        {"type": "MISSING_LOCAL", "order_no": unpaid},
    ]
    body = {"channel": "wechat", "date": day.isoformat(), "faults": faults}
    assert (await pay.sandbox_http.post("/sandbox/statement-faults", json=body)).status_code == 200

    batch = await pay.c.reconciliation.run(account, day)
    assert batch.status == "DISCREPANCIES"
    found = await discrepancies(pay, batch.id)
    assert sorted((d["type"], d["order_no"]) for d in found) == sorted(
        [("MISSING_CHANNEL", orders[0]), ("AMOUNT_MISMATCH", orders[1]), ("FEE_MISMATCH", orders[2]),
         ("STATUS_MISMATCH", orders[3]), ("DUPLICATE", orders[4]), ("MISSING_LOCAL", unpaid)]
    )  # fmt: skip
    assert batch.discrepancies == 6 and all(batch.counts[t] == 1 for t in TYPES)
    by_type = {d["type"]: d for d in found}
    assert by_type["AMOUNT_MISMATCH"]["channel_amount"] == by_type["AMOUNT_MISMATCH"]["local_amount"] + 1
    fee = by_type["FEE_MISMATCH"]
    assert (
        fee["local_fee"] == (1_002 * 3_800 + 500_000) // 1_000_000 and abs(fee["channel_fee"] - fee["local_fee"]) == 1
    )
    # the MISSING_LOCAL payment: the channel's query confirmed it, pay applied it as paid
    assert by_type["MISSING_LOCAL"]["status"] == "AUTO_RESOLVED"
    assert all(d["status"] == "OPEN" for d in found if d["type"] != "MISSING_LOCAL")
    assert await order_status(pay, unpaid) == "SUCCEEDED"
    n = await scalar(pay, "SELECT count(*) FROM outbox_events WHERE event_type = 'pay.succeeded' AND aggregate_id = :o",
                     o=unpaid)  # fmt: skip
    assert n == 1
    # listed: 7 of ours (one left out), the repeat, the unpaid one; clean: the duplicated one and the 3 untouched
    assert (batch.counts["channel_rows"], batch.counts["matched"]) == (9, 4)
    assert batch.counts["local_rows"] == 8


async def test_rerun_keeps_resolutions_and_books_no_second_adjustment(recon: PayStack) -> None:
    pay = recon
    day = today(pay)
    account = pay.accounts["alipay"]
    orders = [await paid_order(pay, "alipay", 5_000 + i) for i in range(3)]
    faults = [{"type": "AMOUNT_MISMATCH", "order_no": orders[0]}, {"type": "MISSING_CHANNEL", "order_no": orders[1]}]
    body = {"channel": "alipay", "date": day.isoformat(), "faults": faults}
    assert (await pay.sandbox_http.post("/sandbox/statement-faults", json=body)).status_code == 200
    first = await pay.c.reconciliation.run(account, day)
    found = {d["type"]: d for d in await discrepancies(pay, first.id)}
    assert set(found) == {"AMOUNT_MISMATCH", "MISSING_CHANNEL"}
    target = found["AMOUNT_MISMATCH"]
    url = f"/admin/reconciliation/discrepancies/{target['id']}/resolve"
    r = await pay.http.post(url, json={"action": "ACCEPT_CHANNEL", "note": "bank says +1"}, headers=admin("finance"))
    assert r.status_code == 200, r.text
    resolved = r.json()
    assert resolved["status"] == "RESOLVED"
    assert resolved["resolution"]["action"] == "ACCEPT_CHANNEL" and resolved["resolution"]["note"] == "bank says +1"
    assert resolved["resolution"]["by"].startswith("finance")
    again = await pay.http.post(url, json={"action": "WRITE_OFF", "note": "twice"}, headers=admin("finance"))
    assert again.status_code == 409 and again.json()["error"]["code"] == "ORDER_STATE_CONFLICT"

    second = await pay.c.reconciliation.run(account, day)
    assert second.id == first.id
    after = {d["type"]: d for d in await discrepancies(pay, first.id)}
    assert after["AMOUNT_MISMATCH"] == resolved
    assert after["MISSING_CHANNEL"]["status"] == "OPEN"
    assert len(after) == 2 and second.discrepancies == 2
    adjustments = await scalar(pay, "SELECT count(*) FROM outbox_events WHERE event_type = 'reconciliation.adjustment'")
    assert adjustments == 1
    facts = json.loads(await scalar(pay, "SELECT facts FROM outbox_events WHERE event_type = "
                                    "'reconciliation.adjustment'"))  # fmt: skip
    assert facts["receivable_delta"] == 1 and facts["channel_account_id"] == account
    audit = await pay.c.reconciliation.audit("discrepancy", target["id"])
    assert [a["action"] for a in audit] == ["ACCEPT_CHANNEL"]
    assert audit[0]["before"]["status"] == "OPEN" and audit[0]["after"]["status"] == "RESOLVED"
    assert audit[0]["actor"].startswith("finance") and audit[0]["note"] == "bank says +1"


async def test_two_runs_of_one_date_at_once_make_one_batch(recon: PayStack) -> None:
    pay = recon
    day = today(pay)
    await paid_order(pay, "bank", 777)
    a, b = await asyncio.gather(
        pay.c.reconciliation.run(pay.accounts["bank"], day), pay.c.reconciliation.run(pay.accounts["bank"], day)
    )
    assert a.id == b.id and a.status == b.status == "MATCHED"
    assert await scalar(pay, "SELECT count(*) FROM recon_batches") == 1


async def test_an_unusable_statement_is_an_error_batch_and_a_502(recon: PayStack) -> None:
    pay = recon

    class Broken:
        async def open(self, channel: str, account_id: str, day: date) -> Iterable[Any]:
            raise RuntimeError("bill not ready")

    pay.c.reconciliation.source = Broken()
    body = {"channel_account_id": pay.accounts["wechat"], "date": today(pay).isoformat()}
    r = await pay.http.post("/admin/reconciliation/run", json=body, headers=admin("finance"))
    assert r.status_code == 502 and r.json()["error"]["code"] == "CHANNEL_ERROR"
    listed = (await pay.http.get("/admin/reconciliation/batches", headers=admin("finance"))).json()["data"]
    assert [(b["status"], "bill not ready" in (b["error"] or "")) for b in listed] == [("ERROR", True)]


# --- rows near midnight ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Line:
    line_no: int
    kind: str
    channel_trade_no: str
    order_no: str | None
    refund_no: str | None
    amount: int
    fee: int
    status: str
    occurred_at: datetime


class Statements:
    """A statement source serving lines the test writes per date."""

    def __init__(self) -> None:
        self.days: dict[date, list[Line]] = {}

    async def open(self, channel: str, account_id: str, day: date) -> Iterable[Any]:
        return list(self.days.get(day, []))


def at(day: date, hh: int, mm: int, ss: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hh, mm, ss, tzinfo=TZ).astimezone(UTC)


async def set_paid_at(pay: PayStack, order_no: str, moment: datetime) -> None:
    async with pay.c.db.engine.begin() as conn:
        await conn.execute(text("UPDATE pay_orders SET paid_at = :t WHERE order_no = :o"), {"t": moment, "o": order_no})


def payment_line(n: int, order_no: str, amount: int, moment: datetime) -> Line:
    fee = (amount * 3_800 + 500_000) // 1_000_000
    return Line(n, "PAYMENT", f"T{order_no}", order_no, None, amount, fee, "SUCCESS", moment)


async def test_a_cross_midnight_pair_waits_and_matches_and_a_lone_one_is_declared_later(pay: PayStack) -> None:
    account = pay.accounts["alipay"]
    d0 = date(2026, 11, 2)
    d1, d2 = d0 + timedelta(days=1), d0 + timedelta(days=2)
    late = await paid_order(pay, "alipay", 9_000)  # ours: 23:59:40 on d0; the channel's: 00:00:20 on d1
    lone = await paid_order(pay, "alipay", 8_000)  # ours at 23:58 on d0; the channel never lists it
    noon = await paid_order(pay, "alipay", 7_000)  # an ordinary one on d0
    await set_paid_at(pay, late, at(d0, 23, 59, 40))
    await set_paid_at(pay, lone, at(d0, 23, 58))
    await set_paid_at(pay, noon, at(d0, 12, 0))
    src = Statements()
    src.days[d0] = [payment_line(1, noon, 7_000, at(d0, 12, 0))]
    src.days[d1] = [payment_line(1, late, 9_000, at(d1, 0, 0, 20))]
    pay.c.reconciliation.source = src
    pay.c.reconciliation.deps.suspense_minutes = 10

    b0 = await pay.c.reconciliation.run(account, d0)
    assert (b0.status, b0.discrepancies, b0.counts["SUSPENSE"], b0.counts["matched"]) == ("MATCHED", 0, 2, 1)
    b1 = await pay.c.reconciliation.run(account, d1)
    assert (b1.status, b1.discrepancies, b1.counts["matched"]) == ("MATCHED", 0, 1)
    b0_again = await pay.c.reconciliation.run(account, d0)  # a re-run of d0 keeps the pair matched
    assert (b0_again.status, b0_again.discrepancies) == ("MATCHED", 0)
    b2 = await pay.c.reconciliation.run(account, d2)
    assert b2.status == "DISCREPANCIES"
    found = await discrepancies(pay, b2.id)
    assert [(d["type"], d["order_no"], d["local_amount"]) for d in found] == [("MISSING_CHANNEL", lone, 8_000)]
    assert (await pay.c.reconciliation.run(account, d2)).discrepancies == 1  # re-run: the same one, once


# --- roles and bad input ------------------------------------------------------------------------------------------


async def test_every_finance_route_refuses_operators_and_anonymous(pay: PayStack) -> None:
    routes = [
        ("POST", "/admin/reconciliation/run", {"channel_account_id": pay.accounts["alipay"], "date": "2026-11-02"}),
        ("GET", "/admin/reconciliation/batches", None),
        ("GET", "/admin/reconciliation/batches/RB1", None),
        ("GET", "/admin/reconciliation/batches/RB1/summary.csv", None),
        ("GET", "/admin/reconciliation/discrepancies", None),
        ("POST", "/admin/reconciliation/discrepancies/RD1/resolve", {"action": "WRITE_OFF", "note": "x"}),
        ("GET", "/admin/anomalies", None),
        ("POST", "/admin/anomalies/AN1/resolve", {"action": "WRITE_OFF", "note": "x"}),
    ]
    for method, path, body in routes:
        r = await pay.http.request(method, path, json=body, headers=admin("operator"))
        assert r.status_code == 403, (path, r.status_code)
        r = await pay.http.request(method, path, json=body)
        assert r.status_code == 401, (path, r.status_code)


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/admin/reconciliation/run", {"channel_account_id": "x", "date": "2026-13-01"}, "date"),
        ("/admin/reconciliation/run", {"channel_account_id": "x", "date": "20261101"}, "date"),
        ("/admin/reconciliation/run", {"channel_account_id": "x", "date": "2999-01-01"}, "date"),
        ("/admin/reconciliation/run", {"channel_account_id": "x", "date": "0001-01-01"}, "date"),
        ("/admin/reconciliation/run", {"date": "2026-11-01"}, "channel_account_id"),
        ("/admin/reconciliation/discrepancies/RD1/resolve", {"action": "ACCEPT_CHANNEL"}, "note"),
        ("/admin/reconciliation/discrepancies/RD1/resolve", {"action": "ACCEPT_CHANNEL", "note": ""}, "note"),
        ("/admin/reconciliation/discrepancies/RD1/resolve", {"action": "ACCEPT_CHANNEL", "note": "x" * 501}, "note"),
        ("/admin/reconciliation/discrepancies/RD1/resolve", {"action": "MAYBE", "note": "n"}, "action"),
        ("/admin/anomalies/AN1/resolve", {"action": "KEEP", "note": "n"}, "action"),
    ],
)
async def test_bad_input_is_a_422_naming_the_field(pay: PayStack, path: str, body: dict[str, Any], field: str) -> None:
    r = await pay.http.post(path, json=body, headers=admin("finance"))
    assert r.status_code == 422, r.text
    assert field in json.dumps(r.json()["error"]), r.text


async def test_unknown_ids_and_filters(pay: PayStack) -> None:
    fin = admin("finance")
    assert (await pay.http.get("/admin/reconciliation/batches/RB1", headers=fin)).status_code == 404
    resolve = {"action": "WRITE_OFF", "note": "n"}
    r = await pay.http.post("/admin/reconciliation/discrepancies/RD1/resolve", json=resolve, headers=fin)
    assert r.status_code == 404
    assert (await pay.http.get("/admin/reconciliation/discrepancies?type=NOPE", headers=fin)).status_code == 422
    assert (await pay.http.get("/admin/reconciliation/batches?limit=0", headers=fin)).status_code == 422
    r = await pay.http.post("/admin/reconciliation/run", json={"channel_account_id": "CA404", "date": "2026-11-01"},
                            headers=fin)  # fmt: skip
    assert r.status_code == 404


async def test_summary_csv_opens_in_excel(recon: PayStack) -> None:
    pay = recon
    await paid_order(pay, "wechat", 1_500)
    batch: BatchView = await pay.c.reconciliation.run(pay.accounts["wechat"], today(pay))
    r = await pay.http.get(f"/admin/reconciliation/batches/{batch.id}/summary.csv", headers=admin("finance"))
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert r.content.startswith(b"\xef\xbb\xbf")
    body = r.content.decode("utf-8-sig")
    assert "MATCHED" in body and "channel,1,15.00" in body and "local,1,15.00" in body


async def test_anomalies_are_listed_resolved_once_and_audited(pay: PayStack) -> None:
    from tomato.channel.protocol import ChannelNotify, ResultStatus

    account = pay.accounts["alipay"]
    order_no = await paid_order(pay, "alipay", 1_234)
    second = ChannelNotify(kind="payment", status=ResultStatus.SUCCESS, order_no=order_no, amount=1_234,
                           channel_trade_no="T-SECOND")  # fmt: skip
    await pay.c.pay.apply_notify(account, second)
    await pay.c.pay.apply_notify(account, second)  # the channel repeats itself: still one item
    fin = admin("finance")
    listed = (await pay.http.get("/admin/anomalies", headers=fin)).json()["data"]
    assert [(a["kind"], a["order_no"], a["status"], a["amount"]) for a in listed] == [
        ("second_payment", order_no, "OPEN", 1_234)
    ]
    url = f"/admin/anomalies/{listed[0]['id']}/resolve"
    r = await pay.http.post(url, json={"action": "REFUND_PAYER", "note": "paid twice; returned"}, headers=fin)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "RESOLVED" and r.json()["resolution"]["action"] == "REFUND_PAYER"
    assert (await pay.http.post(url, json={"action": "WRITE_OFF", "note": "x"}, headers=fin)).status_code == 409
    facts = json.loads(await scalar(pay, "SELECT facts FROM outbox_events WHERE event_type = "
                                    "'reconciliation.anomaly_resolved'"))  # fmt: skip
    assert (facts["action"], facts["amount"], facts["channel_account_id"]) == ("REFUND_PAYER", 1_234, account)
    audit = await pay.c.reconciliation.audit("anomaly", listed[0]["id"])
    assert [(a["action"], a["note"], a["before"]["status"], a["after"]["status"]) for a in audit] == [
        ("REFUND_PAYER", "paid twice; returned", "OPEN", "RESOLVED")
    ]
    assert as_utc(datetime.fromisoformat(audit[0]["at"].isoformat())) <= as_utc(pay.clock.now())


async def test_the_daily_job_catches_up_missed_dates_once(recon: PayStack) -> None:
    pay = recon
    accounts = await pay.c.reconciliation.active_accounts()
    assert set(pay.accounts.values()) <= set(accounts)
    assert await pay.c.reconciliation.catch_up(days=3) == 3 * len(accounts)
    yesterday = today(pay) - timedelta(days=1)
    for account in accounts:
        listed = await pay.c.reconciliation.list_batches(None, 10, {"channel_account_id": account})
        assert [b.date for b in listed] == [(yesterday - timedelta(days=i)).isoformat() for i in range(3)]
        assert {b.status for b in listed} == {"MATCHED"}
    assert await pay.c.reconciliation.catch_up(days=3) == 0  # nothing missed any more


async def test_a_file_rejected_midway_or_with_malformed_rows_is_an_error_naming_them(pay: PayStack) -> None:
    from tomato.reconciliation.statement import MalformedRow, StatementRejected

    day = today(pay)
    account = pay.accounts["wechat"]
    good = payment_line(1, "P1", 1_000, at(day, 12, 0))

    class Rejected:
        async def open(self, channel: str, account_id: str, d: date) -> Iterable[Any]:
            def lines() -> Iterable[Any]:
                yield good
                raise StatementRejected("wechat summary does not match the rows")

            return lines()

    pay.c.reconciliation.source = Rejected()
    with pytest.raises(StatementFailed, match="summary does not match"):
        await pay.c.reconciliation.run(account, day)
    assert await scalar(pay, "SELECT count(*) FROM recon_lines") == 0  # nothing of the refused file stays

    src = Statements()
    src.days[day] = [good, MalformedRow(2, "手续费 is not a yuan amount"), MalformedRow(5, "3 cells")]  # type: ignore[list-item]
    pay.c.reconciliation.source = src
    with pytest.raises(StatementFailed) as failed:
        await pay.c.reconciliation.run(account, day)
    assert "2 malformed rows" in failed.value.message and "line 2:" in failed.value.message
    assert "line 5: 3 cells" in failed.value.message
    batch = (await pay.c.reconciliation.list_batches(None, 5, {"channel_account_id": account}))[0]
    assert batch.status == "ERROR" and "line 5" in (batch.error or "")
