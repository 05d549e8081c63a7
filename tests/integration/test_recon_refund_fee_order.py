"""The channel cost a refund gives back, as reconciliation expects it: pro rata and cumulative over the order's
refunds in the order they were made — as channels return it (the simulator's `refund_fee`) — not in the order we
learnt of their success. Found by the chaos run: a refund whose answer timed out was confirmed after a later
refund of the same order, and the two expected shares came out swapped (FEE_MISMATCH 10/11 against 11/10)."""

from __future__ import annotations

from datetime import timedelta

from tests.integration.test_writebatch import NOW, insert, new_order
from tomato.channel.sandbox.state import SimRefund, SimTrade, TradeState, refund_fee
from tomato.core.db import Database
from tomato.pay import repository as repo
from tomato.pay.models import Refund

PPM = 3_800


def _refund(refund_no: str, amount: int, made: int, succeeded: int) -> Refund:
    return Refund(
        refund_no=refund_no, order_no="PF1", app_id="A1", mch_no="M1", out_refund_no=refund_no, request_hash="h",
        amount=amount, status="SUCCEEDED", channel="wechat", channel_account_id="CA1", query_count=0,
        created_at=NOW + timedelta(seconds=made), succeeded_at=NOW + timedelta(seconds=succeeded),
        updated_at=NOW + timedelta(seconds=succeeded),
    )  # fmt: skip


async def test_refund_shares_follow_the_order_the_refunds_were_made_in(db: Database) -> None:
    order = new_order("PF1")
    order.amount, order.status, order.channel_account_id = 5500, "SUCCEEDED", "CA1"
    order.channel_cost = (5500 * PPM + 500_000) // 1_000_000  # 21: what the channel charged for the payment
    await insert(db, order)
    async with db.uow() as uow:  # R1 made first but confirmed last (its answer timed out), R2 made and confirmed
        uow.session.add_all([_refund("R1", 2750, made=0, succeeded=90), _refund("R2", 2750, made=5, succeeded=6)])
        await uow.commit()
    async with db.uow() as uow:
        rows = (await uow.session.execute(repo.succeeded_refunds_query("CA1", NOW, NOW + timedelta(days=1)))).all()
    ours = {r.ref: r.fee for r in rows}
    trade = SimTrade(channel="wechat", merchant_id="M", out_trade_no="PF1", channel_trade_no="T", amount=5500,
                     subject="s", notify_url="", created_at=NOW, state=TradeState.PAID)  # fmt: skip
    trade.refunds = {"R1": SimRefund("R1", 2750, NOW), "R2": SimRefund("R2", 2750, NOW + timedelta(seconds=5))}
    theirs = {no: refund_fee(trade, no, PPM) for no in ("R1", "R2")}
    assert theirs["R1"] != theirs["R2"]  # the rounding falls on one of them: the order matters
    assert ours == theirs
