"""Profit sharing (分账): receivers, splits of paid orders, their results, and the release of the rest.

- **Receivers** are registered per channel and bound at once on every ACTIVE account of that channel that may act
  for the merchant (nothing is stored when a channel refuses); each split binds its receivers on the order's account
  again (binding is idempotent at the channels), so an account added later works too.
- **The amount is reserved** on the order in the unit of work that inserts the split: one guarded UPDATE
  (`split_reserved + X <= least(amount − fee − refund_reserved, the channel's limit)`, the order SUCCEEDED, made for
  profit sharing, not finished) — concurrent splits can never share more than the order holds. A FAILED split gives
  its amount back; a returned one (before a refund, `split_returns.py`) too.
- **The channel is asked outside any transaction**; its answer, a later query (the `pay.splits` job) or a notify
  moves the split PENDING → SUCCEEDED / FAILED by compare-and-set, with `split.succeeded` / `split.failed`.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from tomato.channel.protocol import (
    ChannelNotify,
    ChannelResult,
    ErrorClass,
    ProfitSharingChannel,
    ResultStatus,
    SplitRef,
    SplitRequest,
    SplitShare,
)
from tomato.channel.protocol import (
    SplitReceiver as ChannelReceiver,
)
from tomato.core.clock import as_utc, business_date, rfc3339
from tomato.core.errors import ChannelError, InvalidRequest
from tomato.core.outbox import add_event
from tomato.merchant.schemas import AppAuth
from tomato.pay import repository as repo
from tomato.pay.errors import OrderNotFound, OrderStateConflict, OutSplitNoConflict, SplitAmountExceeded
from tomato.pay.events import SPLIT_FAILED, SPLIT_SUCCEEDED
from tomato.pay.models import PayOrder
from tomato.pay.schemas import PayOrderView
from tomato.pay.service.confirm import Outcome
from tomato.pay.service.deps import PayDeps
from tomato.pay.service.views import order_view
from tomato.pay.split_models import Split, SplitReceiver
from tomato.pay.split_schemas import SplitCreate, SplitReceiverCreate, SplitReceiverView, SplitShareView, SplitView
from tomato.pay.states import OrderStatus

log = logging.getLogger(__name__)
LIMIT_PERCENT = {"wechat": 30}  # WeChat Pay splits at most 30 % of a payment
QUERY_EVERY_S = 5.0
BATCH = 100


# --- receivers ----------------------------------------------------------------------------------------------


async def create_receiver(deps: PayDeps, app: AppAuth, cmd: SplitReceiverCreate) -> SplitReceiverView:
    accounts = await deps.channels.accounts_for(cmd.channel, app.mch_no)
    receiver = ChannelReceiver(cmd.account, cmd.account_type, cmd.name)
    bound = 0
    for account_id in accounts:
        result = await (await splitter(deps, account_id, app.mch_no)).bind_receiver(receiver)
        if result.status is ResultStatus.SUCCESS:
            bound += 1
        elif result.status is ResultStatus.FAIL and result.code != "SPLIT_NOT_SUPPORTED":
            # a definite refusal of this receiver (an account the channel does not know, a name that does not match)
            raise InvalidRequest.field("account", f"the channel refused the receiver ({result.code or 'refused'})")
        elif result.status is not ResultStatus.FAIL:
            raise ChannelError(f"the channel's answer is unknown ({result.error.value}); send the request again")
    if not bound:
        raise InvalidRequest.field("channel", f"no {cmd.channel} account of this merchant can split payments")
    row = SplitReceiver(
        receiver_id=deps.ids.next_id("S"), app_id=app.app_id, mch_no=app.mch_no, channel=cmd.channel,
        account=cmd.account, account_type=cmd.account_type, name=cmd.name, created_at=deps.clock.now(),
    )  # fmt: skip
    async with deps.db.uow() as uow:
        uow.session.add(row)
        await uow.commit()
    return receiver_view(row)


# --- splits ---------------------------------------------------------------------------------------------------


async def create_split(deps: PayDeps, app: AppAuth, order_no: str, cmd: SplitCreate) -> tuple[SplitView, bool]:
    """The split and whether it was made now (201) rather than found by out_split_no (200)."""
    digest = cmd.request_hash()
    async with deps.db.uow() as uow:
        existing = await _by_out_split_no(uow.session, app.app_id, cmd.out_split_no)
        order = await repo.get_for_app(uow.session, app.app_id, order_no)
        receivers = await _receivers(uow.session, app.mch_no, [r.receiver_id for r in cmd.receivers])
    if existing is not None:
        if existing.request_hash != digest or existing.order_no != order_no:
            raise OutSplitNoConflict(f"out_split_no {cmd.out_split_no} was used for a different request")
        return split_view(existing), False
    if order is None:
        raise OrderNotFound(f"order {order_no} not found")
    _check_splittable(order)
    for share in cmd.receivers:
        found = receivers.get(share.receiver_id)
        if found is None or found.channel != order.channel:
            raise InvalidRequest.field("receivers", f"no {order.channel} receiver {share.receiver_id}")
    split = _new_split(deps, app, order, cmd, digest)
    try:
        async with deps.db.uow() as uow:
            if not await _reserve(uow.session, order, cmd.amount, deps.clock.now()):
                raise _not_reserved(await repo.get(uow.session, order.order_no), cmd.amount)
            uow.session.add(split)
            await uow.commit()
    except IntegrityError:  # a twin with the same out_split_no won the insert; our reservation rolled back
        async with deps.db.uow() as uow:
            winner = await _by_out_split_no(uow.session, app.app_id, cmd.out_split_no)
        if winner is None:
            raise
        return split_view(winner), False
    answer = await _send(deps, order, split, receivers)
    await apply_answer(deps, split.split_no, answer)
    return await get_split(deps, split.split_no), True


async def list_splits(deps: PayDeps, app_id: str, order_no: str) -> list[SplitView]:
    async with deps.db.uow() as uow:
        if await repo.get_for_app(uow.session, app_id, order_no) is None:
            raise OrderNotFound(f"order {order_no} not found")
        q = select(Split).where(Split.order_no == order_no).order_by(Split.created_at, Split.split_no)
        return [split_view(s) for s in (await uow.session.scalars(q)).all()]


async def get_split(deps: PayDeps, split_no: str) -> SplitView:
    async with deps.db.uow() as uow:
        split = await uow.session.get(Split, split_no)
    assert split is not None
    return split_view(split)


async def finish(deps: PayDeps, app: AppAuth, order_no: str) -> PayOrderView:
    """Releases what is left of the order to the merchant: no more splits (again on a finished order: no call)."""
    async with deps.db.uow() as uow:
        order = await repo.get_for_app(uow.session, app.app_id, order_no)
    if order is None:
        raise OrderNotFound(f"order {order_no} not found")
    if order.split_finished:
        return order_view(order)
    _check_splittable(order)
    assert order.channel_account_id is not None and order.channel_trade_no is not None
    ref = SplitRef(order.order_no, f"F{order.order_no[1:]}", order.channel_trade_no)
    result = await (await splitter(deps, order.channel_account_id, order.mch_no)).finish_split(ref)
    if result.status is ResultStatus.FAIL:
        raise OrderStateConflict(f"the channel refused to release the rest ({result.code or result.message})")
    if result.status is ResultStatus.UNKNOWN:
        raise ChannelError(f"the channel's answer is unknown ({result.error.value}); send the request again")
    async with deps.db.uow() as uow:
        done = {"split_finished": True, "updated_at": deps.clock.now()}
        await uow.session.execute(update(PayOrder).where(PayOrder.order_no == order_no).values(**done))
        await uow.commit()
        fresh = await repo.get(uow.session, order_no)
    assert fresh is not None
    return order_view(fresh)


# --- results --------------------------------------------------------------------------------------------------


async def apply_answer(deps: PayDeps, split_no: str, result: ChannelResult) -> Outcome:
    """A channel's answer about a split: final ones move it by compare-and-set; others leave it for the job."""
    if result.status is ResultStatus.SUCCESS:
        return await _finish_split(deps, split_no, "SUCCEEDED")
    if result.status is ResultStatus.FAIL and result.code != "SPLIT_NOT_SUPPORTED":
        return await _finish_split(deps, split_no, "FAILED")
    async with deps.db.uow() as uow:
        await uow.session.execute(
            update(Split)
            .where(Split.split_no == split_no, Split.status == "PENDING")
            .values(
                query_count=Split.query_count + 1,
                next_query_at=deps.clock.now() + timedelta(seconds=QUERY_EVERY_S / deps.compensation_time_scale),
            )
        )
        await uow.commit()
    return Outcome.UNCHANGED


