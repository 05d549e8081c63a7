"""A refund of a split order first takes its splits back from the receivers (WeChat return-orders, Alipay's royalty
refund): money that left with a split is not the merchant's to refund until it came back.

Every SUCCEEDED split not yet returned is returned in full, share by share, each under a return number of its own
(`<split_no>R<n>`, so a retry after a lost answer repeats the same return); once all its shares are back, the split's
amount leaves the order's reservation and `split.returned` tells the ledger. A share the channel will not give back
stops the refund (`502 CHANNEL_ERROR`, nothing refunded; the merchant may try again). A split still PENDING stops
it too (`409`): its outcome is not known yet. Alipay has no stand-alone return: its splits ride on the refund itself
(`refund_royalty_parameters`, `carry_with_refund`), booked as returned when the refund succeeds and the receivers'
again if it fails. WeChat returns from merchant receivers only: a split with a personal receiver stays where it is
and the refund is limited to what was not split (`409 REFUND_AMOUNT_EXCEEDED` beyond it).
"""

from __future__ import annotations

import json
import logging
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from tomato.channel.protocol import ResultStatus, SplitReturnRequest
from tomato.channel.protocol import SplitReceiver as ChannelReceiver
from tomato.core.errors import ChannelError
from tomato.core.outbox import add_event
from tomato.pay.errors import OrderStateConflict
from tomato.pay.events import SPLIT_RETURNED
from tomato.pay.models import PayOrder
from tomato.pay.service.deps import PayDeps
from tomato.pay.service.splits import release, split_facts, split_view, splitter
from tomato.pay.split_models import Split, SplitReceiver

log = logging.getLogger(__name__)
# the channel cannot take this share back outside a refund: the split stays, the refund covers the rest only
NO_STANDALONE_RETURN = frozenset({"RETURN_WITH_REFUND", "SPLIT_RETURN_NOT_SUPPORTED", "SPLIT_NOT_SUPPORTED"})


async def return_splits_before_refund(deps: PayDeps, order: PayOrder) -> None:
    if not order.profit_sharing or order.split_reserved == 0:
        return
    async with deps.db.uow() as uow:
        q = select(Split).where(Split.order_no == order.order_no, Split.status.in_(("PENDING", "SUCCEEDED")))
        splits = list((await uow.session.scalars(q)).all())
    if any(s.status == "PENDING" for s in splits):
        raise OrderStateConflict(f"a split of order {order.order_no} is in progress; refund once it is final")
    for split in splits:
        if split.returned_amount < split.amount:
            await _return(deps, order, split)


async def _return(deps: PayDeps, order: PayOrder, split: Split) -> None:
    assert order.channel_trade_no is not None
    shares = json.loads(split.shares)
    async with deps.db.uow() as uow:
        q = select(SplitReceiver).where(SplitReceiver.receiver_id.in_([s["receiver_id"] for s in shares]))
        receivers = {r.receiver_id: r for r in (await uow.session.scalars(q)).all()}
    if not _returnable(order.channel, [receivers[s["receiver_id"]] for s in shares]):
        log.info("split %s stays with its receivers: the channel cannot return it on its own", split.split_no)
        return
    channel = await splitter(deps, split.channel_account_id, split.mch_no)
    for n, share in enumerate(shares):
        row = receivers[share["receiver_id"]]
        req = SplitReturnRequest(
            order.order_no, split.split_no, f"{split.split_no}R{n}", order.channel_trade_no,
            ChannelReceiver(row.account, row.account_type, row.name), share["amount"], "refund",
        )  # fmt: skip
        result = await channel.return_split(req)
        if result.status is ResultStatus.FAIL and result.code in NO_STANDALONE_RETURN:
            log.info("split %s: the channel cannot return share %s on its own (%s)", split.split_no, n, result.code)
            return
        if result.status is not ResultStatus.SUCCESS:
            log.warning("split %s: share %s not returned (%s %s)", split.split_no, n, result.status, result.code)
            raise ChannelError(f"the channel did not return split {split.split_no} ({result.code or result.status})")
    service_provider = await deps.channels.is_service_provider(split.channel_account_id)
    now = deps.clock.now()
    async with deps.db.uow() as uow:
        s = uow.session
        moved = await s.execute(
            update(Split)
            .where(Split.split_no == split.split_no, Split.returned_amount < Split.amount)
            .values(returned_amount=Split.amount, updated_at=now)
        )
        if moved.rowcount:  # type: ignore[attr-defined]
            await release(s, split.order_no, split.amount, now)
            facts = split_facts(deps, split, service_provider, now)
            facts.update(return_no=f"{split.split_no}R", returned_at=facts.pop("succeeded_at"))
            add_event(
                s, deps.ids, event_type=SPLIT_RETURNED, aggregate_type="split", aggregate_id=split.split_no,
                data=split_view(split).model_dump(mode="json"), app_id=split.app_id, facts=facts,
            )  # fmt: skip
        await uow.commit()
    deps.wake_relay()


