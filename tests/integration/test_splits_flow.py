"""Issue 22, profit sharing through the API against the simulators (SQLite and PostgreSQL): receivers bound at the
channel, a 30 % split to two receivers on both channels, the limits, idempotency, concurrent splits, the release of
the rest, and a refund that takes the splits back first."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import text

from tests.fixtures.pay_stack import PayStack
from tomato.core.positions import assign_positions

RECEIVERS = {
    "alipay": [("2088000000000101", "PERSONAL", None), ("2088000000000102", "PERSONAL", None)],
    "wechat": [("1900000101", "MERCHANT", "Teacher One Ltd"), ("1900000102", "MERCHANT", "Teacher Two Ltd")],
}
METHOD = {"alipay": "ALIPAY_QR", "wechat": "WECHAT_NATIVE"}


async def _receivers(pay: PayStack, channel: str) -> list[str]:
    ids = []
    for account, kind, name in RECEIVERS[channel]:
        body: dict[str, Any] = {"channel": channel, "account": account, "account_type": kind}
        if name:
            body["name"] = name
        r = await pay.client.request("POST", "/v1/split-receivers", body)
        assert r.status_code == 201, r.text
        assert r.json()["receiver_id"].startswith("S") and r.json()["channel"] == channel
        ids.append(r.json()["receiver_id"])
    return ids


async def _paid(pay: PayStack, channel: str, amount: int = 10_000, profit_sharing: bool = True) -> str:
    order = (
        await pay.client.create_order(pay_method=METHOD[channel], amount=amount, profit_sharing=profit_sharing)
    ).json()
    assert (await pay.scan(content=order["pay_data"]["value"], result="paid")).status_code == 200
    for _ in range(500):
        got = (await pay.client.request("GET", f"/v1/pay/orders/{order['order_no']}")).json()
        if got["status"] == "SUCCEEDED":
            return str(order["order_no"])
        await asyncio.sleep(0.01)
    raise AssertionError(f"{order['order_no']} not paid")


def _split_body(out_split_no: str, receivers: list[str], amounts: list[int]) -> dict[str, Any]:
    return {
        "out_split_no": out_split_no,
        "receivers": [
            {"receiver_id": r, "amount": a, "description": "course fee"}
            for r, a in zip(receivers, amounts, strict=True)
        ],
    }


async def _events(pay: PayStack, split_no: str) -> list[str]:
    async with pay.c.db.engine.connect() as conn:
        rows = await conn.execute(
            text("SELECT event_type FROM outbox_events WHERE aggregate_id = :s ORDER BY seq"), {"s": split_no}
        )
        return [str(t) for t in rows.scalars()]


async def test_a_30_percent_split_to_two_receivers_on_both_channels(pay: PayStack) -> None:
    for channel in ("alipay", "wechat"):
        receivers = await _receivers(pay, channel)
        order_no = await _paid(pay, channel)
        path = f"/v1/pay/orders/{order_no}/splits"
        r = await pay.client.request("POST", path, _split_body(f"{channel}-1", receivers, [1_500, 1_500]))
        assert r.status_code == 201, r.text
        split = r.json()
        assert split["amount"] == 3_000 and split["order_no"] == order_no
        for _ in range(200):  # Alipay answers at once; WeChat's split may be processing until queried
            if split["status"] != "PENDING":
                break
            await pay.c.pay.poll_splits()
            split = (await pay.client.request("GET", path)).json()["data"][0]
        assert split["status"] == "SUCCEEDED", (channel, split)
        assert [s["status"] for s in split["receivers"]] == ["SUCCEEDED", "SUCCEEDED"]
        assert await _events(pay, split["split_no"]) == ["split.succeeded"]
        await assign_positions(pay.c.db)  # what the relay does after each commit
        listed = (await pay.client.request("GET", "/v1/events?type=split.succeeded")).json()["data"]
        assert split["split_no"] in {e["data"]["split_no"] for e in listed}  # the merchant sees it like any event

        again = await pay.client.request("POST", path, _split_body(f"{channel}-1", receivers, [1_500, 1_500]))
        assert again.status_code == 200 and again.json()["split_no"] == split["split_no"]
        other = await pay.client.request("POST", path, _split_body(f"{channel}-1", receivers, [1_000, 1_500]))
        assert other.status_code == 409 and other.json()["error"]["code"] == "OUT_SPLIT_NO_CONFLICT"
        over = await pay.client.request("POST", path, _split_body(f"{channel}-2", receivers[:1], [1]))
        if channel == "wechat":  # 30 % of the order is WeChat's limit, all of it taken
            assert over.status_code == 409 and over.json()["error"]["code"] == "SPLIT_AMOUNT_EXCEEDED", over.text


async def test_splits_are_refused_where_they_cannot_be(pay: PayStack) -> None:
    receivers = await _receivers(pay, "alipay")
    plain = await _paid(pay, "alipay", profit_sharing=False)
    r = await pay.client.request("POST", f"/v1/pay/orders/{plain}/splits", _split_body("x1", receivers, [100, 100]))
    assert r.status_code == 409 and r.json()["error"]["code"] == "ORDER_STATE_CONFLICT"
    order_no = await _paid(pay, "alipay", amount=1_000)
    path = f"/v1/pay/orders/{order_no}/splits"
    too_much = await pay.client.request("POST", path, _split_body("x2", receivers, [600, 600]))
    assert too_much.status_code == 409 and too_much.json()["error"]["code"] == "SPLIT_AMOUNT_EXCEEDED"
    unknown = await pay.client.request("POST", path, _split_body("x3", ["S1"], [100]))
    assert unknown.status_code == 422 and unknown.json()["error"]["details"][0]["field"] == "receivers"
    twice = await pay.client.request("POST", path, _split_body("x4", [receivers[0], receivers[0]], [100, 100]))
    assert twice.status_code == 422
    finished = await pay.client.request("POST", f"{path}/finish", {})
    assert finished.status_code == 200, finished.text
    after = await pay.client.request("POST", path, _split_body("x5", receivers[:1], [100]))
    assert after.status_code == 409 and after.json()["error"]["code"] == "ORDER_STATE_CONFLICT"
    assert (await pay.client.request("GET", path)).json()["data"] == []
    async with pay.c.db.engine.connect() as conn:
        held = await conn.execute(text("SELECT split_reserved FROM pay_orders WHERE order_no = :o"), {"o": order_no})
        assert held.scalar_one() == 0  # nothing refused kept a reservation


async def test_twenty_concurrent_splits_never_share_more_than_the_order_can(pay: PayStack) -> None:
    receivers = await _receivers(pay, "wechat")
    order_no = await _paid(pay, "wechat", amount=10_000)  # WeChat: at most 3,000 (30 %)
    path = f"/v1/pay/orders/{order_no}/splits"
    answers = await asyncio.gather(
        *(pay.client.request("POST", path, _split_body(f"c{n}", receivers[:1], [700])) for n in range(20))
    )
    made = [a for a in answers if a.status_code == 201]
    refused = [a for a in answers if a.status_code == 409]
    assert len(made) + len(refused) == 20 and all(a.json()["error"]["code"] == "SPLIT_AMOUNT_EXCEEDED" for a in refused)
    assert len(made) == 4  # 4 × 700 = 2,800 ≤ 3,000 < 5 × 700
    async with pay.c.db.engine.connect() as conn:
        held = await conn.execute(text("SELECT split_reserved FROM pay_orders WHERE order_no = :o"), {"o": order_no})
        assert held.scalar_one() == 2_800


async def test_a_refund_of_a_split_order_takes_the_splits_back_first(pay: PayStack) -> None:
    receivers = await _receivers(pay, "wechat")
    order_no = await _paid(pay, "wechat", amount=10_000)
    path = f"/v1/pay/orders/{order_no}/splits"
    split = (await pay.client.request("POST", path, _split_body("r1", receivers, [1_000, 2_000]))).json()
    for _ in range(200):
        if split["status"] == "SUCCEEDED":
            break
        await pay.c.pay.poll_splits()
        split = (await pay.client.request("GET", path)).json()["data"][0]
    assert split["status"] == "SUCCEEDED"
    refund = await pay.client.request(
        "POST", "/v1/refunds", {"order_no": order_no, "out_refund_no": "rf1", "amount": 10_000}
    )
    assert refund.status_code == 201, refund.text  # the whole amount: the splits came back first
    assert await _events(pay, split["split_no"]) == ["split.succeeded", "split.returned"]
    async with pay.c.db.engine.connect() as conn:
        row = (
            await conn.execute(text("SELECT returned_amount FROM splits WHERE split_no = :s"), {"s": split["split_no"]})
        ).scalar_one()
        assert row == 3_000


async def test_a_receiver_the_channel_refuses_is_a_422_naming_account_and_nothing_is_stored(pay: PayStack) -> None:
    r = await pay.client.request(
        "POST", "/v1/split-receivers", {"channel": "alipay", "account": "0", "account_type": "MERCHANT"}
    )
    assert r.status_code == 422, r.text
    assert [d["field"] for d in r.json()["error"]["details"]] == ["account"]
    async with pay.c.db.engine.connect() as conn:
        assert (await conn.execute(text("SELECT count(*) FROM split_receivers"))).scalar_one() == 0


async def test_an_alipay_refund_carries_the_splits_back_and_a_failed_one_leaves_them(pay: PayStack) -> None:
    """Alipay has no stand-alone return: the refund takes the split money back (refund_royalty_parameters); if the
    refund fails, the splits stay with the receivers and the order's split reservation holds them again."""
    receivers = await _receivers(pay, "alipay")
    order_no = await _paid(pay, "alipay", amount=10_000)
    split = (
        await pay.client.request(
            "POST", f"/v1/pay/orders/{order_no}/splits", _split_body("a1", receivers, [1_000, 2_000])
        )
    ).json()
    assert split["status"] == "SUCCEEDED"

    async def reserved() -> tuple[int, int]:
        async with pay.c.db.engine.connect() as conn:
            held = await conn.execute(
                text("SELECT split_reserved FROM pay_orders WHERE order_no = :o"), {"o": order_no}
            )
            back = await conn.execute(
                text("SELECT returned_amount FROM splits WHERE split_no = :s"), {"s": split["split_no"]}
            )
            return int(held.scalar_one()), int(back.scalar_one())

    await pay.faults(channel="alipay", reject_refunds=True)
    failed = await pay.client.request(
        "POST", "/v1/refunds", {"order_no": order_no, "out_refund_no": "f1", "amount": 10_000}
    )
    assert failed.status_code == 201 and failed.json()["status"] == "FAILED", failed.text
    assert await reserved() == (3_000, 0) and await _events(pay, split["split_no"]) == ["split.succeeded"]

    await pay.sandbox_http.delete("/sandbox/faults")
    done = await pay.client.request(
        "POST", "/v1/refunds", {"order_no": order_no, "out_refund_no": "f2", "amount": 10_000}
    )
    assert done.status_code == 201 and done.json()["status"] == "SUCCEEDED", done.text
    assert await reserved() == (0, 3_000)
    assert await _events(pay, split["split_no"]) == ["split.succeeded", "split.returned"]