async def apply_notify(deps: PayDeps, channel_account_id: str, notify: ChannelNotify) -> Outcome:
    async with deps.db.uow() as uow:
        split = None if notify.split_no is None else await uow.session.get(Split, notify.split_no)
    # WeChat's profit-sharing notify names the split and the trade, not our order: the split number is the key
    wrong_order = bool(notify.order_no) and split is not None and split.order_no != notify.order_no
    if split is None or split.channel_account_id != channel_account_id or wrong_order:
        log.warning("split notify for unknown split %s on %s", notify.split_no, channel_account_id)
        return Outcome.REJECTED
    result = ChannelResult(notify.status, ErrorClass.NONE, code=notify.failure_reason)
    outcome = await apply_answer(deps, split.split_no, result)
    return Outcome.UNCHANGED if outcome is Outcome.REJECTED else outcome


async def poll_splits(deps: PayDeps) -> int:
    """The `pay.splits` job: ask the channel about PENDING splits whose next look is due."""
    now = deps.clock.now()
    async with deps.db.uow() as uow:
        q = (
            select(Split)
            .where(Split.status == "PENDING", Split.next_query_at <= now)
            .order_by(Split.next_query_at)
            .limit(BATCH)
        )
        due = list((await uow.session.scalars(q)).all())
    for split in due:
        try:
            async with deps.db.uow() as uow:
                order = await repo.get(uow.session, split.order_no)
            assert order is not None and order.channel_trade_no is not None
            ref = SplitRef(split.order_no, split.split_no, order.channel_trade_no)
            result = await (await splitter(deps, split.channel_account_id, split.mch_no)).query_split(ref)
            await apply_answer(deps, split.split_no, result)
        except Exception:
            log.exception("split query failed for %s", split.split_no)
    return len(due)


