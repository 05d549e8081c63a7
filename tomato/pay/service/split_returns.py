"""A refund of a split order first takes its splits back from the receivers (WeChat return-orders, Alipay's royalty
refund): money that left with a split is not the merchant's to refund until it came back.

Every SUCCEEDED split not yet returned is returned in full, share by share, each under a return number of its own
(`<split_no>R<n>`, so a retry after a lost answer repeats the same return); once all its shares are back, the split's
amount leaves the order's reservation and `split.returned` tells the ledger. A share the channel will not give back
stops the refund (`502 CHANNEL_ERROR`, nothing refunded; the merchant may try again). A split still PENDING stops
it too (`409`): its outcome is not known yet. Where the channel has no stand-alone return (Alipay takes split money
back only inside a refund; WeChat only from merchant receivers) the split stays where it is and the refund is
limited to what was not split (`409 REFUND_AMOUNT_EXCEEDED` beyond it).
"""

from __future__ import annotations

import json
import logging

from sqlalchemy import select, update

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
