"""Matching one batch (in the caller's unit of work): stage our side, compare in SQL, classify what differs.

Keys: a payment line matches our SUCCEEDED order with its order_no, a refund line our SUCCEEDED refund with its
refund_no. On the first line of each key (a repeated key is one DUPLICATE):
- no row of ours and a completed line → MISSING_LOCAL; ours and the line not completed → STATUS_MISMATCH;
- another amount → AMOUNT_MISMATCH; the same amount but another fee than our snapshot → FEE_MISMATCH;
- a row of ours the statement does not list → MISSING_CHANNEL.
A one-sided row within `suspense_minutes` of either midnight of the business day is not declared yet: it waits in
the suspense pool, where the adjacent days' runs look for it (it usually sits in the neighbouring statement); a
row still waiting once the runs of the next two days have looked is declared missing by the second of them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from tomato.core.clock import as_utc
from tomato.core.ids import Snowflake
from tomato.reconciliation import repository as repo
from tomato.reconciliation.models import ReconSuspense
from tomato.reconciliation.schemas import DiscrepancyType

T = DiscrepancyType
TYPES = tuple(t.value for t in DiscrepancyType)


@dataclass
class Window:
    day: date
    start: datetime  # UTC, the business day's first instant
    end: datetime  # UTC, the next day's first instant
    suspense: timedelta

    @property
    def iso(self) -> str:
        return self.day.isoformat()

    def near_midnight(self, at: datetime) -> bool:
        at = as_utc(at)
        return at - self.start < self.suspense or self.end - at <= self.suspense


@dataclass
class Outcome:
    matched: int = 0
    suspense: int = 0
    rows: list[dict[str, Any]] = field(default_factory=list)
    totals: dict[str, int] = field(default_factory=dict)


def _row(
    ids: Snowflake, batch_id: str, now: datetime, type_: DiscrepancyType, kind: str, ref: str, **values: Any
) -> dict[str, Any]:
    row = {
        "id": ids.next_id("RD"),
        "batch_id": batch_id,
        "match_key": f"{type_.value}:{kind}:{ref}"[:128],
        "type": type_.value,
        "kind": kind,
        "status": "OPEN",
        "order_no": None,
        "refund_no": None,
        "channel_trade_no": None,
        "local_amount": None,
        "channel_amount": None,
        "local_fee": None,
        "channel_fee": None,
        "channel_status": None,
        "resolution_action": None,
        "resolution_note": None,
        "resolved_by": None,
        "resolved_at": None,
        "created_at": now,
    }
    row.update(values)
    return row


def _refs(kind: str, ref: str, order_no: str | None) -> dict[str, Any]:
    if kind == "PAYMENT":
        return {"order_no": order_no or ref}
    return {"order_no": order_no, "refund_no": ref}


def _compare(
    ids: Snowflake, batch_id: str, now: datetime, kind: str, ref: str, order_no: str | None, trade: str | None,
    local: tuple[int, int | None], channel: tuple[int, int],
) -> dict[str, Any] | None:  # fmt: skip
    """A discrepancy when the two sides of one key disagree on amount or fee, else None."""
    (l_amount, l_fee), (c_amount, c_fee) = local, channel
    values = {**_refs(kind, ref, order_no), "channel_trade_no": trade, "local_amount": l_amount,
              "channel_amount": c_amount, "local_fee": l_fee, "channel_fee": c_fee}  # fmt: skip
    if l_amount != c_amount:
        return _row(ids, batch_id, now, T.AMOUNT_MISMATCH, kind, ref, **values)
    if l_fee is not None and l_fee != c_fee:
        return _row(ids, batch_id, now, T.FEE_MISMATCH, kind, ref, **values)
    return None


LineFacts = tuple[Sequence[Any], dict[str, int]]  # (repo.duplicates, repo.channel_totals)


async def read_line_facts(s: AsyncSession | AsyncConnection, batch_id: str) -> LineFacts:
    return await repo.duplicates(s, batch_id), await repo.channel_totals(s, batch_id)


class _Discrepancies:
    """The discrepancy rows of one run, each made by `add` with the run's ids, batch and time."""

    def __init__(self, ids: Snowflake, batch_id: str, now: datetime, rows: list[dict[str, Any]]) -> None:
        self.ids, self.batch_id, self.now, self.rows = ids, batch_id, now, rows

    def add(self, type_: DiscrepancyType, kind: str, ref: str, order_no: str | None, **values: Any) -> None:
        self.rows.append(
            _row(self.ids, self.batch_id, self.now, type_, kind, ref, **_refs(kind, ref, order_no), **values)
        )

    def compare(
        self, kind: str, ref: str, order_no: str | None, trade: str | None, local: tuple[int, int | None],
        channel: tuple[int, int],
    ) -> bool:  # fmt: skip
        """Records the two sides' difference, if any; True when they agree."""
        diff = _compare(self.ids, self.batch_id, self.now, kind, ref, order_no, trade, local, channel)
        if diff is not None:
            self.rows.append(diff)
        return diff is None


