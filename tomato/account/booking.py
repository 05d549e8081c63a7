"""Booking what pay and reconciliation announced: `pay.succeeded`, `refund.succeeded`, `pay.anomaly`, the
`split.*` (entries in `booking_splits`) and `reconciliation.*` outbox events (entries in `booking_reconciliation`)
become journals.

Each event is booked in one unit of work together with its inbox row (`ledger_booked_events`, keyed by the event
id, inserted first) and the consumer's cursor, so an event handed over twice — or ten times at once — books once:
the first insert of the inbox row wins and a twin waits on it, then finds it and does nothing. The journal's own
source key (`order`/`refund`/`anomaly` id) is a second guard: an event announcing something already booked under
another event id books nothing either ("duplicate").

The journals (docs/finance.md, the ledger's entries; A amount, F fee, C channel cost, ca the channel account):

- payment: channel_receivable(ca) +(A−C), channel_fee_expense(ca) +C, merchant_pending −(A−F), platform_fee_income −F
- refund R returning fee f, the channel giving back its cost c: merchant_pending +(R−f) as far as pending covers it
  (read, then guarded: a settlement that lowered pending meanwhile makes the unit of work retry), the rest
  merchant_available, UNGUARDED — the money has already left at the channel, so the ledger records it even if
  available goes negative (`tomato ledger check` warns about negative merchant balances); platform_fee_income +f;
  channel_receivable(ca) −(R−c); channel_fee_expense(ca) −c
- anomaly, money in for no order (amount_mismatch, second_payment, paid_after_failed): channel_receivable(ca) +M,
  suspense −M; money out for no refund (refund_amount_mismatch, refund_succeeded_after_failed): suspense +M,
  channel_receivable(ca) −M. Other kinds moved no money the ledger does not already book (paid_after_close is
  booked as the order's payment) and are recorded as skipped.
- split X (`split.succeeded`): merchant_pending +X as far as pending covers it (guarded, like a refund), the rest
  merchant_available; channel_receivable(ca) −X. Its return (`split.returned`): channel_receivable(ca) +X,
  merchant_pending −X (`booking_splits` says why pending).

A payment or refund whose facts say `service_provider` (the channel settled it straight to the merchant) books the
shadow journal of `booking_provider` instead: only the fee the merchant owes, never the amount. Such a split or
split return books a journal without lines (`booking_splits`).

Everything comes from the event's `facts` (the pay context writes them on the outbox row); the account context never
reads pay's tables. An event without facts (written before facts existed) is logged, recorded as skipped and
counted; facts that do not make a journal are recorded as rejected.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from tomato.account import accounts as acct
from tomato.account import booking_provider as provider
from tomato.account import booking_splits as splits
from tomato.account.booking_facts import BadFacts as BadFacts  # re-exported: the consumer catches it
from tomato.account.booking_facts import business_date as _date
from tomato.account.booking_facts import fen as _fen
from tomato.account.booking_facts import service_provider
from tomato.account.booking_facts import text as _text
from tomato.account.booking_reconciliation import BUILDERS as RECONCILIATION_BUILDERS
from tomato.account.ledger import EntryRequest, Line, post, post_memo
from tomato.account.models import Balance, BookedEvent, BookingCursor, Journal
from tomato.core.ids import Snowflake
from tomato.pay.events import PAY_ANOMALY, PAY_SUCCEEDED, REFUND_SUCCEEDED, SPLIT_RETURNED, SPLIT_SUCCEEDED

BOOKED_EVENTS = (
    PAY_SUCCEEDED, REFUND_SUCCEEDED, PAY_ANOMALY, SPLIT_SUCCEEDED, SPLIT_RETURNED, *RECONCILIATION_BUILDERS,
)  # fmt: skip

# anomaly kinds (tomato.pay.service.anomalies callers) by the way money moved at the channel
MONEY_IN_ANOMALIES = frozenset({"amount_mismatch", "second_payment", "paid_after_failed"})
MONEY_OUT_ANOMALIES = frozenset({"refund_amount_mismatch", "refund_succeeded_after_failed"})


@dataclass(frozen=True)
class Event:
    """What booking reads of an outbox row."""

    id: str
    type: str
    aggregate_id: str
    position: int | None
    facts: str | None


@dataclass(frozen=True)
class Booked:
    outcome: str  # booked | duplicate | skipped | rejected | seen (the inbox already had it: nothing done)
    journal_id: str | None = None
    note: str | None = None


# --- facts → journal -------------------------------------------------------------------------------------------


def _nonzero(*lines: Line) -> tuple[Line, ...]:
    return tuple(line for line in lines if line.amount != 0)


def payment_entry(facts: dict[str, Any]) -> EntryRequest:
    mch_no, order_no, ca = _text(facts, "mch_no"), _text(facts, "order_no"), _text(facts, "channel_account_id", 60)
    amount, fee, cost = _fen(facts, "amount"), _fen(facts, "fee"), _fen(facts, "channel_cost", default=0)
    if amount == 0 or fee > amount or cost > amount:
        raise BadFacts(f"payment {order_no}: amount {amount}, fee {fee}, channel cost {cost} do not add up")
    return EntryRequest(
        source_type="order",
        source_id=order_no,
        leg="payment",
        kind="payment",
        lines=_nonzero(
            Line(acct.channel_receivable(ca), amount - cost),
            Line(acct.channel_fee_expense(ca), cost),
            Line(acct.merchant_pending(mch_no), -(amount - fee)),
            Line(acct.PLATFORM_FEE_INCOME, -fee),
        ),
        business_date=_date(facts),
        mch_no=mch_no,
        order_no=order_no,
        amount=amount,
        fee=fee,
    )


def refund_entry(facts: dict[str, Any], pending: int) -> EntryRequest:
    """`pending` is the merchant's pending balance (normal side) as read in the booking unit of work."""
    mch_no, order_no, ca = _text(facts, "mch_no"), _text(facts, "order_no"), _text(facts, "channel_account_id", 60)
    refund_no = _text(facts, "refund_no")
    amount, fee_back = _fen(facts, "amount"), _fen(facts, "fee_returned", default=0)
    cost_back = _fen(facts, "channel_cost_returned", default=0)
    if amount == 0 or fee_back > amount or cost_back > amount:
        raise BadFacts(f"refund {refund_no}: amount {amount}, returned fee {fee_back} and channel cost {cost_back} "
                       "do not add up")  # fmt: skip
    owed = amount - fee_back  # what leaves the merchant
    from_pending = min(max(pending, 0), owed)
    return EntryRequest(
        source_type="refund",
        source_id=refund_no,
        leg="refund",
        kind="refund",
        lines=_nonzero(
            Line(acct.merchant_pending(mch_no), from_pending, guard=True),
            Line(acct.merchant_available(mch_no), owed - from_pending),
            Line(acct.PLATFORM_FEE_INCOME, fee_back),
            Line(acct.channel_receivable(ca), -(amount - cost_back)),
            Line(acct.channel_fee_expense(ca), -cost_back),
        ),
        business_date=_date(facts),
        mch_no=mch_no,
        order_no=order_no,
        refund_no=refund_no,
        amount=-amount,
        fee=-fee_back,
    )


