"""Every query of the reconciliation context; never commits. Matching is set-based: the statement's lines and
our own rows are staged per batch and compared in SQL; only the differences come back to Python."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Select,
    Table,
    and_,
    delete,
    exists,
    func,
    or_,
    select,
    text,
    union_all,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from tomato.reconciliation.models import (
    AnomalyResolution,
    ReconAudit,
    ReconBatch,
    ReconDiscrepancy,
    ReconLine,
    ReconLocal,
    ReconSuspense,
)

LINES: Table = ReconLine.__table__  # type: ignore[assignment]
LOCAL: Table = ReconLocal.__table__  # type: ignore[assignment]
BATCHES: Table = ReconBatch.__table__  # type: ignore[assignment]
DISCREPANCIES: Table = ReconDiscrepancy.__table__  # type: ignore[assignment]
SUSPENSE: Table = ReconSuspense.__table__  # type: ignore[assignment]
RESOLUTIONS: Table = AnomalyResolution.__table__  # type: ignore[assignment]

LINE_COLUMNS = ("batch_id", "line_no", "kind", "ref", "order_no", "channel_trade_no", "amount", "fee", "status",
                "occurred_at")  # fmt: skip
LOCAL_COLUMNS = ("kind", "ref", "order_no", "channel_trade_no", "amount", "fee", "occurred_at")


def _insert(s: AsyncSession) -> Any:
    return postgresql.insert if s.get_bind().dialect.name == "postgresql" else sqlite.insert


# --- batches ---------------------------------------------------------------------------------------------------


async def ensure_batch(s: AsyncSession, values: dict[str, Any]) -> str:
    """The batch of (account, date): inserted unless it exists; its id either way (two runs, one batch)."""
    stmt = (
        _insert(s)(BATCHES)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["channel_account_id", "business_date"])
    )
    await s.execute(stmt)
    q = select(ReconBatch.id).where(
        ReconBatch.channel_account_id == values["channel_account_id"],
        ReconBatch.business_date == values["business_date"],
    )
    return str((await s.execute(q)).scalar_one())


async def get_batch(s: AsyncSession, batch_id: str) -> ReconBatch | None:
    return await s.get(ReconBatch, batch_id)


async def batch_of(s: AsyncSession, account_id: str, day: str) -> ReconBatch | None:
    q = select(ReconBatch).where(ReconBatch.channel_account_id == account_id, ReconBatch.business_date == day)
    return (await s.scalars(q)).first()


async def set_batch(s: AsyncSession, batch_id: str, values: dict[str, Any]) -> None:
    await s.execute(update(ReconBatch).where(ReconBatch.id == batch_id).values(**values))


async def list_batches(
    s: AsyncSession, after: tuple[str, str] | None, limit: int, filters: dict[str, str]
) -> Sequence[ReconBatch]:
    """Newest business date first, then by id."""
    q = select(ReconBatch).order_by(ReconBatch.business_date.desc(), ReconBatch.id.desc()).limit(limit)
    if after is not None:
        day, batch_id = after
        q = q.where(
            or_(ReconBatch.business_date < day, and_(ReconBatch.business_date == day, ReconBatch.id < batch_id))
        )
    if "channel_account_id" in filters:
        q = q.where(ReconBatch.channel_account_id == filters["channel_account_id"])
    if "date" in filters:
        q = q.where(ReconBatch.business_date == filters["date"])
    if "status" in filters:
        q = q.where(ReconBatch.status == filters["status"])
    return (await s.scalars(q)).all()


async def batch_dates(s: AsyncSession, account_id: str, since: str) -> dict[str, str]:
    """business_date → status of the account's batches from `since` on."""
    q = select(ReconBatch.business_date, ReconBatch.status).where(
        ReconBatch.channel_account_id == account_id, ReconBatch.business_date >= since
    )
    return {str(r[0]): str(r[1]) for r in (await s.execute(q)).all()}


# --- staging -----------------------------------------------------------------------------------------------------


async def clear_lines(s: AsyncSession, batch_id: str) -> None:
    await s.execute(delete(ReconLine).where(ReconLine.batch_id == batch_id))


def ours(payments: Select[Any], refunds: Select[Any]) -> Any:
    """Our side of a batch, read in place from pay's column sets (kind, ref, order_no, channel_trade_no, amount,
    fee, occurred_at): joined straight against the staged lines, not copied into a table first."""
    return union_all(payments, refunds).subquery("ours")


async def clear_local(s: AsyncSession, batch_id: str) -> None:
    """Rows an earlier version staged in recon_local for this batch (our side is now read in place)."""
    await s.execute(delete(ReconLocal).where(ReconLocal.batch_id == batch_id))


