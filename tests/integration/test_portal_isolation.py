"""Issue 23 acceptance 2: a merchant never sees another merchant's data. Signed in as merchant A's owner (who may
open every page), every portal route that takes an id is walked with merchant B's ids, GET and POST (a POST with
every field a form of the portal could want, `confirm=yes` included, so a missing check would act), and each must
answer 404, exactly like an id that does not exist. The routes are read off the app itself: a new page with an id
parameter this test does not know fails it until the walk covers it. Afterwards nothing of B's has changed."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from fastapi.routing import APIRoute

from tests.fixtures.ledger import fund_available
from tests.fixtures.merchant_client import MerchantClient
from tests.fixtures.pay_stack import PayStack
from tests.fixtures.portal_client import PortalUser, make_user
from tomato.gateway.portal import router as portal_router
from tomato.merchant.schemas import AppCreate, MerchantCreate
from tomato.notice.models import Delivery

# path parameters that name no merchant's object: an invitation token, a language, a business date
NOT_AN_OBJECT = {"token", "code", "date", "day"}
FORM = {
    "amount": "0.01", "reason": "walk", "confirm": "yes", "out_refund_no": "walk-r1", "out_payout_no": "walk-w1",
    "name": "Walker", "number": "6222020202020202", "bank": "Walk Bank", "role": "owner",
    "notify_url": "https://example.com/hooks", "public_key_pem": "", "email": "walker@example.com",
}  # fmt: skip


async def _merchant_b(pay: PayStack) -> tuple[dict[str, str], MerchantClient]:
    """Merchant B with an app, a paid and partly refunded order, a payout, a second key and a portal user."""
    c = pay.c
    b = await c.merchants.create_merchant(MerchantCreate(name="Merchant B"))
    created = await c.merchants.create_app(b.mch_no, AppCreate(name="b", notify_url="https://b.example.com/hooks"))
    assert created.secret is not None
    client = MerchantClient(pay.http, created.app.app_id, secret=created.secret)
    order = (await client.create_order(amount=5_000, pay_method="WECHAT_NATIVE")).json()
    assert (await pay.scan(order_no=order["order_no"], result="paid")).status_code == 200
    while (await client.request("GET", f"/v1/pay/orders/{order['order_no']}")).json()["status"] != "SUCCEEDED":
        pass  # the simulator's notify is applied in-process: a handful of polls
    refund = await client.request("POST", "/v1/refunds", {"order_no": order["order_no"], "out_refund_no": "b-r1",
                                                         "amount": 1_000, "reason": "b"})  # fmt: skip
    assert refund.status_code == 201, refund.text
    await fund_available(c.db, c.ids, b.mch_no, 20_000)
    payout = await client.request("POST", "/v1/payouts", {"out_payout_no": "b-w1", "amount": 5_000, "bank_account":
                                  {"name": "B", "number": "6222020202020202", "bank": "B Bank"}})  # fmt: skip
    assert payout.status_code == 201, payout.text
    user = await make_user(c, b.mch_no, "support")
    delivery = await _failed_delivery(pay, b.mch_no, created.app.app_id)
    ids = {
        "order_no": order["order_no"], "refund_no": refund.json()["refund_no"], "payout_no": payout.json()["payout_no"],
        "app_id": created.app.app_id, "key_id": created.key_id, "user_id": user.user_id,
        "delivery_id": delivery,
    }  # fmt: skip
    return ids, client


async def _failed_delivery(pay: PayStack, mch_no: str, app_id: str) -> str:
    """A FAILED (so resendable) webhook delivery of B's, as the notice worker leaves one (this stack runs none)."""
    seq, now = pay.c.ids.next_int(), pay.clock.now()
    async with pay.c.db.uow() as uow:
        uow.session.add(Delivery(
            id=f"D{seq}", seq=seq, event_id=f"E{seq}", event_type="pay.succeeded", app_id=app_id, mch_no=mch_no,
            url="https://b.example.com/hooks", status="FAILED", attempts=15, round_start=0, last_status=500,
            event_created_at=now, created_at=now, updated_at=now, finished_at=now,
        ))  # fmt: skip
        await uow.commit()
    return f"D{seq}"


async def _state(pay: PayStack, ids: dict[str, str], client: MerchantClient) -> dict[str, Any]:
    c = pay.c
    app = await c.merchants.get_app(ids["app_id"])
    return {
        "order": (await client.request("GET", f"/v1/pay/orders/{ids['order_no']}")).json(),
        "refunds": (await client.request("GET", f"/v1/refunds?order_no={ids['order_no']}")).json(),
        "payout": (await client.request("GET", f"/v1/payouts/{ids['payout_no']}")).json(),
        "app": app.model_dump(mode="json"),
        "user": (await c.merchants.users.get_user(app.mch_no, ids["user_id"])).model_dump(mode="json"),
        "delivery": await _delivery_row(pay, ids["delivery_id"]),
    }


async def _delivery_row(pay: PayStack, delivery_id: str) -> tuple[object, ...]:
    async with pay.c.db.uow() as uow:
        row = await uow.session.get(Delivery, delivery_id)
        assert row is not None
        return (row.status, row.attempts, row.requested_at, row.next_attempt_at)


def _routes(routes: list[Any], prefix: str = "") -> Iterator[tuple[str, set[str]]]:
    """(path, methods) of every route, through included routers (FastAPI nests them)."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield prefix + route.path, set(route.methods)
        elif (inner := getattr(route, "original_router", None)) is not None:
            yield from _routes(inner.routes, prefix + route.include_context.prefix)


async def test_every_portal_page_and_action_answers_404_for_another_merchants_ids(pay: PayStack) -> None:
    mine = (await pay.c.merchants.list_merchants(None, 10))[0].mch_no
    ids, client = await _merchant_b(pay)
    before = await _state(pay, ids, client)
    owner = PortalUser(pay.http, pay.c)
    assert (await owner.sign_in(await make_user(pay.c, mine, "owner"))).status_code == 303

    walked: list[str] = []
    for route_path, methods in _routes(portal_router.routes):
        if not route_path.startswith("/portal/"):
            continue
        params = set(re.findall(r"{(\w+)}", route_path))
        if not params or params <= NOT_AN_OBJECT:
            continue
        unknown = params - NOT_AN_OBJECT - ids.keys()
        assert not unknown, f"{route_path}: the walk does not know {unknown}; give it merchant B's id"
        path = route_path
        for name in params:
            path = path.replace("{" + name + "}", ids.get(name) or "2026-12-01")
        for method in sorted(methods & {"GET", "POST"}):
            r = await (owner.get(path) if method == "GET" else owner.post(path, FORM))
            assert r.status_code == 404, f"{method} {path} → {r.status_code}"
            walked.append(f"{method} {route_path}")
    assert len(walked) >= 13, walked  # the walk really covered the portal's pages and actions
    # a form that names an app in a field: B's app is as unknown as in a path
    payout = await owner.post("/portal/payouts", {**FORM, "app_id": ids["app_id"]})
    assert payout.status_code == 404, payout.text
    for listing in ("/portal/orders", "/portal/refunds", "/portal/payouts", "/portal/deliveries"):
        page = await owner.get(listing, params={"q": ids["order_no"]})
        links = [f'/portal/{kind}/{ids[key]}"' for kind, key in (("orders", "order_no"), ("refunds", "refund_no"),
                 ("payouts", "payout_no"), ("deliveries", "delivery_id"))]  # fmt: skip
        assert page.status_code == 200 and not [link for link in links if link in page.text], listing
    assert await _state(pay, ids, client) == before
