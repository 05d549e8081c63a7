"""Every query of the pay context. Never commits; every state change is a compare-and-set on `status`.

Order writes are Core statements on the tables (the ORM's bulk-update machinery costs more than the statement);
create-order's own writes are `WriteBatch`es (core/writebatch.py): one statement each on PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import BigInteger, Select, Table, case, func, literal, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from tomato.core.db import one_of
from tomato.core.pay_methods import PayMethod
from tomato.core.writebatch import WriteBatch, fetch_row
from tomato.pay.models import PayAnomaly, PayAttempt, PayOrder, Refund
from tomato.pay.rows import detached, set_values
from tomato.pay.states import OrderEvent, OrderStatus, RefundEvent, RefundStatus, refund_sources, sources

ORDERS: Table = PayOrder.__table__  # type: ignore[assignment]
ATTEMPTS: Table = PayAttempt.__table__  # type: ignore[assignment]
ANOMALIES: Table = PayAnomaly.__table__  # type: ignore[assignment]


def insert_order(batch: WriteBatch, order: PayOrder, first_attempt: PayAttempt | None) -> None:
    """Inserts a new order (and its first attempt); a repeated (app_id, out_trade_no) raises IntegrityError."""
    batch.insert(ORDERS, set_values(order))
    if first_attempt is not None:
        batch.insert(ATTEMPTS, set_values(first_attempt))


def finish_attempt(batch: WriteBatch, attempt_id: str, values: dict[str, Any]) -> None:
    batch.update(ATTEMPTS, ("id", attempt_id), values)


async def get(s: AsyncSession, order_no: str) -> PayOrder | None:
    return await s.get(PayOrder, order_no)


async def get_for_app(s: AsyncSession, app_id: str, order_no: str) -> PayOrder | None:
    q = select(PayOrder).where(PayOrder.order_no == order_no, PayOrder.app_id == app_id)
    return (await s.scalars(q)).first()


async def row_for_app(engine: AsyncEngine, app_id: str, order_no: str) -> PayOrder | None:
    """`get_for_app` without a session or an ORM object: one keyed read (`detached` row), for the query API."""
    row = await fetch_row(engine, ORDERS, {"order_no": order_no, "app_id": app_id})
    return None if row is None else detached(row)


async def by_out_trade_no(s: AsyncSession, app_id: str, out_trade_no: str) -> PayOrder | None:
    q = select(PayOrder).where(PayOrder.app_id == app_id, PayOrder.out_trade_no == out_trade_no)
    return (await s.scalars(q)).first()


async def succeeded_orders(s: AsyncSession, after: str | None, limit: int) -> Sequence[Any]:
    """(order_no, amount, paid_at) of SUCCEEDED orders by order_no, for the ledger check."""
    q = select(PayOrder.order_no, PayOrder.amount, PayOrder.paid_at).where(PayOrder.status == OrderStatus.SUCCEEDED)
    if after is not None:
        q = q.where(PayOrder.order_no > after)
    return (await s.execute(q.order_by(PayOrder.order_no).limit(limit))).all()


async def by_cashier_token(s: AsyncSession, token: str) -> PayOrder | None:
    return (await s.scalars(select(PayOrder).where(PayOrder.cashier_token == token))).first()


async def transition(
    s: AsyncSession,
    order_no: str,
    event: OrderEvent,
    values: dict[str, Any],
    *,
    only_from: Sequence[OrderStatus] | None = None,
) -> bool:
    """Moves the order if (and only if) its current status allows `event`; True when this call moved it."""
    allowed = [st.value for st in (only_from if only_from is not None else sources(event))]
    res = await s.execute(
        update(ORDERS)
        .where(ORDERS.c.order_no == order_no, ORDERS.c.status.in_(allowed))
        .values(**values, version=ORDERS.c.version + 1)
    )
    return bool(res.rowcount)  # type: ignore[attr-defined]


async def mark_paid(s: AsyncSession, order_no: str, values: dict[str, Any]) -> bool | None:
    """The PAID compare-and-set from whichever source state stands when it runs (CREATED, PAYING or CLOSED).

    One statement, so a close committing between our read and this write cannot make the payment miss: on
    PostgreSQL the update re-checks the row it waited for, and `paid_after_close` is computed from the status it
    replaces. Returns that flag, or None when the order is no longer payable (already SUCCEEDED or FAILED).
    """
    allowed = [st.value for st in sources(OrderEvent.PAID)]
    res = await s.execute(
        update(ORDERS)
        .where(ORDERS.c.order_no == order_no, ORDERS.c.status.in_(allowed))
        .values(
            **values,
            status=OrderStatus.SUCCEEDED.value,
            paid_after_close=ORDERS.c.status == OrderStatus.CLOSED.value,
            version=ORDERS.c.version + 1,
        )
        .returning(ORDERS.c.paid_after_close)
    )
    row = res.first()
    return None if row is None else bool(row[0])


def transition_returning(batch: WriteBatch, order_no: str, event: OrderEvent, values: dict[str, Any]) -> None:
    """`transition` as the batch's last write: its commit answers the moved order's row, or None when the order's
    status did not allow `event` (`detached` makes the row an order)."""
    allowed = [st.value for st in sources(event)]
    batch.update(ORDERS, ("order_no", order_no), values, status_in=allowed, increment="version", returning=True)


async def set_fields(s: AsyncSession, order_no: str, status: OrderStatus, values: dict[str, Any]) -> bool:
    """Updates non-state fields while the order is still in `status` (e.g. query bookkeeping)."""
    res = await s.execute(
        update(ORDERS).where(ORDERS.c.order_no == order_no, ORDERS.c.status == status.value).values(**values)
    )
    return bool(res.rowcount)  # type: ignore[attr-defined]


async def due_for_query(s: AsyncSession, now: datetime, limit: int) -> Sequence[PayOrder]:
    q = (
        select(PayOrder)
        .where(PayOrder.status == OrderStatus.PAYING.value, PayOrder.next_query_at <= now)
        .where(PayOrder.pay_method != PayMethod.BARCODE.value)  # the barcode job follows those on its own clock
        .order_by(PayOrder.next_query_at)
        .limit(limit)
    )
    return (await s.scalars(q)).all()


async def expired(s: AsyncSession, now: datetime, limit: int) -> Sequence[PayOrder]:
    q = (
        select(PayOrder)
        .where(
            or_(PayOrder.status == OrderStatus.PAYING.value, PayOrder.status == OrderStatus.CREATED.value),
            PayOrder.expire_at <= now,
            or_(PayOrder.next_close_at.is_(None), PayOrder.next_close_at <= now),
        )
        .order_by(PayOrder.expire_at)
        .limit(limit)
    )
    return (await s.scalars(q)).all()


async def attempts_of(s: AsyncSession, order_no: str) -> Sequence[PayAttempt]:
    q = select(PayAttempt).where(PayAttempt.order_no == order_no).order_by(PayAttempt.created_at)
    return (await s.scalars(q)).all()


async def add_anomaly(s: AsyncSession, values: dict[str, Any]) -> bool:
    """INSERT … ON CONFLICT (order_no, kind, ref) DO NOTHING; True when this call inserted the row (a concurrent
    insert of the same key waits for the other transaction and then inserts nothing)."""
    insert = postgresql.insert if s.get_bind().dialect.name == "postgresql" else sqlite.insert
    stmt = (
        insert(ANOMALIES)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["order_no", "kind", "ref"])
        .returning(ANOMALIES.c.id)
    )
    return (await s.execute(stmt)).first() is not None


# --- submission claims -------------------------------------------------------------------------------------
# One submission of a CREATED order to a channel at a time: a submitter claims the order with a token and a lease
# (the insert of a new order carries its creator's claim); a claim whose lease ran out is anyone's.


async def claim_submission(s: AsyncSession, order_no: str, token: str, now: datetime, until: datetime) -> bool:
    """Claims (or, holding it, renews) the right to submit a CREATED order until `until`; False: someone else holds
    a live claim, or the order is no longer CREATED."""
    res = await s.execute(
        update(ORDERS)
        .where(
            ORDERS.c.order_no == order_no,
            ORDERS.c.status == OrderStatus.CREATED.value,
            or_(
                ORDERS.c.submit_claim.is_(None),
                ORDERS.c.submit_claim == token,
                ORDERS.c.submit_claim_until <= now,
            ),
        )
        .values(submit_claim=token, submit_claim_until=until)
    )
    return bool(res.rowcount)  # type: ignore[attr-defined]


async def release_submission(s: AsyncSession, order_no: str, token: str) -> None:
    """Gives up our claim (a claim someone took over after ours lapsed is theirs and stays)."""
    await s.execute(
        update(ORDERS)
        .where(ORDERS.c.order_no == order_no, ORDERS.c.submit_claim == token)
        .values(submit_claim=None, submit_claim_until=None)
    )


def add_attempt(s: AsyncSession, attempt: PayAttempt) -> None:
    """Adds the attempt's row (`new_attempt` rows are plain attributes: the session gets an instance of its own)."""
    s.add(PayAttempt(**set_values(attempt)))


