"""Issue 21, the merchant read APIs: order, refund and event lists with filters, one event, and the daily statement
(SQLite and PostgreSQL).

The paging test lists 1,000 orders while another task keeps inserting orders between every two pages — newer than
all, tied on creation time with listed ones, and in the gaps between them — and checks that each order that existed
before the first page shows exactly once, in newest-first order, and that no row shows twice.
"""

from __future__ import annotations

import asyncio
import csv
import io
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import httpx
import pytest

from tests.integration.test_ledger_read import book_history
from tomato.core.clock import rfc3339
from tomato.core.outbox import OutboxEvent, add_event
from tomato.core.positions import assign_positions
from tomato.gateway.paging import encode_cursor
from tomato.pay.models import PayOrder, Refund
from tomato.pay.states import OrderStatus

STATUSES = [s.value for s in OrderStatus]
METHODS = ["ALIPAY_QR", "WECHAT_NATIVE", "BANK_WEB"]
REFUND_STATUSES = ["SUCCEEDED", "PENDING", "FAILED"]
N = 1_000
CST = ZoneInfo("Asia/Shanghai")


def field_of(r: httpx.Response) -> tuple[int, str, str]:
    err = r.json()["error"]
    return r.status_code, err["code"], (err.get("details") or [{}])[0].get("field", "")


def order_row(app_id: str, mch_no: str, order_no: str, at: datetime, status: str, method: str) -> PayOrder:
    return PayOrder(
        order_no=order_no, app_id=app_id, mch_no=mch_no, out_trade_no=f"o{order_no}", request_hash="h",
        status=status, paid_after_close=False, amount=100, currency="CNY", subject="s", pay_method=method,
        metadata_json="{}", refunded_amount=0, refund_status="NONE", expire_at=at + timedelta(minutes=30),
        query_count=0, version=1, created_at=at, updated_at=at,
    )  # fmt: skip


async def app_and_merchant(pay: Any) -> tuple[str, str]:
    return pay.client.app_id, (await pay.c.merchants.get_app(pay.client.app_id)).mch_no


async def list_all(pay: Any, path: str, params: dict[str, Any], between: Any = None) -> list[dict[str, Any]]:
    """Follows `next_cursor` to the end; `between()` runs after every page."""
    seen: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        query = urlencode({**params, **({"cursor": cursor} if cursor else {})})
        r = await pay.client.request("GET", f"{path}?{query}")
        assert r.status_code == 200, r.text
        body = r.json()
        assert set(body) == {"data", "next_cursor"}
        seen += body["data"]
        cursor = body["next_cursor"]
        if cursor is None:
            return seen
        if between is not None:
            await between()


