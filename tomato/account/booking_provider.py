"""The shadow ledger of service-provider payments (issue 21): what the platform books when a payment or refund went
through a service-provider account (Alipay "isv", WeChat "partner"; facts `service_provider` true).

The channel settles such a payment straight to the sub-merchant; no funds pass through the platform — and must not
(PBoC's rule against unlicensed secondary clearing, 二清). So the amount and the channel's cost touch no ledger
account: the payment never enters merchant_pending or merchant_available, is never settled and never paid out. The
ledger books only the fee the merchant owes the platform (F payment fee, f fee a refund returns):

- payment: merchant_fee_receivable(mch) +F, platform_fee_income −F            (kind `provider_payment`)
- refund:  platform_fee_income +f, merchant_fee_receivable(mch) −f              (kind `provider_refund`)

They keep the direct journals' source keys (`order`/P…/`payment`, `refund`/R…/`refund`), so an order books one
payment journal whichever way it went, and the same inbox row guards them (`booking.book`).

A fee of 0 books a journal WITHOUT lines (`ledger.post_memo`) rather than the recorded skip the ledger uses for
other zero amounts: the journal carries the source key that makes the payment book once even when announced under
two event ids, the memo below moves once per journal, and `tomato ledger check` finds the SUCCEEDED order's payment
journal (it accepts a lineless journal only for these kinds with a fee of 0).

The memo: what the channel paid the merchant (`collected`, net of refunds) is no account balance — it never was the
platform's money. `provider_balances` keeps it per merchant, moved in the unit of work that posts the journal and
only when the journal is new, so `GET /v1/balance` reads it with one primary-key lookup instead of summing every
journal of the merchant (the journals' `amount` column carries the same figure: `check` compares the two).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from tomato.account import accounts as acct
from tomato.account.booking_facts import BadFacts, business_date, fen, text
from tomato.account.ledger import EntryRequest, Line, Posted, post, post_memo
from tomato.account.models import ProviderBalance
from tomato.core.ids import Snowflake

PROVIDER_PAYMENT = "provider_payment"
PROVIDER_REFUND = "provider_refund"
PROVIDER_KINDS = frozenset({PROVIDER_PAYMENT, PROVIDER_REFUND})


def _lines(mch_no: str, fee: int) -> tuple[Line, ...]:
    """+fee: the merchant owes more (a payment); −fee: it owes less (a refund's returned fee)."""
    if fee == 0:
        return ()
    return (Line(acct.merchant_fee_receivable(mch_no), fee), Line(acct.PLATFORM_FEE_INCOME, -fee))


def payment_entry(facts: dict[str, Any]) -> EntryRequest:
    """The shadow journal of a service-provider payment; `amount` records what the channel paid the merchant."""
    mch_no, order_no = text(facts, "mch_no"), text(facts, "order_no")
    amount, fee = fen(facts, "amount"), fen(facts, "fee")
    if amount == 0 or fee > amount:
        raise BadFacts(f"payment {order_no}: amount {amount} and fee {fee} do not add up")
    return EntryRequest(
        source_type="order",
        source_id=order_no,
        leg="payment",
        kind=PROVIDER_PAYMENT,
        lines=_lines(mch_no, fee),
        business_date=business_date(facts),
        mch_no=mch_no,
        order_no=order_no,
        amount=amount,
        fee=fee,
    )


def refund_entry(facts: dict[str, Any]) -> EntryRequest:
    """The shadow journal of a refund of a service-provider payment: the channel took the money back from the
    merchant; the platform gives back the fee share the refund returns."""
    mch_no, order_no, refund_no = text(facts, "mch_no"), text(facts, "order_no"), text(facts, "refund_no")
    amount, fee_back = fen(facts, "amount"), fen(facts, "fee_returned", default=0)
    if amount == 0 or fee_back > amount:
        raise BadFacts(f"refund {refund_no}: amount {amount} and returned fee {fee_back} do not add up")
    return EntryRequest(
        source_type="refund",
        source_id=refund_no,
        leg="refund",
        kind=PROVIDER_REFUND,
        lines=_lines(mch_no, -fee_back),
        business_date=business_date(facts),
        mch_no=mch_no,
        order_no=order_no,
        refund_no=refund_no,
        amount=-amount,
        fee=-fee_back,
    )


async def post_shadow(session: AsyncSession, ids: Snowflake, now: Any, entry: EntryRequest) -> Posted:
    """Posts a shadow journal in the caller's unit of work and, when it is new (not a replay), moves the merchant's
    memo by its amount."""
    posted = await (post(session, ids, now, entry) if entry.lines else post_memo(session, ids, now, entry))
    if not posted.replayed:
        await _move_memo(session, entry, now)
    return posted


async def _move_memo(session: AsyncSession, entry: EntryRequest, now: Any) -> None:
    assert entry.mch_no is not None and entry.amount is not None
    payments = 1 if entry.kind == PROVIDER_PAYMENT else 0
    dialect = session.bind.dialect.name if session.bind is not None else "sqlite"
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert(ProviderBalance).values(
        mch_no=entry.mch_no, collected=entry.amount, payments=payments, updated_at=now
    )
    conn = await session.connection()
    await conn.execute(
        stmt.on_conflict_do_update(
            index_elements=["mch_no"],
            set_={
                "collected": ProviderBalance.collected + stmt.excluded.collected,
                "payments": ProviderBalance.payments + stmt.excluded.payments,
                "updated_at": stmt.excluded.updated_at,
            },
        )
    )
