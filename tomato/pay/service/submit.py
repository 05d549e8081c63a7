"""Submitting a CREATED order to its routed channel accounts, outside any transaction, one submission at a time.

- **One at a time.** A submission holds the order's claim (`repository.claim_submission`: a guarded UPDATE with a
  token and a lease of `PayDeps.submit_lease_s`, renewed before each candidate). A retried create or a second
  cashier opening that finds the claim held answers the order as it stands instead of calling a channel; a claim
  whose holder died lapses with its lease. Acceptance clears the claim in the PAYING transition; any other end
  gives it up.
- **Daily limits.** Before a candidate is called its account's room for the day is held under the attempt's id
  (`ChannelService.hold_daily_limit`, one guarded upsert); a candidate without room is skipped. The hold is given
  back when the attempt definitely created no trade (connect error, breaker open, signed rejection) and, through
  `holds.release_order_holds`, when the order closes unpaid or fails. An unknown outcome keeps it.
- **Fallbacks.** The next candidate is tried only after a failure that happened before the channel could have
  created the trade; a timeout or 5xx answers CHANNEL_ERROR and leaves the order CREATED for a retry.
"""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from datetime import timedelta
from typing import Any

from tomato.channel.protocol import ChannelResult, CreateRequest, ErrorClass, ResultStatus
from tomato.channel.service import Route
from tomato.core.crypto import random_token
from tomato.core.errors import ChannelError, NoChannelAvailable
from tomato.core.pay_methods import PayMethod
from tomato.core.writebatch import WriteBatch
from tomato.pay import repository as repo
from tomato.pay import rows
from tomato.pay.models import PayAttempt, PayOrder
from tomato.pay.rows import detached
from tomato.pay.schemas import PayOrderView
from tomato.pay.service import barcode
from tomato.pay.service.compensation import next_query_at
from tomato.pay.service.deps import PayDeps
from tomato.pay.service.views import order_view
from tomato.pay.states import OrderEvent, OrderStatus

log = logging.getLogger(__name__)

RETRY_ELSEWHERE = frozenset({ErrorClass.CONNECT, ErrorClass.BREAKER_OPEN, ErrorClass.REJECTED})
Submitted = tuple[PayOrderView, dict[str, Any] | None]  # the order, and the accepted wallet pay data if any


def new_claim(deps: PayDeps, order: PayOrder) -> str:
    """Sets a fresh claim on a new (not yet inserted) order: its creator submits it."""
    token = random_token(16)
    order.submit_claim, order.submit_claim_until = token, _lease_end(deps)
    return token


async def hold_first(deps: PayDeps, order: PayOrder, routes: list[Route]) -> tuple[PayAttempt, list[Route]] | None:
    """The first attempt of a new order: on the first candidate with room today (held), and the candidates from it
    on. None: no candidate has room (nothing held)."""
    found = await _hold_next(deps, order, routes, 0)
    if found is None:
        return None
    index, attempt = found
    return attempt, routes[index:]


async def resubmit(deps: PayDeps, order: PayOrder, method: PayMethod | None = None) -> Submitted | None:
    """Submits a stored CREATED order (a merchant's retry, the cashier); None when another submission holds it."""
    token = random_token(16)
    async with deps.db.uow() as uow:
        claimed = await repo.claim_submission(uow.session, order.order_no, token, deps.clock.now(), _lease_end(deps))
        await uow.commit()
    if not claimed:
        return None
    try:
        method_value = (method or PayMethod(order.pay_method)).value
        routes = await deps.channels.route(order.app_id, method_value, order.amount, order.mch_no)
        if order.auth_code is not None:
            routes = barcode.routes_for(routes, order.auth_code)
    except BaseException:
        await _give_up(deps, order.order_no, token)
        raise
    return await submit(deps, order, routes, token, method=method)


async def submit(
    deps: PayDeps,
    order: PayOrder,
    routes: list[Route],
    token: str,
    *,
    method: PayMethod | None = None,
    first_attempt: PayAttempt | None = None,
) -> Submitted:
    """Tries `routes` in order under our claim `token`. `method` overrides CASHIER; `first_attempt` is the stored,
    held attempt for `routes[0]`."""
    request = _channel_request(order, method)
    last: ChannelResult | None = None
    done = False  # the claim was cleared by the PAYING transition
    attempt, index = first_attempt, 0
    try:
        while True:
            if attempt is None:
                found = await _hold_next(deps, order, routes, index)
                if found is None:
                    break
                index, attempt = found
                if not await _store_attempt(deps, attempt, token):  # the order moved on, or our claim lapsed
                    await deps.channels.release_daily_limit([attempt.id])
                    return await _as_it_stands(deps, order.order_no), None
            route = routes[index]
            result = await _call(deps, route, attempt, request, order)
            accepted, done = await _finish_attempt(deps, order, route, attempt, result)
            if accepted is not None:
                if barcode.is_barcode(order):  # paid or refused already: the order is final at once
                    await barcode.apply_answer(deps, order, route.channel_account_id, result, "create")
                    return await _as_it_stands(deps, order.order_no), None
                return accepted
            last = result
            if result.error not in RETRY_ELSEWHERE:
                break  # the trade may exist there: keep its hold, try nowhere else
            await deps.channels.release_daily_limit([attempt.id])  # no trade was made: its room is free again
            attempt, index = None, index + 1
    finally:
        if not done:
            await _give_up(deps, order.order_no, token)
    if last is None:
        raise NoChannelAvailable(f"no channel account can take {method or order.pay_method} now")
    detail = f"{last.error.value}: {last.code or ''} {last.message or ''}".strip()
    raise ChannelError(f"the channel did not accept the order ({detail})")


