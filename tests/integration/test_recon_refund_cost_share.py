"""The channel cost a refund returns, as reconciliation reads it (PayService.recon_refunds), is a whole number of fen
on every database: on PostgreSQL `sum(bigint)` is numeric, and without a cast the window total made the share
fractional (11.48 instead of 11), so a partial refund whose share is not exact was a FEE_MISMATCH against the
channel's statement on PostgreSQL only (found by `tomato demo`'s ¥30.00 refund of a ¥128.00 Alipay order)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import insert

from tomato.core.db import Database
from tomato.merchant.fees import refund_fee_total
from tomato.pay.models import PayOrder, Refund
from tomato.pay.service import PayService

ACCOUNT = "CA-share"
AMOUNT, COST = 12_800, 49  # 0.38 % of ¥128.00, half up


def _order(paid_at: datetime) -> dict[str, Any]:
    return {
        "order_no": "P900001", "app_id": "A1", "mch_no": "M1", "out_trade_no": "O1", "request_hash": "0" * 64,
        "status": "SUCCEEDED", "paid_after_close": False, "amount": AMOUNT, "currency": "CNY", "subject": "s",
        "pay_method": "ALIPAY_QR", "channel": "alipay", "channel_account_id": ACCOUNT, "channel_trade_no": "T1",
        "metadata_json": "{}", "refunded_amount": 7_000, "refund_status": "PARTIAL", "refund_reserved": 0,
        "refund_count": 2, "expire_at": paid_at + timedelta(hours=1), "paid_at": paid_at, "query_count": 0,
        "close_failures": 0, "version": 4, "created_at": paid_at, "updated_at": paid_at, "fee_ppm": 6_000, "fee": 77,
        "refund_fee_rule": "proportional", "channel_cost_ppm": 3_800, "channel_cost": COST, "fee_returned_total": 0,
    }  # fmt: skip


def _refund(refund_no: str, amount: int, at: datetime) -> dict[str, Any]:
    return {
        "refund_no": refund_no, "order_no": "P900001", "app_id": "A1", "mch_no": "M1", "out_refund_no": refund_no,
        "request_hash": "0" * 64, "amount": amount, "status": "SUCCEEDED", "channel": "alipay",
        "channel_account_id": ACCOUNT, "channel_refund_no": None, "failure_reason": None, "reason": None,
        "notify_url": None, "accepted_at": at, "query_count": 0, "next_query_at": None, "created_at": at,
        "succeeded_at": at, "finished_at": at, "fee_returned": None, "updated_at": at,
    }  # fmt: skip


async def test_each_refund_returns_a_whole_fen_share_of_the_channel_cost(db: Database) -> None:
    paid = datetime(2026, 11, 2, 2, 0, tzinfo=UTC)
    async with db.engine.begin() as conn:
        await conn.execute(insert(PayOrder.__table__), [_order(paid)])
        await conn.execute(insert(Refund.__table__), [_refund("R1", 3_000, paid + timedelta(minutes=5)),
                                                      _refund("R2", 4_000, paid + timedelta(minutes=9))])  # fmt: skip
        rows = (await conn.execute(PayService.recon_refunds(ACCOUNT, paid, paid + timedelta(hours=1)))).all()
    shares = {r.ref: r.fee for r in sorted(rows, key=lambda r: r.ref)}
    # what the channel's statement says: the difference of the running totals (2·C·R + A) // (2·A)
    first = refund_fee_total(AMOUNT, COST, 3_000)
    assert (first, refund_fee_total(AMOUNT, COST, 7_000)) == (11, 27)
    assert shares == {"R1": first, "R2": 27 - first}
    assert all(type(fee) is int for fee in shares.values()), shares