MATCH_WORK_MEM = "256MB"  # a million-row batch hashes in memory instead of spilling to disk


async def tune_for_matching(s: AsyncSession | AsyncConnection) -> None:
    """PostgreSQL: this transaction may hash the batch's lines and ours in memory (`SET LOCAL`, gone at commit)."""
    dialect = s.dialect if isinstance(s, AsyncConnection) else s.get_bind().dialect
    if dialect.name == "postgresql":
        await s.execute(text(f"SET LOCAL work_mem = '{MATCH_WORK_MEM}'"))
        # one process per query: parallel workers would each build the same million-row hash (measured slower)
        await s.execute(text("SET LOCAL max_parallel_workers_per_gather = 0"))
        # no JIT: compiling these plain comparisons and sums took longer (0.4-1 s a query) than it saved
        await s.execute(text("SET LOCAL jit = off"))


async def analyze(s: AsyncSession, table: str) -> None:
    """Fresh planner statistics after a bulk load, so the matching queries hash-join rather than loop over an
    index on a table the planner believes small. PostgreSQL only; `table` is one of ours, never input."""
    if s.get_bind().dialect.name == "postgresql":
        await s.execute(text(f"ANALYZE {table}"))


async def duplicates(s: AsyncSession | AsyncConnection, batch_id: str) -> Sequence[Any]:
    """(kind, ref, n, first, order_no, channel_trade_no, amount, fee) of every key the statement lists twice or
    more; `first` is the line_no of its first line, the one matched. The keys are found by a count alone (a
    million-row hash with one aggregate); their details are read for those keys only."""
    repeated = (
        select(ReconLine.kind, ReconLine.ref)
        .where(ReconLine.batch_id == batch_id)
        .group_by(ReconLine.kind, ReconLine.ref)
        .having(func.count() > 1)
        .subquery("repeated")
    )
    q = (
        select(
            ReconLine.kind,
            ReconLine.ref,
            func.count().label("n"),
            func.min(ReconLine.line_no).label("first"),
            func.min(ReconLine.order_no).label("order_no"),
            func.min(ReconLine.channel_trade_no).label("channel_trade_no"),
            func.max(ReconLine.amount).label("amount"),
            func.max(ReconLine.fee).label("fee"),
        )
        .join(repeated, and_(repeated.c.kind == ReconLine.kind, repeated.c.ref == ReconLine.ref))
        .where(ReconLine.batch_id == batch_id)
        .group_by(ReconLine.kind, ReconLine.ref)
    )
    return (await s.execute(q)).all()


@dataclass(frozen=True)
class Local:
    """One of our rows the statement does not list."""

    kind: str
    ref: str
    order_no: str | None
    channel_trade_no: str | None
    amount: int
    fee: int | None
    occurred_at: datetime


async def differences(s: AsyncSession, batch_id: str, ours: Any) -> tuple[Sequence[Any], list[Local]]:
    """One pass over both sides (PostgreSQL: one hash full join; SQLite: a left join and an anti-join):
    - each statement line that is not a clean match — no row of ours, another status, amount or fee — with the
      line's columns plus l_ref, l_amount, l_fee, l_order_no (NULL l_ref: no succeeded row of ours), by line_no;
      a repeated key may bring several lines: the caller keeps its first (see `duplicates`);
    - our rows the statement does not list at all."""
    line = select(LINES).where(LINES.c.batch_id == batch_id).subquery("line")
    on = and_(ours.c.kind == line.c.kind, ours.c.ref == line.c.ref)
    differs = or_(
        ours.c.ref.is_(None),
        line.c.status != "SUCCESS",
        line.c.amount != ours.c.amount,
        and_(ours.c.fee.is_not(None), line.c.fee != ours.c.fee),
    )
    cols = [line.c[name] for name in ("line_no", "kind", "ref", "order_no", "channel_trade_no", "amount", "fee",
                                      "status", "occurred_at")]  # fmt: skip
    theirs = [ours.c.ref.label("l_ref"), ours.c.amount.label("l_amount"), ours.c.fee.label("l_fee"),
              ours.c.order_no.label("l_order_no")]  # fmt: skip
    local = [ours.c[name].label(f"o_{name}") for name in LOCAL_COLUMNS]
    if s.get_bind().dialect.name == "postgresql":
        q = (
            select(*cols, *theirs, *local)
            .select_from(line.join(ours, on, full=True))
            .where(or_(line.c.ref.is_(None), differs))
            .order_by(line.c.line_no.nulls_last())
        )
        rows = (await s.execute(q)).all()
        lines = [r for r in rows if r.line_no is not None]
        missing = [r for r in rows if r.line_no is None]
    else:
        q = select(*cols, *theirs).select_from(line.join(ours, on, isouter=True)).where(differs)
        lines = list((await s.execute(q.order_by(line.c.line_no))).all())
        listed = exists().where(LINES.c.batch_id == batch_id, LINES.c.kind == ours.c.kind, LINES.c.ref == ours.c.ref)
        missing = list((await s.execute(select(*local).where(~listed))).all())
    return lines, [Local(*(r._mapping[f"o_{name}"] for name in LOCAL_COLUMNS)) for r in missing]