def anomaly_entry(facts: dict[str, Any], anomaly_id: str) -> EntryRequest | None:
    """The suspense journal of an anomaly, or None when its kind moved no money the ledger must hold."""
    kind = facts.get("kind")
    if kind in MONEY_IN_ANOMALIES:
        sign = 1
    elif kind in MONEY_OUT_ANOMALIES:
        sign = -1
    else:
        return None
    if facts.get("amount") is None or facts.get("channel_account_id") is None:
        return None  # the channel named no amount or account: nothing to book, finance works from the anomaly
    amount, ca = _fen(facts, "amount"), _text(facts, "channel_account_id", 60)
    if amount == 0:
        return None
    order_no = facts.get("order_no") if isinstance(facts.get("order_no"), str) else None
    refund_no = facts.get("refund_no") if isinstance(facts.get("refund_no"), str) else None
    mch_no = facts.get("mch_no") if isinstance(facts.get("mch_no"), str) else None
    return EntryRequest(
        source_type="anomaly",
        source_id=anomaly_id,
        leg="suspense",
        kind="anomaly",
        lines=(Line(acct.channel_receivable(ca), sign * amount), Line(acct.SUSPENSE, -sign * amount)),
        business_date=_date(facts),
        mch_no=mch_no,
        order_no=order_no,
        refund_no=refund_no,
        amount=sign * amount,
        fee=0,
    )


# --- one event in the caller's unit of work ---------------------------------------------------------------------


async def _run(session: AsyncSession, stmt: Any) -> Any:
    """Core execution on the session's connection: the ORM adds only CPU to these statements."""
    conn = await session.connection()
    return await conn.execute(stmt)


def _insert(session: AsyncSession, table: Any) -> Any:
    dialect = session.bind.dialect.name if session.bind is not None else "sqlite"
    return postgresql.insert(table) if dialect == "postgresql" else sqlite.insert(table)


async def claim(session: AsyncSession, event: Event, now: Any) -> bool:
    """Inserts the event's inbox row; False when it is already there (a twin waits here until the first commits)."""
    inserted = await _run(
        session,
        _insert(session, BookedEvent)
        .values(event_id=event.id, event_type=event.type, position=event.position, outcome="pending", booked_at=now)
        .on_conflict_do_nothing(index_elements=["event_id"])
        .returning(BookedEvent.event_id),
    )
    return inserted.scalar_one_or_none() is not None