async def _finish_split(deps: PayDeps, split_no: str, status: str) -> Outcome:
    now = deps.clock.now()
    async with deps.db.uow() as uow:
        found = await uow.session.get(Split, split_no)
    if found is None:
        return Outcome.UNCHANGED
    service_provider = await deps.channels.is_service_provider(found.channel_account_id)
    async with deps.db.uow() as uow:
        s = uow.session
        moved = await s.execute(
            update(Split)
            .where(Split.split_no == split_no, Split.status == "PENDING")
            .values(status=status, finished_at=now, next_query_at=None, updated_at=now)
        )
        if not moved.rowcount:  # type: ignore[attr-defined]
            return Outcome.UNCHANGED
        split = await s.get(Split, split_no)
        assert split is not None
        await s.refresh(split)
        if status == "FAILED":
            await release(s, split.order_no, split.amount, now)
        _event(deps, s, split, SPLIT_SUCCEEDED if status == "SUCCEEDED" else SPLIT_FAILED, service_provider)
        await uow.commit()
    deps.wake_relay()
    return Outcome.APPLIED


async def _send(deps: PayDeps, order: PayOrder, split: Split, receivers: dict[str, SplitReceiver]) -> ChannelResult:
    """Binds the receivers on the order's account (idempotent), then asks for the split; an adapter bug is an
    unknown outcome (queried later), never a failure."""
    assert order.channel_account_id is not None and order.channel_trade_no is not None
    shares = []
    try:
        channel = await splitter(deps, order.channel_account_id, order.mch_no)
        for share in json.loads(split.shares):
            row = receivers[share["receiver_id"]]
            receiver = ChannelReceiver(row.account, row.account_type, row.name)
            bound = await channel.bind_receiver(receiver)
            if bound.status is not ResultStatus.SUCCESS:
                return bound if bound.status is ResultStatus.FAIL else ChannelResult.unknown(bound.error, "bind")
            shares.append(SplitShare(receiver, share["amount"], share["description"]))
        req = SplitRequest(order.order_no, split.split_no, order.channel_trade_no, tuple(shares))
        return await channel.split(req)
    except Exception:
        log.exception("adapter split failed for %s", split.split_no)
        return ChannelResult.unknown(ErrorClass.MALFORMED, "adapter error")


async def splitter(deps: PayDeps, account_id: str, mch_no: str) -> ProfitSharingChannel:
    """The account's adapter for `mch_no` as a profit-sharing channel (a GuardedAdapter: it refuses with
    SPLIT_NOT_SUPPORTED when the channel has none)."""
    return cast(ProfitSharingChannel, await deps.channels.adapter_for(account_id, mch_no))


# --- the order's reservation ------------------------------------------------------------------------------------