async def channel_totals(s: AsyncSession | AsyncConnection, batch_id: str) -> dict[str, int]:
    """channel_* counts and sums over the batch's completed lines (repeats included) and channel_rows (all its
    lines), in one scan."""
    ok = ReconLine.status == "SUCCESS"
    q = (
        select(
            ReconLine.kind,
            func.count().filter(ok),
            func.coalesce(func.sum(ReconLine.amount).filter(ok), 0),
            func.coalesce(func.sum(ReconLine.fee).filter(ok), 0),
            func.count(),
        )
        .where(ReconLine.batch_id == batch_id)
        .group_by(ReconLine.kind)
    )
    out = {f"channel_{kind}_{what}": 0 for kind in ("pay", "refund") for what in ("count", "amount", "fee")}
    out["channel_rows"] = 0
    for kind, n, amount, fee, rows in (await s.execute(q)).all():
        name = "pay" if kind == "PAYMENT" else "refund"
        out[f"channel_{name}_count"], out[f"channel_{name}_amount"] = int(n), int(amount)
        out[f"channel_{name}_fee"] = int(fee or 0)
        out["channel_rows"] += int(rows)
    return out


async def local_totals(s: AsyncSession | AsyncConnection, ours: Any) -> dict[str, int]:
    """local_* counts and sums over our rows, and local_rows."""
    q = select(
        ours.c.kind,
        func.count(),
        func.coalesce(func.sum(ours.c.amount), 0),
        func.coalesce(func.sum(ours.c.fee), 0),
    ).group_by(ours.c.kind)
    out = {f"local_{kind}_{what}": 0 for kind in ("pay", "refund") for what in ("count", "amount", "fee")}
    for kind, n, amount, fee in (await s.execute(q)).all():
        name = "pay" if kind == "PAYMENT" else "refund"
        out[f"local_{name}_count"], out[f"local_{name}_amount"] = int(n), int(amount)
        out[f"local_{name}_fee"] = int(fee or 0)
    out["local_rows"] = out["local_pay_count"] + out["local_refund_count"]
    return out


# --- discrepancies ---------------------------------------------------------------------------------------------


async def clear_open(s: AsyncSession, batch_id: str) -> None:
    await s.execute(
        delete(ReconDiscrepancy).where(ReconDiscrepancy.batch_id == batch_id, ReconDiscrepancy.status == "OPEN")
    )


async def add_discrepancies(s: AsyncSession, rows: list[dict[str, Any]]) -> None:
    """Inserts each unless the batch already has its key (a resolution a re-run keeps)."""
    if not rows:
        return
    stmt = _insert(s)(DISCREPANCIES).on_conflict_do_nothing(index_elements=["batch_id", "match_key"])
    await s.execute(stmt, rows)


async def type_counts(s: AsyncSession, batch_id: str) -> dict[str, int]:
    q = (
        select(ReconDiscrepancy.type, func.count())
        .where(ReconDiscrepancy.batch_id == batch_id)
        .group_by(ReconDiscrepancy.type)
    )
    return {str(t): int(n) for t, n in (await s.execute(q)).all()}


async def get_discrepancy(s: AsyncSession, discrepancy_id: str) -> ReconDiscrepancy | None:
    return await s.get(ReconDiscrepancy, discrepancy_id)


async def resolve_discrepancy(s: AsyncSession, discrepancy_id: str, from_status: str, values: dict[str, Any]) -> bool:
    """Compare-and-set from `from_status`; False when it was not in it any more."""
    res = await s.execute(
        update(ReconDiscrepancy)
        .where(ReconDiscrepancy.id == discrepancy_id, ReconDiscrepancy.status == from_status)
        .values(**values)
    )
    return int(res.rowcount) == 1  # type: ignore[attr-defined]


async def open_missing_local_payments(s: AsyncSession, batch_id: str) -> Sequence[ReconDiscrepancy]:
    q = select(ReconDiscrepancy).where(
        ReconDiscrepancy.batch_id == batch_id,
        ReconDiscrepancy.type == "MISSING_LOCAL",
        ReconDiscrepancy.kind == "PAYMENT",
        ReconDiscrepancy.status == "OPEN",
    )
    return (await s.scalars(q)).all()