@asynccontextmanager
async def order_creator(
    pay: Any, app_id: str, mch_no: str, keys: list[tuple[datetime, str]], tag: str
) -> AsyncIterator[Any]:
    """Another task that inserts orders whenever asked, and answers once they are committed: one newer than all,
    one tied on creation time with an existing order (its number sorts next to it), one in a gap between two, and
    every third time one through `POST /v1/pay/orders`. Yields the `between` callback of `list_all`."""
    asks: asyncio.Queue[asyncio.Future[None]] = asyncio.Queue()
    tied = random.Random(21).sample(keys, 100)
    newest = max(at for at, _ in keys)

    async def run() -> None:
        step = 0
        while True:
            done = await asks.get()
            step += 1
            tied_at, tied_no = tied[step]
            rows = [
                (newest + timedelta(seconds=step), f"PN{tag}{step:06d}"),
                (tied_at, f"{tied_no}{tag}"),  # sorts right next to the existing one
                (tied_at - timedelta(seconds=3), f"PG{tag}{step:06d}"),
            ]
            async with pay.c.db.uow() as uow:
                for i, (at, no) in enumerate(rows):
                    uow.session.add(order_row(app_id, mch_no, no, at, "SUCCEEDED", METHODS[(step + i) % 3]))
                await uow.commit()
            if step % 3 == 0:
                r = await pay.client.create_order()
                assert r.status_code == 201, r.text
            done.set_result(None)

    async def between() -> None:
        done = asyncio.get_running_loop().create_future()
        await asks.put(done)
        await done

    task = asyncio.create_task(run())
    try:
        yield between
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def seed_orders(pay: Any) -> tuple[str, str, datetime, list[tuple[datetime, str, str, str]]]:
    """1,000 orders, three per creation instant 10 s apart, cycling through statuses and pay methods."""
    app_id, mch_no = await app_and_merchant(pay)
    base = pay.clock.now() - timedelta(days=1)
    rows = [(base - timedelta(seconds=(i // 3) * 10), f"PS{i:06d}", STATUSES[i % 5], METHODS[i % 3]) for i in range(N)]
    async with pay.c.db.uow() as uow:
        uow.session.add_all([order_row(app_id, mch_no, no, at, st, m) for at, no, st, m in rows])
        await uow.commit()
    return app_id, mch_no, base, rows


def newest_first(rows: list[tuple[datetime, str, str, str]]) -> list[str]:
    return [no for _, no, _, _ in sorted(rows, key=lambda r: (r[0], r[1]), reverse=True)]


async def test_paging_1000_orders_shows_each_existing_one_once_while_orders_keep_arriving(pay) -> None:  # type: ignore[no-untyped-def]
    app_id, mch_no, base, rows = await seed_orders(pay)
    keys = [(at, no) for at, no, _, _ in rows]
    async with order_creator(pay, app_id, mch_no, keys, "5") as between:
        seen = await list_all(pay, "/v1/pay/orders", {"limit": 100}, between)
    numbers = [o["order_no"] for o in seen]
    assert len(numbers) == len(set(numbers))  # no row twice, old or new
    existing = {no for _, no, _, _ in rows}
    assert [n for n in numbers if n in existing] == newest_first(rows)  # each existing one once, newest first
    assert len(numbers) > N  # the new ones above the first page's top were not expected, but some came after it
    assert {o["app_id"] for o in seen} == {app_id}

    # filtered: both bounds fall on a matching order's exact creation time (inclusive from, exclusive to); the
    # matching orders are i = 12 + 15k, created at base - 40 s - 50k s; the bounds are sent with offsets +08:00
    start, end = base - timedelta(seconds=40 + 50 * 40), base - timedelta(seconds=40 + 50 * 6)
    params = {
        "status": "SUCCEEDED",
        "pay_method": "ALIPAY_QR",
        "created_from": start.astimezone(CST).isoformat(),
        "created_to": end.astimezone(CST).isoformat(),
        "limit": 7,
    }
    async with order_creator(pay, app_id, mch_no, keys, "7") as between:
        filtered = await list_all(pay, "/v1/pay/orders", params, between)
    expected = [r for r in rows if r[2] == "SUCCEEDED" and r[3] == "ALIPAY_QR" and start <= r[0] < end]
    assert len(expected) == 34 and expected[-1][0] == start  # the window does test both bounds
    assert [r for r in rows if r[0] == end and r[2] == "SUCCEEDED" and r[3] == "ALIPAY_QR"]
    got = [o["order_no"] for o in filtered]
    assert len(got) == len(set(got))
    assert [n for n in got if n in existing] == newest_first(expected)
    for o in filtered:
        assert o["status"] == "SUCCEEDED" and o["pay_method"] == "ALIPAY_QR"
        assert rfc3339(start) <= o["created_at"] < rfc3339(end)


async def test_the_single_lookup_by_out_trade_no_stays(pay) -> None:  # type: ignore[no-untyped-def]
    created = (await pay.client.create_order()).json()
    r = await pay.client.request("GET", f"/v1/pay/orders?out_trade_no={created['out_trade_no']}")
    assert r.status_code == 200 and r.json() == created
    r = await pay.client.request("GET", "/v1/pay/orders?out_trade_no=nope")
    assert r.status_code == 404 and r.json()["error"]["code"] == "ORDER_NOT_FOUND"
    r = await pay.client.request("GET", "/v1/pay/orders")
    assert r.status_code == 200 and r.json() == {"data": [created], "next_cursor": None}


async def test_refunds_list_by_order_status_and_window(pay) -> None:  # type: ignore[no-untyped-def]
    app_id, mch_no = await app_and_merchant(pay)
    base = pay.clock.now() - timedelta(hours=2)
    async with pay.c.db.uow() as uow:
        for order_no in ("PA", "PB"):
            uow.session.add(order_row(app_id, mch_no, order_no, base, "SUCCEEDED", "ALIPAY_QR"))
        await uow.flush()
        for i in range(12):
            at = base + timedelta(minutes=i // 2)
            uow.session.add(Refund(
                refund_no=f"RS{i:03d}", order_no=("PA", "PB")[i % 2], app_id=app_id, mch_no=mch_no,
                out_refund_no=f"r{i}", request_hash="h", amount=10 + i, status=REFUND_STATUSES[i % 3],
                channel="alipay", channel_account_id="CA1", query_count=0, created_at=at, updated_at=at,
            ))  # fmt: skip
        await uow.commit()
    everything = await list_all(pay, "/v1/refunds", {"limit": 5})
    assert [r["refund_no"] for r in everything] == [f"RS{i:03d}" for i in reversed(range(12))]
    params = {"order_no": "PA", "status": "SUCCEEDED", "created_from": rfc3339(base + timedelta(minutes=1)),
              "created_to": rfc3339(base + timedelta(minutes=6)), "limit": 1}  # fmt: skip
    got = await list_all(pay, "/v1/refunds", params)
    # PA has the even ones; SUCCEEDED every third: RS000, RS006; the window [1 min, 6 min) keeps RS006 only
    assert [r["refund_no"] for r in got] == ["RS006"]
    pending_pb = await list_all(pay, "/v1/refunds", {"order_no": "PB", "status": "PENDING", "limit": 1})
    assert [r["refund_no"] for r in pending_pb] == ["RS007", "RS001"]
    one = await pay.client.request("GET", "/v1/refunds?out_refund_no=r7")
    assert one.status_code == 200 and one.json() == pending_pb[0]


async def events(pay: Any, app_id: str) -> dict[str, OutboxEvent]:
    """Three pay.succeeded, two refund.succeeded, an internal pay.anomaly, and one event of another app; created
    an hour apart, oldest first."""
    made: dict[str, OutboxEvent] = {}
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=10)
    spec = [("p1", "pay.succeeded", app_id), ("r1", "refund.succeeded", app_id), ("p2", "pay.succeeded", app_id),
            ("x", "pay.anomaly", app_id), ("other", "pay.succeeded", "A-other"), ("r2", "refund.succeeded", app_id),
            ("p3", "pay.succeeded", app_id)]  # fmt: skip
    for i, (name, event_type, app) in enumerate(spec):
        async with pay.c.db.uow() as uow:
            row = add_event(uow.session, pay.c.ids, event_type=event_type, aggregate_type="test",
                            aggregate_id=name, data={"name": name}, app_id=app)  # fmt: skip
            row.created_at = start + timedelta(hours=i)
            await uow.commit()
        made[name] = row
    while await assign_positions(pay.c.db):
        pass
    return made


async def test_events_filter_by_type_and_window_and_one_event_is_its_webhook_body(pay) -> None:  # type: ignore[no-untyped-def]
    app_id, _ = await app_and_merchant(pay)
    made = await events(pay, app_id)

    def ids(*names: str) -> list[str]:
        return [made[n].id for n in names]

    listed = await list_all(pay, "/v1/events", {"type": "pay.succeeded", "limit": 2})
    assert [e["id"] for e in listed] == ids("p1", "p2", "p3")
    refunds = await list_all(pay, "/v1/events", {"type": "refund.succeeded"})
    assert [e["id"] for e in refunds] == ids("r1", "r2")
    window = {"created_from": rfc3339(made["r1"].created_at), "created_to": rfc3339(made["r2"].created_at)}
    assert [e["id"] for e in await list_all(pay, "/v1/events", {**window, "limit": 1})] == ids("r1", "p2")
    assert await list_all(pay, "/v1/events", {**window, "type": "payout.failed"}) == []

    r = await pay.client.request("GET", f"/v1/events/{made['p2'].id}")
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    assert r.content == made["p2"].payload.encode()  # byte for byte what the webhook carried
    for name in ("x", "other"):  # an internal event, another app's
        r = await pay.client.request("GET", f"/v1/events/{made[name].id}")
        assert r.status_code == 404 and r.json()["error"]["code"] == "EVENT_NOT_FOUND"
    r = await pay.client.request("GET", "/v1/events/E1")
    assert r.status_code == 404 and r.json()["error"]["code"] == "EVENT_NOT_FOUND"


async def test_a_statement_sums_to_the_balance_movements_of_its_date(pay) -> None:  # type: ignore[no-untyped-def]
    await book_history(pay)
    tz = ZoneInfo(pay.c.settings.business_timezone)
    today = datetime.now(tz).date().isoformat()
    r = await pay.client.request("GET", f"/v1/statements/{today}")
    assert r.status_code == 200 and r.headers["content-type"] == "text/csv; charset=utf-8"
    rows = list(csv.DictReader(io.StringIO(r.text)))
    transactions = await list_all(pay, "/v1/balance/transactions", {"limit": 100})
    of_today = [
        t for t in transactions if datetime.fromisoformat(t["created_at"]).astimezone(tz).date().isoformat() == today
    ]
    assert len(rows) == len(of_today) == 7
    for column in ("amount", "fee", "net"):
        assert sum(int(row[column]) for row in rows) == sum(t[column] for t in of_today)
    assert all(int(row["net"]) == int(row["amount"]) - int(row["fee"]) for row in rows)
    # the balance moved by the day's rows; a settlement only moves money from pending to available
    balance = (await pay.client.request("GET", "/v1/balance")).json()
    moved = sum(int(row["net"]) for row in rows if row["type"] != "settlement")
    assert moved == balance["pending"] + balance["available"] == 79_460


UNKNOWN_ORDER_CURSOR = encode_cursor("P404")


@pytest.mark.parametrize(
    ("path", "query", "field"),
    [
        ("/v1/pay/orders", "status=PAID", "status"),
        ("/v1/pay/orders", "pay_method=PAYPAL", "pay_method"),
        ("/v1/pay/orders", "created_from=2026-12-06", "created_from"),
        ("/v1/pay/orders", "created_from=2026-12-06T00:00:00", "created_from"),  # no offset
        ("/v1/pay/orders", "created_from=1765000000", "created_from"),
        ("/v1/pay/orders", "created_to=2026-02-30T00:00:00Z", "created_to"),
        ("/v1/pay/orders", "created_to=2026-12-06T00:00:00%2B24:00", "created_to"),
        ("/v1/pay/orders", "created_to=9999-12-31T23:59:59-01:00", "created_to"),
        ("/v1/pay/orders", "created_from=2026-12-06T00:00:01Z&created_to=2026-12-06T08:00:00%2B08:00", "created_from"),
        ("/v1/pay/orders", "limit=0", "limit"),
        ("/v1/pay/orders", "limit=101", "limit"),
        ("/v1/pay/orders", "cursor=!!", "cursor"),
        ("/v1/pay/orders", f"cursor={UNKNOWN_ORDER_CURSOR}", "cursor"),
        ("/v1/pay/orders", "out_trade_no=A1&status=PAYING", "status"),
        ("/v1/refunds", "status=SUCCESS", "status"),
        ("/v1/refunds", "order_no=" + "P" * 33, "order_no"),
        ("/v1/refunds", "created_to=yesterday", "created_to"),
        ("/v1/refunds", "limit=500", "limit"),
        ("/v1/refunds", f"cursor={encode_cursor('R404')}", "cursor"),
        ("/v1/refunds", "out_refund_no=r1&limit=5", "limit"),
        ("/v1/events", "type=pay.anomaly", "type"),
        ("/v1/events", "type=nope", "type"),
        ("/v1/events", "created_from=2026-12-06T00:00:00", "created_from"),
        ("/v1/events", "created_from=2026-12-07T00:00:00Z&created_to=2026-12-06T00:00:00Z", "created_from"),
        ("/v1/events", "limit=0", "limit"),
    ],
)
async def test_bad_input_is_a_422_naming_it(pay, path: str, query: str, field: str) -> None:  # type: ignore[no-untyped-def]
    r = await pay.client.request("GET", f"{path}?{query}")
    assert field_of(r) == (422, "INVALID_REQUEST", field), r.text


async def test_an_unencoded_plus_in_an_offset_is_read_as_plus(pay) -> None:  # type: ignore[no-untyped-def]
    app_id, mch_no = await app_and_merchant(pay)
    at = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)  # 10:00 in +08:00
    async with pay.c.db.uow() as uow:
        uow.session.add(order_row(app_id, mch_no, "PPLUS", at, "PAYING", "ALIPAY_QR"))
        await uow.commit()
    inside = await pay.client.request("GET", "/v1/pay/orders?created_from=2026-12-01T10:00:00+08:00")
    after = await pay.client.request("GET", "/v1/pay/orders?created_from=2026-12-01T10:00:01+08:00")
    assert [o["order_no"] for o in inside.json()["data"]] == ["PPLUS"]
    assert after.status_code == 200 and after.json()["data"] == []
