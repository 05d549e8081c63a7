"""Creating a pay order: insert it, then try the routed channel accounts outside any transaction.

A candidate is abandoned for the next one only when the failure happened before the channel could have created
the trade (connect error, breaker open, definite business rejection). A timeout or 5xx leaves the order
`CREATED` and answers `CHANNEL_ERROR`: a retry with the same `out_trade_no` resumes it on the same order number,
and the expiry job closes it at the channel if nobody does.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

from sqlalchemy.exc import IntegrityError

from tomato.channel.protocol import ChannelResult, CreateRequest, ErrorClass, ResultStatus
from tomato.channel.service import Route
from tomato.core.crypto import random_token
from tomato.core.errors import ChannelError, InvalidRequest, NoChannelAvailable
from tomato.core.pay_methods import PayMethod
from tomato.core.writebatch import WriteBatch
from tomato.merchant.schemas import AppAuth
from tomato.merchant.service import MerchantService
from tomato.pay import repository as repo
from tomato.pay.errors import OrderNotFound, OutTradeNoConflict
from tomato.pay.models import PayAttempt, PayOrder
from tomato.pay.schemas import PayOrderCreate, PayOrderView
from tomato.pay.service.compensation import next_query_at
from tomato.pay.service.deps import PayDeps
from tomato.pay.service.views import order_view
from tomato.pay.states import OrderEvent, OrderStatus

log = logging.getLogger(__name__)

RETRY_ELSEWHERE = frozenset({ErrorClass.CONNECT, ErrorClass.BREAKER_OPEN, ErrorClass.REJECTED})


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
    routes: list[Route] = []
    if cmd.pay_method is not PayMethod.CASHIER:
        routes = await deps.channels.route(app.app_id, cmd.pay_method.value, cmd.amount)
        if not routes:
            async with deps.db.uow() as uow:
                existing = await repo.by_out_trade_no(uow.session, app.app_id, cmd.out_trade_no)
            if existing is not None:
                return await _existing(deps, existing, digest), False
            raise NoChannelAvailable(f"no channel account can take {cmd.pay_method.value} now")
    order = _new_order(deps, app, cmd, digest)
    first = _new_attempt(deps, order, routes[0]) if routes else None
    try:
        batch = WriteBatch(deps.db.engine)  # the order and its first attempt, atomically
        repo.insert_order(batch, order, first)
        await batch.commit()
    except IntegrityError:  # a concurrent request with the same out_trade_no won the insert
        async with deps.db.uow() as uow:
            winner = await repo.by_out_trade_no(uow.session, app.app_id, cmd.out_trade_no)
        if winner is None:
            raise
        return await _existing(deps, winner, digest), False
    if cmd.pay_method is PayMethod.CASHIER:
        return order_view(order), True
    view, _ = await _submit(deps, order, routes, first_attempt=first)
    return view, True


async def _existing(deps: PayDeps, order: PayOrder, digest: str) -> PayOrderView:
    if order.request_hash != digest:
        raise OutTradeNoConflict(f"out_trade_no {order.out_trade_no} was used for a different request")
    if order.status == OrderStatus.CREATED and order.pay_method != PayMethod.CASHIER:
        routes = await deps.channels.route(order.app_id, order.pay_method, order.amount)
        view, _ = await _submit(deps, order, routes)
        return view
    return order_view(order)


def _new_order(deps: PayDeps, app: AppAuth, cmd: PayOrderCreate, digest: str) -> PayOrder:
    now = deps.clock.now()
    order = PayOrder(
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
    PAYING reuses the attempt.
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
        attempts = await repo.attempts_of(uow.session, order.order_no)
    if order.status != OrderStatus.CREATED:
        reuse = [a.pay_data for a in attempts if a.status == "SUCCESS" and a.channel == wallet and a.pay_data]
        return CashierStart(order_view(order), json.loads(reuse[-1]) if reuse else None)
    order.payer_openid = openid or order.payer_openid
    routes = await deps.channels.route(order.app_id, method.value, order.amount)
    view, pay_data = await _submit(deps, order, routes, method=method)
    return CashierStart(view, pay_data)


async def _submit(
    deps: PayDeps,
    order: PayOrder,
    routes: list[Route],
    *,
    method: PayMethod | None = None,
    first_attempt: PayAttempt | None = None,
) -> tuple[PayOrderView, dict[str, Any] | None]:
    """Tries `routes` in order; returns the order and the accepted wallet pay data. `method` overrides CASHIER;
    `first_attempt` is the already stored attempt for `routes[0]`."""
    if not routes:
        raise NoChannelAvailable(f"no channel account can take {method or order.pay_method} now")
    request = _channel_request(deps, order, method)
    last: ChannelResult | None = None
    for i, route in enumerate(routes):
        attempt = first_attempt if i == 0 and first_attempt is not None else await _start_attempt(deps, order, route)
        adapter = await deps.channels.adapter(route.channel_account_id)
        req = replace(request, notify_url=deps.callback_url(route.channel, route.channel_account_id))
        try:
            result = await adapter.create(req)
        except Exception:  # an adapter bug must not lose the attempt record
            log.exception("adapter create failed for %s", order.order_no)
            result = ChannelResult.unknown(ErrorClass.MALFORMED, "adapter error")
        accepted = await _finish_attempt(deps, order, route, attempt, result)
        if accepted is not None:
            return accepted
        last = result
        if result.error not in RETRY_ELSEWHERE:
            break
    assert last is not None
    detail = f"{last.error.value}: {last.code or ''} {last.message or ''}".strip()
    raise ChannelError(f"the channel did not accept the order ({detail})")


def _channel_request(deps: PayDeps, order: PayOrder, method: PayMethod | None) -> CreateRequest:
    return CreateRequest(
        order_no=order.order_no,
        amount=order.amount,
        subject=order.subject,
        pay_method=(method or PayMethod(order.pay_method)).value,
        notify_url="",
        expire_at=order.expire_at,
        body=order.body,
        return_url=order.return_url,
        client_ip=order.client_ip,
        openid=order.payer_openid,
        created_at=order.created_at,
    )


def _new_attempt(deps: PayDeps, order: PayOrder, route: Route) -> PayAttempt:
    return PayAttempt(
        id=deps.ids.next_id("PA"),
        order_no=order.order_no,
        channel=route.channel,
        channel_account_id=route.channel_account_id,
        status="CALLING",
        created_at=deps.clock.now(),
    )


async def _start_attempt(deps: PayDeps, order: PayOrder, route: Route) -> PayAttempt:
    attempt = _new_attempt(deps, order, route)
    async with deps.db.uow() as uow:
        uow.session.add(attempt)
        await uow.commit()
    return attempt


async def _finish_attempt(
    deps: PayDeps, order: PayOrder, route: Route, attempt: PayAttempt, result: ChannelResult
) -> tuple[PayOrderView, dict[str, Any]] | None:
    now = deps.clock.now()
    accepted = result.status in (ResultStatus.SUCCESS, ResultStatus.WAITING) and result.pay_data is not None
    wallet_data = (
        {"type": result.pay_data.type, "value": result.pay_data.value} if result.pay_data is not None else None
    )
    keep_cashier_url = order.pay_method == PayMethod.CASHIER
    batch = WriteBatch(deps.db.engine)
    repo.finish_attempt(batch, attempt.id, {
        "status": "SUCCESS" if accepted else result.status.value,
        "error_class": None if accepted else result.error.value,
        "error_code": result.code,
        "error_message": (result.message or "")[:512] or None,
        "finished_at": now,
        "pay_data": json.dumps(wallet_data) if accepted else None,
    })  # fmt: skip
    if accepted:
        repo.transition_returning(
            batch,
            order.order_no,
            OrderEvent.CHANNEL_ACCEPTED,
            {
                "status": OrderStatus.PAYING.value,
                "channel": route.channel,
                "channel_account_id": route.channel_account_id,
                "pay_data": order.pay_data if keep_cashier_url else json.dumps(wallet_data),
                "next_query_at": next_query_at(order.created_at, order.expire_at, 0, deps.compensation_time_scale),
                "updated_at": now,
            },
        )
    row = await batch.commit()
    fresh = repo.detached(row) if row is not None else None
    moved = fresh is not None
    if accepted and fresh is None:  # it moved on meanwhile (paid, closed): answer what it is now
        async with deps.db.uow() as uow:
            fresh = await repo.get(uow.session, order.order_no)
    if not accepted:
        return None
    assert fresh is not None and wallet_data is not None
    if moved:
        await deps.channels.record_usage(route.channel_account_id, order.amount)
    else:
        log.info("order %s moved on (%s) while the channel accepted it", order.order_no, fresh.status)
    return order_view(fresh), wallet_data