async def list_discrepancies(
    s: AsyncSession, after: str | None, limit: int, filters: dict[str, str]
) -> Sequence[ReconDiscrepancy]:
    q = select(ReconDiscrepancy).order_by(ReconDiscrepancy.id).limit(limit)
    if after is not None:
        q = q.where(ReconDiscrepancy.id > after)
    for name in ("batch_id", "type", "status"):
        if name in filters:
            q = q.where(getattr(ReconDiscrepancy, name) == filters[name])
    return (await s.scalars(q)).all()


async def count_open_discrepancies(s: AsyncSession) -> int:
    """Over `ix_recon_discrepancies_status`."""
    return int((await s.execute(select(func.count()).where(ReconDiscrepancy.status == "OPEN"))).scalar_one())


async def discrepancies_of(s: AsyncSession, batch_id: str) -> Sequence[ReconDiscrepancy]:
    q = select(ReconDiscrepancy).where(ReconDiscrepancy.batch_id == batch_id).order_by(ReconDiscrepancy.id)
    return (await s.scalars(q)).all()


# --- suspense pool -------------------------------------------------------------------------------------------------


async def undo_suspense_of(s: AsyncSession, batch_id: str) -> None:
    """Before a re-run: what this batch put in the pool and has not been matched since goes, what it matched or
    expired waits again."""
    await s.execute(
        delete(ReconSuspense).where(ReconSuspense.origin_batch_id == batch_id, ReconSuspense.status == "WAITING")
    )
    await s.execute(
        update(ReconSuspense)
        .where(ReconSuspense.closed_batch_id == batch_id)
        .values(status="WAITING", closed_batch_id=None)
    )


async def waiting(s: AsyncSession, account_id: str) -> Sequence[ReconSuspense]:
    q = select(ReconSuspense).where(ReconSuspense.channel_account_id == account_id, ReconSuspense.status == "WAITING")
    return (await s.scalars(q)).all()


async def add_suspense(s: AsyncSession, values: dict[str, Any]) -> bool:
    stmt = (
        _insert(s)(SUSPENSE)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["channel_account_id", "side", "kind", "ref"])
        .returning(SUSPENSE.c.id)
    )
    return (await s.execute(stmt)).first() is not None


async def close_suspense(s: AsyncSession, suspense_id: str, status: str, batch_id: str) -> None:
    await s.execute(
        update(ReconSuspense)
        .where(ReconSuspense.id == suspense_id, ReconSuspense.status == "WAITING")
        .values(status=status, closed_batch_id=batch_id)
    )


async def suspense_count(s: AsyncSession, batch_id: str) -> int:
    q = select(func.count()).where(ReconSuspense.origin_batch_id == batch_id, ReconSuspense.status == "WAITING")
    return int((await s.execute(q)).scalar_one())


# --- anomaly resolutions and audit --------------------------------------------------------------------------------


async def add_anomaly_resolution(s: AsyncSession, values: dict[str, Any]) -> bool:
    stmt = (
        _insert(s)(RESOLUTIONS)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["anomaly_id"])
        .returning(RESOLUTIONS.c.anomaly_id)
    )
    return (await s.execute(stmt)).first() is not None


async def anomaly_resolutions(s: AsyncSession, ids: Sequence[str]) -> dict[str, AnomalyResolution]:
    if not ids:
        return {}
    q = select(AnomalyResolution).where(AnomalyResolution.anomaly_id.in_(list(ids)))
    return {r.anomaly_id: r for r in (await s.scalars(q)).all()}


def add_audit(s: AsyncSession, row: ReconAudit) -> None:
    s.add(row)


async def audit_of(s: AsyncSession, subject_type: str, subject_id: str) -> Sequence[ReconAudit]:
    q = (
        select(ReconAudit)
        .where(ReconAudit.subject_type == subject_type, ReconAudit.subject_id == subject_id)
        .order_by(ReconAudit.id)
    )
    return (await s.scalars(q)).all()


def between(column: Any, start: datetime, end: datetime) -> Any:
    return and_(column >= start, column < end)


async def discrepancies_by_day(s: AsyncSession, since: str) -> Sequence[Any]:
    """(business_date, status, count) of the discrepancies of batches dated `since` or later (the console's chart)."""
    q = (
        select(ReconBatch.business_date, ReconDiscrepancy.status, func.count())
        .join(ReconBatch, ReconBatch.id == ReconDiscrepancy.batch_id)
        .where(ReconBatch.business_date >= since)
        .group_by(ReconBatch.business_date, ReconDiscrepancy.status)
    )
    return (await s.execute(q)).all()
