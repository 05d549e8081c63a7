"""Issue 24: a payment notify is applied in two statements on PostgreSQL (pay/service/paid_fast.py); the order,
its `pay.succeeded` event and the event's booking facts are exactly what the general path makes, and an order that
changed between the read and the write is left to the general path."""

from __future__ import annotations

import json
from urllib.parse import urlencode

import pytest
from sqlalchemy import text

from tomato.pay.service import paid_fast


def simulator(pay):  # type: ignore[no-untyped-def]
    from tomato.channel.sandbox import alipay_simulator

    return alipay_simulator(pay.sandbox)


async def notify(pay, order_no: str, notify_id: str):  # type: ignore[no-untyped-def]
    trade = simulator(pay).book.find_by_order_no(order_no)
    fields = simulator(pay).notify_fields(trade, notify_id)
    r = await pay.http.post(
        f"/callbacks/alipay/{pay.accounts['alipay']}",
        content=urlencode(fields).encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
    )
    assert r.status_code == 200 and r.text == "success", r.text
    return trade


async def paid_order(pay) -> str:  # type: ignore[no-untyped-def]
    await pay.faults(channel="alipay", drop_notify=True)
    order = (await pay.client.create_order(amount=2345, metadata={"k": "v"})).json()
    await pay.scan(order_no=order["order_no"], result="paid")
    return str(order["order_no"])


async def event_of(pay, order_no: str) -> tuple[dict, dict]:  # type: ignore[type-arg,no-untyped-def]
    async with pay.c.db.engine.connect() as conn:
        rows = (
            await conn.execute(
                text(
                    "SELECT payload, facts FROM outbox_events WHERE aggregate_id = :o AND event_type = 'pay.succeeded'"
                ),
                {"o": order_no},
            )
        ).all()
    assert len(rows) == 1
    return json.loads(rows[0][0]), json.loads(rows[0][1])


def counting(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    outcomes: list[bool] = []
    original = paid_fast.try_apply

    async def spy(deps, report):  # type: ignore[no-untyped-def]
        outcomes.append(await original(deps, report))
        return outcomes[-1]

    monkeypatch.setattr(paid_fast, "try_apply", spy)
    return outcomes


async def test_the_event_is_the_order_as_stored(pay, monkeypatch: pytest.MonkeyPatch) -> None:
    outcomes = counting(monkeypatch)
    order_no = await paid_order(pay)
    trade = await notify(pay, order_no, "fast-1")
    # PostgreSQL takes the two-statement path; SQLite the general one
    assert outcomes == [pay.c.db.dialect == "postgresql"]
    stored = (await pay.client.request("GET", f"/v1/pay/orders/{order_no}")).json()
    assert stored["status"] == "SUCCEEDED" and stored["channel_trade_no"] == trade.channel_trade_no
    payload, facts = await event_of(pay, order_no)
    assert payload["type"] == "pay.succeeded" and payload["data"] == stored
    async with pay.c.db.engine.connect() as conn:
        row = (
            await conn.execute(
                text(
                    "SELECT fee, fee_ppm, channel_cost, channel_cost_ppm, refund_fee_rule, service_provider, "
                    "channel_account_id, version FROM pay_orders WHERE order_no = :o"
                ),
                {"o": order_no},
            )
        ).one()
    assert facts["order_no"] == order_no and facts["amount"] == 2345 and facts["pay_method"] == stored["pay_method"]
    assert (facts["fee"], facts["fee_ppm"], facts["channel_cost"], facts["channel_cost_ppm"]) == tuple(row[:4])
    assert facts["refund_fee_rule"] == row[4] and facts["service_provider"] is bool(row[5])
    assert facts["channel_account_id"] == row[6] == pay.accounts["alipay"] and facts["paid_at"] == stored["paid_at"]
    # a duplicate changes nothing and adds no event
    await notify(pay, order_no, "fast-2")
    assert (await event_of(pay, order_no))[0] == payload


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
async def test_an_order_changed_after_the_read_goes_to_the_general_path(pay, monkeypatch: pytest.MonkeyPatch) -> None:
    outcomes = counting(monkeypatch)
    order_no = await paid_order(pay)
    original = paid_fast._read

    async def read_then_change(raw, order_no_, account_id):  # type: ignore[no-untyped-def]
        found = await original(raw, order_no_, account_id)
        async with pay.c.db.engine.begin() as conn:  # another writer, between our read and our write
            await conn.execute(
                text("""UPDATE pay_orders SET pay_data = '{"type":"qr_code","value":"changed"}' WHERE order_no = :o"""),
                {"o": order_no},
            )
        return found

    monkeypatch.setattr(paid_fast, "_read", read_then_change)
    await notify(pay, order_no, "changed-1")
    assert outcomes == [False]
    stored = (await pay.client.request("GET", f"/v1/pay/orders/{order_no}")).json()
    payload, _ = await event_of(pay, order_no)
    assert stored["status"] == "SUCCEEDED" and stored["pay_data"]["value"] == "changed"
    assert payload["data"] == stored
