"""Creating a pay order: insert it, then submit it to the routed channel accounts outside any transaction.

A retry with the same `out_trade_no` (after a timeout or 5xx left the order `CREATED`) resumes it on the same order
number; `submit` makes sure only one submission of an order reaches a channel at a time, and the expiry job closes
it at the channel if nobody resumes it. A CASHIER order is submitted when the payer opens the cashier in a wallet.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy.exc import IntegrityError

from tomato.channel.service import Route
from tomato.core.crypto import random_token
from tomato.core.errors import InvalidRequest, NoChannelAvailable
from tomato.core.pay_methods import PayMethod
from tomato.core.writebatch import WriteBatch
from tomato.merchant.schemas import AppAuth
from tomato.merchant.service import MerchantService
from tomato.pay import repository as repo
from tomato.pay.errors import OrderNotFound, OutTradeNoConflict
from tomato.pay.models import PayAttempt, PayOrder
from tomato.pay.rows import new_order
from tomato.pay.schemas import PayOrderCreate, PayOrderView
from tomato.pay.service import barcode, submit
from tomato.pay.service.deps import PayDeps
from tomato.pay.service.views import order_view
from tomato.pay.states import OrderStatus


@dataclass(frozen=True)
class CashierStart:
    """The order after the cashier tried it, and what the wallet needs (None: nothing to do, e.g. paid)."""

    order: PayOrderView
    wallet_pay_data: dict[str, Any] | None


async def create_order(deps: PayDeps, app: AppAuth, cmd: PayOrderCreate) -> tuple[PayOrderView, bool]:
    """Returns the order and whether it was created now (201) rather than found (200)."""
    MerchantService.ensure_usable(app, cmd.pay_method.value)
    if cmd.amount > app.amount_limit:
        raise InvalidRequest.field("amount", f"exceeds this app's limit of {app.amount_limit}")
    deps.check_notify_url(cmd.notify_url)
    digest = cmd.request_hash()
    # No read before the insert: the unique (app_id, out_trade_no) key finds repeats (the IntegrityError below).
    order = _new_order(deps, app, cmd, digest)
    routes: list[Route] = []
    first: PayAttempt | None = None
    token = ""
    if cmd.pay_method is not PayMethod.CASHIER:
        routes = await deps.channels.route(app.app_id, cmd.pay_method.value, cmd.amount, app.mch_no)
        if cmd.auth_code is not None:  # BARCODE: the code's own channel only
            routes = barcode.routes_for(routes, cmd.auth_code)
        held = await submit.hold_first(deps, order, routes) if routes else None
        if held is None:  # nothing to try: answer a repeat with its order, else 503 with nothing written
            async with deps.db.uow() as uow:
                existing = await repo.by_out_trade_no(uow.session, app.app_id, cmd.out_trade_no)
            if existing is not None:
                return await _existing(deps, existing, digest), False
            raise NoChannelAvailable(f"no channel account can take {cmd.pay_method.value} now")
        first, routes = held
        token = submit.new_claim(deps, order)
    try:
        batch = WriteBatch(deps.db.engine)  # the order (with its creator's claim) and its first attempt, atomically
        repo.insert_order(batch, order, first)
        await batch.commit()
    except IntegrityError:  # a concurrent request with the same out_trade_no won the insert
        if first is not None:
            await deps.channels.release_daily_limit([first.id])
        async with deps.db.uow() as uow:
            winner = await repo.by_out_trade_no(uow.session, app.app_id, cmd.out_trade_no)
        if winner is None:
            raise
        return await _existing(deps, winner, digest), False
    if first is None:  # CASHIER: submitted when the payer opens the cashier
        return order_view(order), True
    view, _ = await submit.submit(deps, order, routes, token, first_attempt=first)
    if barcode.is_barcode(order) and view.status == OrderStatus.PAYING:
        view = await barcode.wait_final(deps, order.order_no)
    return view, True


async def _existing(deps: PayDeps, order: PayOrder, digest: str) -> PayOrderView:
    """A repeat of a create: the order as it stands, resubmitted first if it is still CREATED and nobody else is
    submitting it right now."""
    if order.request_hash != digest:
        raise OutTradeNoConflict(f"out_trade_no {order.out_trade_no} was used for a different request")
    if order.status == OrderStatus.CREATED and order.pay_method != PayMethod.CASHIER:
        done = await submit.resubmit(deps, order)
        if done is not None:
            return done[0]
        async with deps.db.uow() as uow:
            current = await repo.get(uow.session, order.order_no)
        assert current is not None
        return order_view(current)
    return order_view(order)


def _new_order(deps: PayDeps, app: AppAuth, cmd: PayOrderCreate, digest: str) -> PayOrder:
    now = deps.clock.now()
    order = new_order(
        order_no=deps.ids.next_id("P"),
        app_id=app.app_id,
        mch_no=app.mch_no,
        out_trade_no=cmd.out_trade_no,
        request_hash=digest,
        status=OrderStatus.CREATED.value,
        paid_after_close=False,
        amount=cmd.amount,
        currency=cmd.currency,
        subject=cmd.subject,
        body=cmd.body,
        pay_method=cmd.pay_method.value,
        notify_url=cmd.notify_url,
        return_url=cmd.return_url,
        client_ip=cmd.client_ip,
        payer_openid=cmd.payer.openid if cmd.payer else None,
        auth_code=cmd.auth_code,
        profit_sharing=cmd.profit_sharing,
        metadata_json=json.dumps(cmd.metadata, ensure_ascii=False, sort_keys=True),
        refunded_amount=0,
        refund_status="NONE",
        expire_at=now + timedelta(minutes=cmd.expire_minutes),
        query_count=0,
        version=1,
        created_at=now,
        updated_at=now,
    )
    if cmd.pay_method is PayMethod.CASHIER:
        order.cashier_token = random_token(24)
        url = f"{deps.public_url.rstrip('/')}/cashier/{order.cashier_token}"
        order.pay_data = json.dumps({"type": "cashier_url", "value": url})
    return order


WALLET_METHODS = {"alipay": PayMethod.ALIPAY_WAP, "wechat": PayMethod.WECHAT_JSAPI}
# Inside the wallet's own app. Alipay: the trade is precreated server to server and the app is sent to its pay link
# (Alipay opens its own pay sheet for it), so the trade exists at the channel once the page has answered; a browser
# elsewhere gets the WAP/page-pay redirect, whose trade Alipay creates only when the payer opens it.
IN_APP_METHODS = {**WALLET_METHODS, "alipay": PayMethod.ALIPAY_QR}


async def start_cashier(
    deps: PayDeps, token: str, wallet: str, openid: str | None, *, in_app: bool = False
) -> CashierStart:
    """The payer opened the cashier page in a wallet: try the order on that wallet's channel.

    The order keeps `pay_method` CASHIER and its `cashier_url`; the wallet's own pay data (redirect URL, the
    wallet's pay link, or JSAPI parameters) goes back to the page. Opening the page again while the order is
    PAYING — or while another opening is submitting it — reuses the accepted attempt.
    """
    method = (IN_APP_METHODS if in_app else WALLET_METHODS).get(wallet)
    if method is None:
        raise InvalidRequest.field("wallet", "must be alipay or wechat")
    if method is PayMethod.WECHAT_JSAPI and not openid:
        raise InvalidRequest.field("openid", "WeChat needs the payer's openid")
    async with deps.db.uow() as uow:
        order = await repo.by_cashier_token(uow.session, token)
        if order is None:
            raise OrderNotFound("unknown cashier link")
    if order.status == OrderStatus.CREATED:
        order.payer_openid = openid or order.payer_openid
        done = await submit.resubmit(deps, order, method=method)
        if done is not None:
            return CashierStart(*done)
    # not CREATED, or another opening is submitting it: what stands, and the wallet's accepted pay data if any
    async with deps.db.uow() as uow:
        current = await repo.get(uow.session, order.order_no)
        attempts = await repo.attempts_of(uow.session, order.order_no)
    assert current is not None
    reuse = [a.pay_data for a in attempts if a.status == "SUCCESS" and a.channel == wallet and a.pay_data]
    return CashierStart(order_view(current), json.loads(reuse[-1]) if reuse else None)