async def record(session: AsyncSession, event: Event, result: Booked) -> None:
    await _run(
        session,
        update(BookedEvent)
        .where(BookedEvent.event_id == event.id)
        .values(outcome=result.outcome, journal_id=result.journal_id, note=(result.note or None) and result.note[:500]),
    )


async def _pending_of(session: AsyncSession, mch_no: str) -> int:
    account = acct.merchant_pending(mch_no)
    raw = (
        await _run(session, select(Balance.balance).where(Balance.account == account, Balance.bucket == 0))
    ).scalar_one_or_none()
    return acct.normal_balance(account, int(raw or 0))


def parse_facts(event: Event) -> dict[str, Any] | None:
    if event.facts is None:
        return None
    try:
        facts = json.loads(event.facts)
    except ValueError as exc:
        raise BadFacts("facts are not JSON") from exc
    if not isinstance(facts, dict):
        raise BadFacts("facts are not an object")
    return facts


async def entry_for(session: AsyncSession, event: Event, facts: dict[str, Any]) -> EntryRequest | None:
    if event.type == PAY_SUCCEEDED:
        return provider.payment_entry(facts) if service_provider(facts) else payment_entry(facts)
    if event.type == REFUND_SUCCEEDED:
        if service_provider(facts):
            return provider.refund_entry(facts)
        return refund_entry(facts, await _pending_of(session, _text(facts, "mch_no")))
    if event.type == SPLIT_SUCCEEDED:
        pending = 0 if service_provider(facts) else await _pending_of(session, _text(facts, "mch_no"))
        return splits.split_entry(facts, pending)
    if event.type == SPLIT_RETURNED:
        return splits.return_entry(facts)
    if event.type == PAY_ANOMALY:
        given = facts.get("anomaly_id")
        return anomaly_entry(facts, given if isinstance(given, str) and given else event.aggregate_id)
    builder = RECONCILIATION_BUILDERS.get(event.type)
    if builder is None:
        return None
    try:
        return builder(facts)
    except (KeyError, TypeError, ValueError) as exc:
        raise BadFacts(f"{event.type}: {exc!r}") from exc


async def book(session: AsyncSession, ids: Snowflake, now: Any, event: Event) -> Booked:
    """Books `event` in the caller's unit of work (never commits). Raises BadFacts / LedgerConflict /
    InsufficientBalance for the caller to roll back; `seen` when the inbox already has the event."""
    if not await claim(session, event, now):
        return Booked("seen")
    facts = parse_facts(event)
    if facts is None:
        result = Booked("skipped", note="the event carries no booking facts (written before facts existed)")
    else:
        entry = await entry_for(session, event, facts)
        if entry is None:
            result = Booked("skipped", note=f"{event.type} of kind {facts.get('kind')!r} moves no money to book")
        else:
            existing = (
                await _run(
                    session,
                    select(Journal.id).where(
                        Journal.source_type == entry.source_type,
                        Journal.source_id == entry.source_id,
                        Journal.leg == entry.leg,
                    ),
                )
            ).scalar_one_or_none()
            if existing is not None:
                result = Booked("duplicate", existing, f"{entry.source_type} {entry.source_id} was booked already")
            else:
                if entry.kind in provider.PROVIDER_KINDS:
                    posted = await provider.post_shadow(session, ids, now, entry)
                elif not entry.lines:  # a service-provider split: booked once, moves nothing
                    posted = await post_memo(session, ids, now, entry)
                else:
                    posted = await post(session, ids, now, entry)
                result = Booked("duplicate" if posted.replayed else "booked", posted.journal_id)
    await record(session, event, result)
    return result


async def reject(session: AsyncSession, event: Event, now: Any, note: str) -> None:
    """Records an event that cannot be booked (its own unit of work, after the booking one rolled back)."""
    if await claim(session, event, now):
        await record(session, event, Booked("rejected", note=note))


async def ensure_cursor(session: AsyncSession, name: str, now: Any) -> int:
    """The cursor's position, creating it at 0 when missing."""
    position = (
        await _run(session, select(BookingCursor.position).where(BookingCursor.name == name))
    ).scalar_one_or_none()
    if position is not None:
        return int(position)
    await _run(
        session,
        _insert(session, BookingCursor)
        .values(name=name, position=0, updated_at=now)
        .on_conflict_do_nothing(index_elements=["name"]),
    )
    return 0


async def move_cursor(session: AsyncSession, name: str, position: int, now: Any) -> None:
    """Forward only: a consumer never moves back over what it recorded."""
    await _run(
        session,
        update(BookingCursor)
        .where(BookingCursor.name == name, BookingCursor.position < position)
        .values(position=position, updated_at=now),
    )