async def _hold_next(deps: PayDeps, order: PayOrder, routes: list[Route], start: int) -> tuple[int, PayAttempt] | None:
    """The first candidate from `start` whose account has room for the order today, held under a new attempt."""
    for index in range(start, len(routes)):
        attempt = new_attempt(deps, order, routes[index])
        if await deps.channels.hold_daily_limit(attempt.id, attempt.channel_account_id, order.amount):
            return index, attempt
    return None


async def _call(
    deps: PayDeps, route: Route, attempt: PayAttempt, request: CreateRequest, order: PayOrder
) -> ChannelResult:
    adapter = await deps.channels.adapter_for(route.channel_account_id, order.mch_no)
    req = replace(request, notify_url=deps.callback_url(route.channel, route.channel_account_id))
    try:
        return await adapter.create(req)
    except Exception:  # an adapter bug must not lose the attempt record
        log.exception("adapter create failed for %s (attempt %s)", order.order_no, attempt.id)
        return ChannelResult.unknown(ErrorClass.MALFORMED, "adapter error")


def _lease_end(deps: PayDeps) -> Any:
    return deps.clock.now() + timedelta(seconds=deps.submit_lease_s)


async def _give_up(deps: PayDeps, order_no: str, token: str) -> None:
    async with deps.db.uow() as uow:
        await repo.release_submission(uow.session, order_no, token)
        await uow.commit()


async def _as_it_stands(deps: PayDeps, order_no: str) -> PayOrderView:
    async with deps.db.uow() as uow:
        order = await repo.get(uow.session, order_no)
    assert order is not None
    return order_view(order)


def _channel_request(order: PayOrder, method: PayMethod | None) -> CreateRequest:
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
        auth_code=order.auth_code,
        profit_sharing=order.profit_sharing,
    )


def new_attempt(deps: PayDeps, order: PayOrder, route: Route) -> PayAttempt:
    return rows.new_attempt(
        id=deps.ids.next_id("PA"),
        order_no=order.order_no,
        channel=route.channel,
        channel_account_id=route.channel_account_id,
        status="CALLING",
        created_at=deps.clock.now(),
    )


async def _store_attempt(deps: PayDeps, attempt: PayAttempt, token: str) -> bool:
    """Renews our claim and records the attempt in one transaction; False (nothing written) if the claim is gone."""
    async with deps.db.uow() as uow:
        now = deps.clock.now()
        if not await repo.claim_submission(uow.session, attempt.order_no, token, now, _lease_end(deps)):
            return False
        repo.add_attempt(uow.session, attempt)
        await uow.commit()
    return True


async def _finish_attempt(
    deps: PayDeps, order: PayOrder, route: Route, attempt: PayAttempt, result: ChannelResult
) -> tuple[Submitted | None, bool]:
    """Records the attempt's result and, if the channel accepted, moves the order to PAYING (clearing the claim).
    Returns the answer when accepted, and whether the claim was cleared."""
    now = deps.clock.now()
    is_barcode = barcode.is_barcode(order)
    if is_barcode:  # no pay data: the payer already presented a code; any answer but an account's refusal counts
        accepted = barcode.accepted(result)
    else:
        accepted = result.status in (ResultStatus.SUCCESS, ResultStatus.WAITING) and result.pay_data is not None
    wallet_data = (
        {"type": result.pay_data.type, "value": result.pay_data.value} if result.pay_data is not None else None
    )
    keep_cashier_url = order.pay_method == PayMethod.CASHIER
    batch = WriteBatch(deps.db.engine)
    repo.finish_attempt(batch, attempt.id, {
        "status": "SUCCESS" if accepted and not is_barcode else result.status.value,
        "error_class": None if accepted and not is_barcode else result.error.value,
        "error_code": result.code,
        "error_message": (result.message or "")[:512] or None,
        "finished_at": now,
        "pay_data": json.dumps(wallet_data) if accepted and wallet_data is not None else None,
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
                "pay_data": order.pay_data
                if keep_cashier_url or wallet_data is None
                else json.dumps(wallet_data),
                "next_query_at": barcode.next_poll(deps)
                if is_barcode
                else next_query_at(order.created_at, order.expire_at, 0, deps.compensation_time_scale),
                "submit_claim": None,
                "submit_claim_until": None,
                "updated_at": now,
            },
        )
    row = await batch.commit()
    if not accepted:
        return None, False
    if row is not None:
        return (order_view(detached(row)), wallet_data), True
    # it moved on meanwhile (paid, closed): answer what it is now
    view = await _as_it_stands(deps, order.order_no)
    log.info("order %s moved on (%s) while the channel accepted it", order.order_no, view.status)
    return (view, wallet_data), False
