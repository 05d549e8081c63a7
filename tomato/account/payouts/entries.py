"""The three ledger entries of a payout (docs/finance.md "Payouts"), each booked once by (payout, payout_no, leg).

| leg  | when                         | lines                                                  | merchant view         |
|------|------------------------------|--------------------------------------------------------|-----------------------|
| hold | accepted (POST /v1/payouts)  | merchant_available +P (guarded), payout_in_transit −P  | type payout, −P       |
| post | the bank paid it             | payout_in_transit +P, bank −P                          | none (internal kind)  |
| void | it failed or timed out       | payout_in_transit +P, merchant_available −P            | type payout, +P       |

The void shows to the merchant as a positive `payout` balance transaction: the hold's −P and the void's +P net
to zero, and `available` is back where it was. The post changes no merchant balance, so it has no merchant view.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from tomato.account import accounts
from tomato.account.ledger import EntryRequest, Line, Posted, post
from tomato.account.payouts.models import Payout
from tomato.core.ids import Snowflake

SOURCE = "payout"


def business_date(moment: datetime, tz_name: str) -> str:
    return moment.astimezone(ZoneInfo(tz_name)).date().isoformat()


def _request(p: Payout, leg: str, kind: str, lines: tuple[Line, ...], day: str, amount: int | None) -> EntryRequest:
    return EntryRequest(
        source_type=SOURCE,
        source_id=p.payout_no,
        leg=leg,
        kind=kind,
        lines=lines,
        business_date=day,
        mch_no=p.mch_no,
        payout_no=p.payout_no,
        amount=amount,
        fee=0 if amount is not None else None,
    )


async def hold(s: AsyncSession, ids: Snowflake, now: datetime, tz: str, p: Payout) -> Posted:
    """Raises InsufficientBalance when available is short: the caller's unit of work must roll back."""
    lines = (
        Line(accounts.merchant_available(p.mch_no), p.amount, guard=True),
        Line(accounts.payout_in_transit(p.mch_no), -p.amount),
    )
    return await post(s, ids, now, _request(p, "hold", "payout", lines, business_date(now, tz), -p.amount))


async def post_paid(s: AsyncSession, ids: Snowflake, now: datetime, tz: str, p: Payout) -> Posted:
    lines = (Line(accounts.payout_in_transit(p.mch_no), p.amount), Line(accounts.BANK, -p.amount))
    return await post(s, ids, now, _request(p, "post", "payout_post", lines, business_date(now, tz), None))


async def void(s: AsyncSession, ids: Snowflake, now: datetime, tz: str, p: Payout) -> Posted:
    lines = (
        Line(accounts.payout_in_transit(p.mch_no), p.amount),
        Line(accounts.merchant_available(p.mch_no), -p.amount),
    )
    return await post(s, ids, now, _request(p, "void", "payout", lines, business_date(now, tz), p.amount))