async def match(
    s: AsyncSession,
    ids: Snowflake,
    now: datetime,
    *,
    batch_id: str,
    account_id: str,
    window: Window,
    payments: Select[Any],
    refunds: Select[Any],
    line_facts: Awaitable[LineFacts] | None = None,
    local_totals: Awaitable[dict[str, int]] | None = None,
) -> Outcome:
    """`line_facts`: the batch's duplicate keys and channel totals when another connection is already reading
    them (they depend on the staged lines alone); else they are read here, after our side. `local_totals`: our
    side's totals when another connection is already reading them (`repo.local_totals` of the same queries)."""
    out = Outcome()
    found = _Discrepancies(ids, batch_id, now, out.rows)
    await repo.tune_for_matching(s)
    ours = repo.ours(payments, refunds)
    await repo.clear_local(s, batch_id)
    await repo.undo_suspense_of(s, batch_id)
    await repo.clear_open(s, batch_id)
    pool = {(p.side, p.kind, p.ref): p for p in await repo.waiting(s, account_id)}

    async def from_pool(side: str, kind: str, ref: str) -> ReconSuspense | None:
        """The other side's row of this key waiting in the pool since a neighbouring day, now closed as matched."""
        other: ReconSuspense | None = pool.pop((side, kind, ref), None)
        if other is not None:
            await repo.close_suspense(s, other.id, "MATCHED", batch_id)
        return other

    async def suspended(side: str, kind: str, ref: str, order_no: str | None, trade: str | None, amount: int,
                        fee: int | None, at: datetime) -> bool:  # fmt: skip
        """Near midnight a one-sided row waits in the pool instead of being declared: True when it does."""
        if not window.near_midnight(at):
            return False
        row = {"id": ids.next_id("RS"), "channel_account_id": account_id, "side": side, "kind": kind, "ref": ref,
               "order_no": order_no, "channel_trade_no": trade, "amount": amount, "fee": fee, "occurred_at": at,
               "business_date": window.iso, "origin_batch_id": batch_id, "status": "WAITING",
               "closed_batch_id": None, "created_at": now}  # fmt: skip
        if await repo.add_suspense(s, row):
            out.suspense += 1
        return True

    channel_side, missing = await repo.differences(s, batch_id, ours)
    local = await (local_totals if local_totals is not None else repo.local_totals(s, ours))
    dups, channel = await (line_facts if line_facts is not None else read_line_facts(s, batch_id))
    out.totals = {**channel, **local}

    first_of: dict[tuple[str, str], int] = {}
    for d in dups:
        first_of[(d.kind, d.ref)] = d.first
        found.add(T.DUPLICATE, d.kind, d.ref, d.order_no, channel_trade_no=d.channel_trade_no,
                  channel_amount=d.amount, channel_fee=d.fee)  # fmt: skip

    differing = 0
    for r in channel_side:
        if first_of.get((r.kind, r.ref), r.line_no) != r.line_no:
            continue  # a repeat (the DUPLICATE): only the key's first line is matched
        if r.l_ref is not None:
            differing += 1
            if r.status != "SUCCESS":
                found.add(T.STATUS_MISMATCH, r.kind, r.ref, r.l_order_no, channel_trade_no=r.channel_trade_no,
                          local_amount=r.l_amount, channel_amount=r.amount, local_fee=r.l_fee, channel_fee=r.fee,
                          channel_status=r.status)  # fmt: skip
            elif found.compare(r.kind, r.ref, r.l_order_no, r.channel_trade_no, (r.l_amount, r.l_fee),
                               (r.amount, r.fee)):  # fmt: skip
                differing -= 1  # only a NULL-vs-value comparison brought it here: it matches
            continue
        if r.status != "SUCCESS":
            continue  # the channel reports a trade that did not complete, and we have none completed: agreed
        other = await from_pool("LOCAL", r.kind, r.ref)
        if other is not None:  # ours sat in the pool since a neighbouring day
            if found.compare(r.kind, r.ref, other.order_no, r.channel_trade_no, (other.amount, other.fee),
                             (r.amount, r.fee)):  # fmt: skip
                out.matched += 1
        elif not await suspended("CHANNEL", r.kind, r.ref, r.order_no, r.channel_trade_no, r.amount, r.fee,
                                 r.occurred_at):  # fmt: skip
            found.add(T.MISSING_LOCAL, r.kind, r.ref, r.order_no, channel_trade_no=r.channel_trade_no,
                      channel_amount=r.amount, channel_fee=r.fee, channel_status=r.status)  # fmt: skip
    # keys both sides have = our rows the statement lists; the clean ones are those that did not differ
    out.matched += out.totals["local_rows"] - len(missing) - differing

    for loc in missing:
        other = await from_pool("CHANNEL", loc.kind, loc.ref)
        if other is not None:
            if found.compare(loc.kind, loc.ref, loc.order_no, other.channel_trade_no, (loc.amount, loc.fee),
                             (other.amount, other.fee or 0)):  # fmt: skip
                out.matched += 1
        elif not await suspended("LOCAL", loc.kind, loc.ref, loc.order_no, loc.channel_trade_no, loc.amount,
                                 loc.fee, loc.occurred_at):  # fmt: skip
            found.add(T.MISSING_CHANNEL, loc.kind, loc.ref, loc.order_no, channel_trade_no=loc.channel_trade_no,
                      local_amount=loc.amount, local_fee=loc.fee)  # fmt: skip

    # what the runs of the two days after its own could not match is missing now
    oldest = (window.day - timedelta(days=2)).isoformat()
    for p in pool.values():
        if p.business_date > oldest:
            continue
        await repo.close_suspense(s, p.id, "EXPIRED", batch_id)
        if p.side == "CHANNEL":
            found.add(T.MISSING_LOCAL, p.kind, p.ref, p.order_no, channel_trade_no=p.channel_trade_no,
                      channel_amount=p.amount, channel_fee=p.fee, channel_status="SUCCESS")  # fmt: skip
        else:
            found.add(T.MISSING_CHANNEL, p.kind, p.ref, p.order_no, channel_trade_no=p.channel_trade_no,
                      local_amount=p.amount, local_fee=p.fee)  # fmt: skip

    await repo.add_discrepancies(s, out.rows)
    return out