def _returnable(channel: str | None, receivers: list[SplitReceiver]) -> bool:
    """Whether every share can be taken back outside a refund: WeChat returns from merchant receivers only; Alipay
    has no stand-alone return (it takes split money back inside a refund)."""
    return channel == "wechat" and all(r.account_type == "MERCHANT" for r in receivers)


# --- Alipay: split money comes back inside the refund ------------------------------------------------------------


async def carry_with_refund(s: AsyncSession, order: PayOrder, refund_no: str, now: datetime) -> int:
    """In the refund's unit of work, before its reservation: an Alipay order's SUCCEEDED splits not yet returned ride
    on the refund (`refund_royalty_parameters`); their amount leaves the split reservation, so the refund may cover
    it. Returns that amount (0: nothing carried); `settle_carried` books or undoes it when the refund ends."""
    if not order.profit_sharing or order.split_reserved == 0 or order.channel != "alipay":
        return 0
    q = select(Split).where(
        Split.order_no == order.order_no,
        Split.status == "SUCCEEDED",
        Split.returned_amount < Split.amount,
        Split.return_refund_no.is_(None),
    )
    carried = 0
    for split in (await s.scalars(q)).all():
        moved = await s.execute(
            update(Split)
            .where(Split.split_no == split.split_no, Split.return_refund_no.is_(None))
            .values(return_refund_no=refund_no, returned_amount=Split.amount, updated_at=now)
        )
        if moved.rowcount:  # type: ignore[attr-defined]
            carried += split.amount
    if carried:
        await release(s, order.order_no, carried, now)
    return carried


async def carried_returns(deps: PayDeps, refund_no: str, order: PayOrder) -> tuple[SplitReturnRequest, ...]:
    """The receivers' returns the refund carries, share by share (for the refund request, first send or resend)."""
    async with deps.db.uow() as uow:
        q = select(Split).where(Split.return_refund_no == refund_no).order_by(Split.split_no)
        splits = list((await uow.session.scalars(q)).all())
        ids = [share["receiver_id"] for split in splits for share in json.loads(split.shares)]
        rq = select(SplitReceiver).where(SplitReceiver.receiver_id.in_(ids))
        receivers = {r.receiver_id: r for r in (await uow.session.scalars(rq)).all()} if ids else {}
    returns = []
    for split in splits:
        for n, share in enumerate(json.loads(split.shares)):
            row = receivers[share["receiver_id"]]
            returns.append(
                SplitReturnRequest(
                    order.order_no, split.split_no, f"{split.split_no}R{n}", order.channel_trade_no or "",
                    ChannelReceiver(row.account, row.account_type, row.name), share["amount"], share["description"],
                )  # fmt: skip
            )
    return tuple(returns)


async def settle_carried(deps: PayDeps, s: AsyncSession, refund_no: str, succeeded: bool, now: datetime) -> None:
    """In the refund's final unit of work: SUCCEEDED — the carried splits came back (`split.returned` for the
    ledger); FAILED — they did not: they are the receivers' again and the order's split reservation holds them."""
    q = select(Split).where(Split.return_refund_no == refund_no)
    for split in (await s.scalars(q)).all():
        if succeeded:
            facts = split_facts(deps, split, False, now)
            facts.update(return_no=refund_no, returned_at=facts.pop("succeeded_at"))
            add_event(
                s, deps.ids, event_type=SPLIT_RETURNED, aggregate_type="split", aggregate_id=split.split_no,
                data=split_view(split).model_dump(mode="json"), app_id=split.app_id, facts=facts,
            )  # fmt: skip
            continue
        await s.execute(
            update(Split)
            .where(Split.split_no == split.split_no, Split.return_refund_no == refund_no)
            .values(return_refund_no=None, returned_amount=0, updated_at=now)
        )
        await s.execute(
            update(PayOrder)
            .where(PayOrder.order_no == split.order_no)
            .values(split_reserved=PayOrder.split_reserved + split.amount, updated_at=now)
        )