async def _reserve(s: AsyncSession, order: PayOrder, amount: int, now: datetime) -> bool:
    percent = LIMIT_PERCENT.get(order.channel or "")
    conditions = [
        PayOrder.order_no == order.order_no,
        PayOrder.status == OrderStatus.SUCCEEDED.value,
        PayOrder.profit_sharing.is_(True),
        PayOrder.split_finished.is_(False),
        PayOrder.split_reserved + amount <= PayOrder.amount - func.coalesce(PayOrder.fee, 0) - PayOrder.refund_reserved,
    ]
    if percent is not None:
        conditions.append(PayOrder.split_reserved + amount <= order.amount * percent // 100)
    res = await s.execute(
        update(PayOrder)
        .where(*conditions)
        .values(split_reserved=PayOrder.split_reserved + amount, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    return bool(res.rowcount)  # type: ignore[attr-defined]


async def release(s: AsyncSession, order_no: str, amount: int, now: datetime) -> None:
    await s.execute(
        update(PayOrder)
        .where(PayOrder.order_no == order_no, PayOrder.split_reserved >= amount)
        .values(split_reserved=PayOrder.split_reserved - amount, updated_at=now)
        .execution_options(synchronize_session=False)
    )


def _check_splittable(order: PayOrder) -> None:
    if order.status != OrderStatus.SUCCEEDED or not order.profit_sharing or order.split_finished:
        why = (
            "was not made for profit sharing" if not order.profit_sharing
            else "is finished" if order.split_finished else f"is {order.status}"
        )  # fmt: skip
        raise OrderStateConflict(f"order {order.order_no} {why}; only a paid profit-sharing order is split")


def _not_reserved(order: PayOrder | None, amount: int) -> Exception:
    if order is None:
        return OrderNotFound("order not found")
    try:
        _check_splittable(order)
    except OrderStateConflict as exc:
        return exc
    left = order.amount - (order.fee or 0) - order.refund_reserved - order.split_reserved
    percent = LIMIT_PERCENT.get(order.channel or "")
    if percent is not None:
        left = min(left, order.amount * percent // 100 - order.split_reserved)
    return SplitAmountExceeded(f"amount {amount} exceeds what the order can still share ({max(left, 0)})")


# --- rows and views -----------------------------------------------------------------------------------------------


def _new_split(deps: PayDeps, app: AppAuth, order: PayOrder, cmd: SplitCreate, digest: str) -> Split:
    now = deps.clock.now()
    assert order.channel_account_id is not None
    shares = [{"receiver_id": r.receiver_id, "amount": r.amount, "description": r.description} for r in cmd.receivers]
    return Split(
        split_no=deps.ids.next_id("D"), order_no=order.order_no, app_id=app.app_id, mch_no=app.mch_no,
        out_split_no=cmd.out_split_no, request_hash=digest, status="PENDING", amount=cmd.amount,
        shares=json.dumps(shares, ensure_ascii=False), channel_account_id=order.channel_account_id,
        returned_amount=0, query_count=0, next_query_at=now + timedelta(seconds=QUERY_EVERY_S),
        created_at=now, finished_at=None, updated_at=now,
    )  # fmt: skip


async def _by_out_split_no(s: AsyncSession, app_id: str, out_split_no: str) -> Split | None:
    q = select(Split).where(Split.app_id == app_id, Split.out_split_no == out_split_no)
    return (await s.scalars(q)).first()


async def _receivers(s: AsyncSession, mch_no: str, ids: list[str]) -> dict[str, SplitReceiver]:
    q = select(SplitReceiver).where(SplitReceiver.receiver_id.in_(ids), SplitReceiver.mch_no == mch_no)
    return {r.receiver_id: r for r in (await s.scalars(q)).all()}


def split_view(split: Split) -> SplitView:
    shares = [
        SplitShareView(receiver_id=s["receiver_id"], amount=s["amount"], status=split.status)
        for s in json.loads(split.shares)
    ]
    return SplitView(
        split_no=split.split_no, order_no=split.order_no, out_split_no=split.out_split_no, status=split.status,
        amount=split.amount, receivers=shares, created_at=split.created_at, finished_at=split.finished_at,
    )  # fmt: skip


def receiver_view(r: SplitReceiver) -> SplitReceiverView:
    return SplitReceiverView(
        receiver_id=r.receiver_id, channel=r.channel, account=r.account, account_type=r.account_type, name=r.name,
        created_at=r.created_at,
    )  # fmt: skip


def split_facts(deps: PayDeps, split: Split, service_provider: bool, at: datetime) -> dict[str, Any]:
    moment = as_utc(at)
    return {
        "mch_no": split.mch_no, "app_id": split.app_id, "order_no": split.order_no, "split_no": split.split_no,
        "channel_account_id": split.channel_account_id, "amount": split.amount, "service_provider": service_provider,
        "succeeded_at": rfc3339(moment), "business_date": business_date(moment, deps.business_tz),
    }  # fmt: skip


def _event(deps: PayDeps, s: AsyncSession, split: Split, event_type: str, service_provider: bool) -> None:
    facts = None
    if event_type == SPLIT_SUCCEEDED:
        facts = split_facts(deps, split, service_provider, split.finished_at or deps.clock.now())
    add_event(
        s, deps.ids, event_type=event_type, aggregate_type="split", aggregate_id=split.split_no,
        data=split_view(split).model_dump(mode="json"), app_id=split.app_id, facts=facts,
    )  # fmt: skip
