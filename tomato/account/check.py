"""`tomato ledger check`: every invariant of the ledger, each violation named.

Violations (the command exits 1):
- a journal whose lines do not sum to 0, a journal without lines (except the shadow journal of a service-provider
  payment or refund whose fee is 0, account.booking_provider, and a service-provider split or split return,
  account.booking_splits), a line without its journal;
- a balance row (account, bucket) that differs from Σ of its lines, or lines with no balance row;
- Σ of all balances ≠ 0 (the trial balance);
- a source key (source_type, source_id, leg) booked more than once; an order with more than one payment journal,
  a refund with more than one refund journal;
- an order whose refund journals take back more than its payment journal paid (or refunds without a payment), or
  with both direct and service-provider (shadow) journals; a payment journal is either kind, `payment` or
  `provider_payment`, so a SUCCEEDED service-provider order is booked by its shadow journal;
- a split whose returns give back more than it took, a split return without its split, or an order whose splits
  (net of returns) exceed what its payment journal paid or that has splits but no payment journal;
- a merchant's service-provider memo (`provider_balances`) that differs from Σ of its shadow journals;
- a merchant whose payout_in_transit balance differs from Σ of its payout holds not yet posted or voided, or from Σ
  of its PENDING payouts (read through the payout service);
- a SUCCEEDED order (read through the pay service) without exactly one payment journal of its amount, or a payment
  journal for an order that is not SUCCEEDED. An order paid less than `grace` ago and not booked yet is a warning:
  the booking consumer books within seconds.
Warnings (reported, exit 0): a merchant balance below zero (a refund booked after the money left — booking takes
what pending cannot cover from available, unguarded), events the booking consumer skipped or rejected.

`alert_violations` logs each violation at ERROR with the ids it names (journal, account, order…): the CLI and the
scheduler's hourly `account.ledger_check` job call it, the job's count feeds `tomato_ledger_check_violations`.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from tomato.account import accounts as acct
from tomato.account.booking_provider import PROVIDER_KINDS, PROVIDER_PAYMENT, PROVIDER_REFUND
from tomato.account.booking_splits import MEMO_KINDS as SPLIT_MEMO_KINDS
from tomato.account.booking_splits import SOURCE_TYPE as SPLIT_SOURCE
from tomato.account.models import Balance, BookedEvent, Journal, Line, ProviderBalance
from tomato.core.alerts import LEDGER_CHECK_VIOLATION, LEDGER_CHECK_VIOLATIONS, alert, measure
from tomato.core.clock import as_utc
from tomato.core.db import Database
from tomato.pay.schemas import SucceededOrder

log = logging.getLogger(__name__)
OrderSource = Callable[[str | None, int], Awaitable[list[SucceededOrder]]]
PendingPayouts = Callable[[], Awaitable[dict[str, int]]]
PAYMENT_KINDS = frozenset({"payment", PROVIDER_PAYMENT})  # an order's payment, booked directly or as a shadow
REFUND_KINDS = frozenset({"refund", PROVIDER_REFUND})
MERCHANT_TYPES = frozenset(
    {acct.AccountType.MERCHANT_PENDING, acct.AccountType.MERCHANT_AVAILABLE, acct.AccountType.MERCHANT_RESERVE}
)


@dataclass
class CheckReport:
    violations: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    ids: list[dict[str, str]] = field(default_factory=list)  # per violation: the journal, account, order… it names

    @property
    def ok(self) -> bool:
        return not self.violations

    def violation(self, text: str, **ids: str) -> None:
        self.violations.append(text)
        self.ids.append(ids)


def alert_violations(report: CheckReport) -> None:
    """One ERROR line per violation with the ids it names, and the count for `tomato_ledger_check_violations`."""
    for i, text in enumerate(report.violations):
        ids = report.ids[i] if i < len(report.ids) else {}
        alert(log, LEDGER_CHECK_VIOLATION, f"ledger check: {text}", **ids)
    measure(LEDGER_CHECK_VIOLATIONS, len(report.violations))


async def check_ledger(
    db: Database,
    orders: OrderSource,
    now: datetime,
    *,
    pending_payouts: PendingPayouts | None = None,
    grace: timedelta = timedelta(seconds=60),
) -> CheckReport:
    """`orders` pages SUCCEEDED orders (PayService.succeeded_orders); `pending_payouts` answers Σ PENDING payouts per
    merchant (PayoutService.pending_by_merchant), which each payout_in_transit balance must equal."""
    report = CheckReport()
    async with db.uow() as uow:
        s = uow.session
        await _journals_balance(s, report)
        await _balances_match_lines(s, report)
        await _unique_sources(s, report)
        paid = await _refunds_within_payments(s, report)
        await _splits_within_payments(s, report, paid)
        await _provider_memos(s, report)
        in_transit = await _payouts_in_transit(s, report)
        await _booking_outcomes(s, report)
    await _succeeded_orders_booked(orders, paid, now, grace, report)
    if pending_payouts is not None:
        pending = await pending_payouts()
        for mch_no in sorted(set(pending) | {a.split(":", 1)[1] for a in in_transit}):
            account = acct.payout_in_transit(mch_no)
            if in_transit.get(account, 0) != pending.get(mch_no, 0):
                report.violation(
                    f"{account} is {in_transit.get(account, 0)}, but the merchant's PENDING payouts sum to "
                    f"{pending.get(mch_no, 0)}",
                    account=account, mch_no=mch_no,
                )
    return report


async def _journals_balance(s: AsyncSession, report: CheckReport) -> None:
    rows = await s.execute(
        select(Line.journal_id, func.sum(Line.amount)).group_by(Line.journal_id).having(func.sum(Line.amount) != 0)
    )
    for journal_id, total in rows.all():
        report.violation(
            f"journal {journal_id} does not balance: its lines sum to {int(total)}", journal_id=str(journal_id)
        )
    lineless = await s.execute(
        select(Journal.id)
        .where(~select(Line.id).where(Line.journal_id == Journal.id).exists())
        .where(~(Journal.kind.in_(list(PROVIDER_KINDS)) & (func.coalesce(Journal.fee, 0) == 0)))  # memo journals
        .where(Journal.kind.not_in(list(SPLIT_MEMO_KINDS)))
        .order_by(Journal.id)
    )
    for (journal_id,) in lineless.all():
        report.violation(f"journal {journal_id} has no lines", journal_id=str(journal_id))
    orphans = await s.execute(
        select(Line.journal_id)
        .where(~select(Journal.id).where(Journal.id == Line.journal_id).exists())
        .group_by(Line.journal_id)
    )
    for (journal_id,) in orphans.all():
        report.violation(f"lines of journal {journal_id}, which does not exist", journal_id=str(journal_id))


async def _balances_match_lines(s: AsyncSession, report: CheckReport) -> None:
    sums = {
        (r.account, int(r.bucket)): int(r.total)
        for r in (
            await s.execute(
                select(Line.account, Line.bucket, func.sum(Line.amount).label("total")).group_by(
                    Line.account, Line.bucket
                )
            )
        ).all()
    }
    rows = {(r.account, int(r.bucket)): int(r.balance) for r in (await s.execute(select(Balance))).scalars()}
    for key in sorted(set(sums) | set(rows)):
        stored, expected = rows.get(key), sums.get(key, 0)
        if stored is None:
            report.violation(
                f"balance of {key[0]} bucket {key[1]} is missing; its lines sum to {expected}",
                account=key[0], bucket=str(key[1]),
            )
        elif stored != expected:
            report.violation(
                f"balance of {key[0]} bucket {key[1]} is {stored}, but its lines sum to {expected}",
                account=key[0], bucket=str(key[1]),
            )
    total = sum(rows.values())
    if total != 0:
        report.violation(f"trial balance: Σ of all balances is {total}, not 0")
    per_account: dict[str, int] = defaultdict(int)
    for (account, _), raw in rows.items():
        per_account[account] += raw
    for account, raw in sorted(per_account.items()):
        try:
            kind = acct.account_type(account)
        except ValueError:
            report.violation(f"account {account} is outside the chart of accounts", account=account)
            continue
        if kind in MERCHANT_TYPES and acct.normal_balance(account, raw) < 0:
            report.warnings.append(f"{account} is negative: {acct.normal_balance(account, raw)}")


async def _unique_sources(s: AsyncSession, report: CheckReport) -> None:
    dupes = await s.execute(
        select(Journal.source_type, Journal.source_id, Journal.leg, func.count())
        .group_by(Journal.source_type, Journal.source_id, Journal.leg)
        .having(func.count() > 1)
    )
    for source_type, source_id, leg, n in dupes.all():
        report.violation(
            f"source {source_type} {source_id} leg {leg} is booked {n} times",
            source_type=str(source_type), source_id=str(source_id), leg=str(leg),
        )
    for kinds, column, what, kind in (
        (PAYMENT_KINDS, Journal.order_no, "order", "payment"),
        (REFUND_KINDS, Journal.refund_no, "refund", "refund"),
    ):
        rows = await s.execute(
            select(column, func.count())
            .where(Journal.kind.in_(list(kinds)), column.is_not(None))
            .group_by(column)
            .having(func.count() > 1)
        )
        for ref, n in rows.all():
            report.violation(f"{what} {ref} has {n} {kind} journals", **{f"{what}_no": str(ref)})


async def _refunds_within_payments(s: AsyncSession, report: CheckReport) -> dict[str, tuple[int, int]]:
    """Checks Σ refunds ≤ paid per order, and that refunds are booked the way their payment was (direct or
    service-provider); returns order_no → (payment journals of either way, amount paid)."""
    rows = await s.execute(
        select(Journal.order_no, Journal.kind, func.count(), func.coalesce(func.sum(Journal.amount), 0))
        .where(Journal.kind.in_(list(PAYMENT_KINDS | REFUND_KINDS)), Journal.order_no.is_not(None))
        .group_by(Journal.order_no, Journal.kind)
    )
    paid: dict[str, tuple[int, int]] = {}
    refunded: dict[str, int] = {}
    shadow: dict[str, set[bool]] = defaultdict(set)  # order → was each of its journals a service-provider one
    for order_no, kind, n, total in rows.all():
        key, value = str(order_no), int(total or 0)
        shadow[key].add(kind in PROVIDER_KINDS)
        if kind in PAYMENT_KINDS:
            count, amount = paid.get(key, (0, 0))
            paid[key] = (count + int(n), amount + value)
        else:
            refunded[key] = refunded.get(key, 0) - value
    for order_no, back in sorted(refunded.items()):
        count, amount = paid.get(order_no, (0, 0))
        if count == 0:
            report.violation(f"order {order_no} has refund journals ({back}) but no payment journal", order_no=order_no)
        elif back > amount:
            report.violation(f"order {order_no}: refunds {back} exceed the {amount} paid", order_no=order_no)
    for order_no, ways in sorted(shadow.items()):
        if len(ways) > 1:
            report.violation(f"order {order_no} has both direct and service-provider journals", order_no=order_no)
    return paid


async def _splits_within_payments(s: AsyncSession, report: CheckReport, paid: dict[str, tuple[int, int]]) -> None:
    """Per split: Σ returns ≤ the split (source ids `<split_no>` and `<split_no>/<return_no>`, booking_splits); per
    order: Σ splits net of returns ≤ the amount its payment journal paid. Journal amounts are the merchant's view:
    a split negative, a return positive."""
    rows = await s.execute(
        select(Journal.source_id, Journal.leg, Journal.order_no, func.coalesce(Journal.amount, 0)).where(
            Journal.source_type == SPLIT_SOURCE
        )
    )
    taken: dict[str, int] = {}
    back: dict[str, int] = defaultdict(int)
    per_order: dict[str, int] = defaultdict(int)
    for source_id, leg, order_no, amount in rows.all():
        if leg == "split":
            taken[str(source_id)] = -int(amount)
        else:
            back[str(source_id).partition("/")[0]] += int(amount)
        if order_no is not None:
            per_order[str(order_no)] -= int(amount)
    for split_no, returned in sorted(back.items()):
        if split_no not in taken:
            report.violation(f"split {split_no} has returns ({returned}) but no split journal", split_no=split_no)
        elif returned > taken[split_no]:
            report.violation(
                f"split {split_no}: returns {returned} exceed the {taken[split_no]} split", split_no=split_no
            )
    for order_no, net in sorted(per_order.items()):
        count, amount = paid.get(order_no, (0, 0))
        if count == 0:
            report.violation(f"order {order_no} has split journals but no payment journal", order_no=order_no)
        elif net > amount:
            report.violation(
                f"order {order_no}: splits {net} net of returns exceed the {amount} paid", order_no=order_no
            )


async def _provider_memos(s: AsyncSession, report: CheckReport) -> None:
    """Each merchant's `provider_balances` row against its service-provider journals: `collected` is Σ of their
    amounts, `payments` the number of provider_payment journals (both moved once per journal, in its unit of work)."""
    rows = await s.execute(
        select(
            Journal.mch_no,
            func.coalesce(func.sum(Journal.amount), 0),
            func.sum(case((Journal.kind == PROVIDER_PAYMENT, 1), else_=0)),
        )
        .where(Journal.kind.in_(list(PROVIDER_KINDS)), Journal.mch_no.is_not(None))
        .group_by(Journal.mch_no)
    )
    expected = {str(m): (int(total), int(n or 0)) for m, total, n in rows.all()}
    memo_rows = (await s.execute(select(ProviderBalance))).scalars()
    memos = {r.mch_no: (int(r.collected), int(r.payments)) for r in memo_rows}
    for mch_no in sorted(set(expected) | set(memos)):
        want, got = expected.get(mch_no, (0, 0)), memos.get(mch_no, (0, 0))
        if want != got:
            report.violation(
                f"provider balance of {mch_no} is collected {got[0]} over {got[1]} payments, but its "
                f"service-provider journals sum to {want[0]} over {want[1]}",
                mch_no=mch_no,
            )


async def _payouts_in_transit(s: AsyncSession, report: CheckReport) -> dict[str, int]:
    """Checks each payout_in_transit balance against the payout holds not yet posted or voided; returns the
    balances (normal side) by account."""
    legs: dict[str, set[str]] = defaultdict(set)
    for source_id, leg in (
        await s.execute(select(Journal.source_id, Journal.leg).where(Journal.source_type == "payout"))
    ).all():
        legs[source_id].add(leg)
    open_holds = [p for p, seen in legs.items() if "hold" in seen and not seen & {"post", "void"}]
    expected: dict[str, int] = defaultdict(int)
    if open_holds:
        rows = await s.execute(
            select(Line.account, func.sum(Line.amount))
            .join(Journal, Journal.id == Line.journal_id)
            .where(
                Journal.source_type == "payout",
                Journal.leg == "hold",
                Journal.source_id.in_(open_holds),
                Line.account.like(f"{acct.AccountType.PAYOUT_IN_TRANSIT.value}:%"),
            )
            .group_by(Line.account)
        )
        for account, raw in rows.all():
            expected[account] = acct.normal_balance(account, int(raw))
    balances = await s.execute(
        select(Balance.account, func.sum(Balance.balance))
        .where(Balance.account_type == acct.AccountType.PAYOUT_IN_TRANSIT.value)
        .group_by(Balance.account)
    )
    actual = {account: acct.normal_balance(account, int(raw)) for account, raw in balances.all()}
    for account in sorted(set(expected) | set(actual)):
        if expected.get(account, 0) != actual.get(account, 0):
            report.violation(
                f"{account} is {actual.get(account, 0)}, but payouts held and not yet posted or voided sum to "
                f"{expected.get(account, 0)}",
                account=account,
            )
    return actual


async def _booking_outcomes(s: AsyncSession, report: CheckReport) -> None:
    rows = await s.execute(
        select(BookedEvent.outcome, func.count())
        .where(BookedEvent.outcome.in_(["skipped", "rejected"]))
        .group_by(BookedEvent.outcome)
    )
    for outcome, n in rows.all():
        report.warnings.append(f"{n} events {outcome} by booking (see ledger_booked_events.note)")


async def _succeeded_orders_booked(
    orders: OrderSource, paid: dict[str, tuple[int, int]], now: datetime, grace: timedelta, report: CheckReport
) -> None:
    unseen = set(paid)
    after: str | None = None
    while True:
        batch = await orders(after, 1000)
        for order in batch:
            unseen.discard(order.order_no)
            count, amount = paid.get(order.order_no, (0, 0))
            if count == 0:
                recent = order.paid_at is not None and as_utc(order.paid_at) > now - grace
                if recent:
                    report.warnings.append(f"order {order.order_no} SUCCEEDED moments ago and is not booked yet")
                else:
                    report.violation(
                        f"order {order.order_no} is SUCCEEDED but has no payment journal", order_no=order.order_no
                    )
            elif count == 1 and amount != order.amount:
                report.violation(
                    f"order {order.order_no}: payment journal of {amount}, the order is {order.amount}",
                    order_no=order.order_no,
                )
        if len(batch) < 1000:
            break
        after = batch[-1].order_no
    for order_no in sorted(unseen):
        report.violation(f"order {order_no} has a payment journal but is not SUCCEEDED", order_no=order_no)