# --- refunds -----------------------------------------------------------------------------------------------
# The order's `refund_reserved` is Σ amount of its PENDING and SUCCEEDED refunds and `refunded_amount` Σ of its
# SUCCEEDED ones. Both move only through the guarded UPDATEs below, each in the unit of work of the refund's own
# insert or compare-and-set, so concurrent refunds can never reserve more than the order amount.


async def reserve_refund(s: AsyncSession, order_no: str, amount: int, max_count: int, now: datetime) -> bool:
    """Reserves `amount` of a SUCCEEDED order's remainder and counts one refund; False when it does not fit."""
    res = await s.execute(
        update(PayOrder)
        .where(
            PayOrder.order_no == order_no,
            PayOrder.status == OrderStatus.SUCCEEDED.value,
            # money split to receivers is not refundable until it came back (split_returns)
            PayOrder.refund_reserved + amount <= PayOrder.amount - PayOrder.split_reserved,
            PayOrder.refund_count < max_count,
        )
        .values(
            refund_reserved=PayOrder.refund_reserved + amount,
            refund_count=PayOrder.refund_count + 1,
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    return bool(res.rowcount)  # type: ignore[attr-defined]


async def release_refund(s: AsyncSession, order_no: str, amount: int, now: datetime) -> bool:
    """Gives a FAILED refund's amount back to the remainder (never below what SUCCEEDED refunds hold)."""
    res = await s.execute(
        update(PayOrder)
        .where(PayOrder.order_no == order_no, PayOrder.refund_reserved - amount >= PayOrder.refunded_amount)
        .values(refund_reserved=PayOrder.refund_reserved - amount, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    return bool(res.rowcount)  # type: ignore[attr-defined]


async def add_refunded(s: AsyncSession, order_no: str, amount: int, now: datetime) -> int | None:
    """Counts a SUCCEEDED refund on the order: `refunded_amount`, and `refund_status` PARTIAL or FULL. Returns the
    order's `refunded_amount` after it (the row stays locked until the caller's commit, so a concurrent refund of
    the same order counts after this one), or None when it would pass the reservation (nothing changed)."""
    total = ORDERS.c.refunded_amount + amount
    res = await s.execute(
        update(ORDERS)
        .where(ORDERS.c.order_no == order_no, total <= ORDERS.c.refund_reserved)
        .values(
            refunded_amount=total,
            refund_status=case((total >= ORDERS.c.amount, "FULL"), else_="PARTIAL"),
            updated_at=now,
        )
        .returning(ORDERS.c.refunded_amount)
    )
    row = res.first()
    return None if row is None else int(row[0])


async def add_fee_returned(s: AsyncSession, order_no: str, refund_no: str, share: int) -> None:
    """Counts one SUCCEEDED refund's fee share on its order (`fee_returned_total`) and on the refund itself."""
    await s.execute(
        update(ORDERS)
        .where(ORDERS.c.order_no == order_no)
        .values(fee_returned_total=ORDERS.c.fee_returned_total + share)
    )
    await s.execute(
        update(Refund)
        .where(Refund.refund_no == refund_no)
        .values(fee_returned=share)
        .execution_options(synchronize_session=False)
    )


async def get_refund(s: AsyncSession, refund_no: str) -> Refund | None:
    return await s.get(Refund, refund_no)


async def get_refund_for_app(s: AsyncSession, app_id: str, refund_no: str) -> Refund | None:
    q = select(Refund).where(Refund.refund_no == refund_no, Refund.app_id == app_id)
    return (await s.scalars(q)).first()


async def refund_by_out_refund_no(s: AsyncSession, app_id: str, out_refund_no: str) -> Refund | None:
    q = select(Refund).where(Refund.app_id == app_id, Refund.out_refund_no == out_refund_no)
    return (await s.scalars(q)).first()


async def refunds_of(s: AsyncSession, order_no: str) -> Sequence[Refund]:
    q = select(Refund).where(Refund.order_no == order_no).order_by(Refund.created_at, Refund.refund_no)
    return (await s.scalars(q)).all()


async def refund_transition(s: AsyncSession, refund_no: str, event: RefundEvent, values: dict[str, Any]) -> bool:
    """Moves the refund if (and only if) its current status allows `event`; True when this call moved it."""
    allowed = [st.value for st in refund_sources(event)]
    res = await s.execute(
        update(Refund)
        .where(Refund.refund_no == refund_no, Refund.status.in_(allowed))
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return bool(res.rowcount)  # type: ignore[attr-defined]


async def set_refund_fields(s: AsyncSession, refund_no: str, status: RefundStatus, values: dict[str, Any]) -> bool:
    """Updates non-state fields while the refund is still in `status` (query bookkeeping, acknowledgement)."""
    res = await s.execute(
        update(Refund)
        .where(Refund.refund_no == refund_no, Refund.status == status.value)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return bool(res.rowcount)  # type: ignore[attr-defined]


async def refunds_due_for_query(s: AsyncSession, now: datetime, limit: int) -> Sequence[Refund]:
    q = (
        select(Refund)
        .where(Refund.status == RefundStatus.PENDING.value, Refund.next_query_at <= now)
        .order_by(Refund.next_query_at)
        .limit(limit)
    )
    return (await s.scalars(q)).all()


async def make_pending_refunds_due(s: AsyncSession, order_no: str, channel_account_id: str, now: datetime) -> int:
    """Brings the order's PENDING refunds forward to be queried now (a refund notify we could not pin down)."""
    res = await s.execute(
        update(Refund)
        .where(
            Refund.order_no == order_no,
            Refund.channel_account_id == channel_account_id,
            Refund.status == RefundStatus.PENDING.value,
        )
        .values(next_query_at=now)
        .execution_options(synchronize_session=False)
    )
    return int(res.rowcount)  # type: ignore[attr-defined]


async def notify_urls(s: AsyncSession, order_nos: Sequence[str]) -> dict[str, str | None]:
    q = select(PayOrder.order_no, PayOrder.notify_url).where(one_of(s, PayOrder.order_no, order_nos))
    return {str(r.order_no): r.notify_url for r in await s.execute(q)}


# --- reconciliation's read model ----------------------------------------------------------------------------
# Column sets, not rows: reconciliation stages them with INSERT … SELECT next to the statement it matches, so a
# day of a million orders never passes through Python. The tables stay private to pay: only these columns leave.

RECON_COLUMNS = ("kind", "ref", "order_no", "channel_trade_no", "amount", "fee", "occurred_at")


def succeeded_payments_query(account_id: str, start: datetime, end: datetime) -> Select[Any]:
    """SUCCEEDED orders paid on `account_id` in [start, end): kind, ref (= order_no), order_no, channel_trade_no,
    amount, fee (the channel cost we expect), occurred_at (paid_at)."""
    q = select(
        literal("PAYMENT").label("kind"),
        PayOrder.order_no.label("ref"),
        PayOrder.order_no.label("order_no"),
        PayOrder.channel_trade_no.label("channel_trade_no"),
        PayOrder.amount.label("amount"),
        PayOrder.channel_cost.label("fee"),  # the snapshot; NULL: no fee is compared
        PayOrder.paid_at.label("occurred_at"),
    ).where(
        PayOrder.channel_account_id == account_id,
        PayOrder.status == OrderStatus.SUCCEEDED.value,
        PayOrder.paid_at >= start,
        PayOrder.paid_at < end,
    )
    return cast("Select[Any]", q)


def succeeded_refunds_query(account_id: str, start: datetime, end: datetime) -> Select[Any]:
    """SUCCEEDED refunds on `account_id` that succeeded in [start, end): the same columns, ref = refund_no, fee =
    the channel cost the channel returns pro rata, cumulatively over the order's refunds in the order they were
    made, as channels return it: total after R refunded of amount A and cost C is (2·C·R + A) // (2·A); this
    refund's share is the difference. Not in the order they succeeded here: a refund whose answer was lost is
    confirmed later than one made after it, and the shares would come out swapped."""
    of_day = (
        select(Refund.order_no)
        .where(
            Refund.channel_account_id == account_id,
            Refund.status == RefundStatus.SUCCEEDED.value,
            Refund.succeeded_at >= start,
            Refund.succeeded_at < end,
        )
        .scalar_subquery()
    )
    running = (
        select(
            Refund.refund_no,
            Refund.order_no,
            Refund.amount,
            Refund.succeeded_at,
            Refund.channel_account_id,
            # PostgreSQL's sum(bigint) is numeric, whose `/` keeps the fraction: cast, so `//` divides as integers
            func.sum(Refund.amount)
            .over(partition_by=Refund.order_no, order_by=(Refund.created_at, Refund.refund_no))
            .cast(BigInteger)
            .label("after"),
        )
        .where(Refund.status == RefundStatus.SUCCEEDED.value, Refund.order_no.in_(of_day))
        .subquery("running")
    )
    cost = func.coalesce(PayOrder.channel_cost, 0)
    after, before = running.c.after, running.c.after - running.c.amount
    share = (2 * cost * after + PayOrder.amount) // (2 * PayOrder.amount) - (2 * cost * before + PayOrder.amount) // (
        2 * PayOrder.amount
    )
    fee = case((PayOrder.channel_cost.is_(None), literal(None, BigInteger)), else_=share)
    return (
        select(
            literal("REFUND").label("kind"),
            running.c.refund_no.label("ref"),
            running.c.order_no.label("order_no"),
            PayOrder.channel_trade_no.label("channel_trade_no"),
            running.c.amount.label("amount"),
            fee.label("fee"),
            running.c.succeeded_at.label("occurred_at"),
        )
        .join_from(running, PayOrder, PayOrder.order_no == running.c.order_no)
        .where(
            running.c.channel_account_id == account_id,
            running.c.succeeded_at >= start,
            running.c.succeeded_at < end,
        )
    )


async def anomalies(s: AsyncSession, after: str | None, limit: int, kind: str | None) -> Sequence[Any]:
    """Anomalies newest first (ids are time-ordered), each with its order's merchant and app."""
    q = (
        select(PayAnomaly, PayOrder.mch_no, PayOrder.app_id)
        .join_from(PayAnomaly, PayOrder, PayOrder.order_no == PayAnomaly.order_no, isouter=True)
        .order_by(PayAnomaly.id.desc())
        .limit(limit)
    )
    if after is not None:
        q = q.where(PayAnomaly.id < after)
    if kind is not None:
        q = q.where(PayAnomaly.kind == kind)
    return (await s.execute(q)).all()


async def anomaly(s: AsyncSession, anomaly_id: str) -> Any | None:
    q = (
        select(PayAnomaly, PayOrder.mch_no, PayOrder.app_id)
        .join_from(PayAnomaly, PayOrder, PayOrder.order_no == PayAnomaly.order_no, isouter=True)
        .where(PayAnomaly.id == anomaly_id)
    )
    return (await s.execute(q)).first()


# --- operator reads (the console) -------------------------------------------------------------------------------


async def orders_by_number(s: AsyncSession, number: str, limit: int) -> Sequence[PayOrder]:
    """Orders whose order_no, out_trade_no or channel_trade_no is `number`, newest first."""
    q = select(PayOrder).where(
        or_(PayOrder.order_no == number, PayOrder.out_trade_no == number, PayOrder.channel_trade_no == number)
    )
    return (await s.scalars(q.order_by(PayOrder.created_at.desc()).limit(limit))).all()


async def refunds_by_number(s: AsyncSession, number: str, order_nos: Sequence[str], limit: int) -> Sequence[Refund]:
    """Refunds whose refund_no, out_refund_no or channel_refund_no is `number`, or of one of `order_nos`."""
    named = [Refund.refund_no == number, Refund.out_refund_no == number, Refund.channel_refund_no == number]
    if order_nos:
        named.append(Refund.order_no.in_(order_nos))
    q = select(Refund).where(or_(*named)).order_by(Refund.created_at.desc()).limit(limit)
    return (await s.scalars(q)).all()


async def hourly_volume(s: AsyncSession, since: datetime) -> Sequence[Any]:
    """(hour, channel, orders, succeeded, amount) of orders created since `since` that reached a channel.
    The hour is a datetime on PostgreSQL and 'YYYY-MM-DD HH:00:00' text (UTC) on SQLite."""
    if s.get_bind().dialect.name == "postgresql":
        hour: Any = func.date_trunc("hour", func.timezone("UTC", PayOrder.created_at))
    else:
        hour = func.strftime("%Y-%m-%d %H:00:00", PayOrder.created_at)
    ok = PayOrder.status == OrderStatus.SUCCEEDED.value
    q = (
        select(
            hour.label("hour"),
            PayOrder.channel,
            func.count().label("orders"),
            func.sum(case((ok, 1), else_=0)).label("succeeded"),
            func.sum(case((ok, PayOrder.amount), else_=0)).label("amount"),
        )
        .where(PayOrder.created_at >= since, PayOrder.channel.is_not(None))
        .group_by(hour, PayOrder.channel)
    )
    return (await s.execute(q)).all()
