"""What reconciliation needs from pay: the day's succeeded payments and refunds as column sets (it stages them
next to the statement with INSERT … SELECT), a repair of an order the channel says is paid (through the normal
confirm path, so the order, its ledger entry and its webhook follow), and the anomalies finance works through.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from typing import Any

from sqlalchemy import Select

from tomato.channel.protocol import ResultStatus, TradeRef
from tomato.pay import repository as repo
from tomato.pay.schemas import AnomalyView
from tomato.pay.service.confirm import PaymentReport, apply_report
from tomato.pay.service.deps import PayDeps
from tomato.pay.states import OrderStatus

log = logging.getLogger(__name__)

COLUMNS = repo.RECON_COLUMNS


def payments_query(account_id: str, start: datetime, end: datetime) -> Select[Any]:
    return repo.succeeded_payments_query(account_id, start, end)


def refunds_query(account_id: str, start: datetime, end: datetime) -> Select[Any]:
    return repo.succeeded_refunds_query(account_id, start, end)


async def confirm_from_channel(deps: PayDeps, order_no: str, account_id: str) -> bool:
    """Asks the channel about `order_no` (no unit of work open) and, when it says paid, applies the payment as a
    query answer would; True when the order is SUCCEEDED afterwards."""
    async with deps.db.uow() as uow:
        order = await repo.get(uow.session, order_no)
    if order is None:
        return False
    if order.status == OrderStatus.SUCCEEDED:
        return True
    adapter = await deps.channels.adapter_for(account_id, order.mch_no)
    result = await adapter.query(TradeRef(order.order_no, order.channel_trade_no, order.amount, order.created_at))
    if result.status is not ResultStatus.SUCCESS:
        log.info("reconciliation: the channel does not confirm %s (%s)", order_no, result.status)
        return False
    report = PaymentReport(
        order_no, account_id, result.status, result.amount, result.channel_trade_no, result.paid_at, source="query"
    )
    await apply_report(deps, report)
    async with deps.db.uow() as uow:
        order = await repo.get(uow.session, order_no)
    return order is not None and order.status == OrderStatus.SUCCEEDED


def _view(row: Any) -> AnomalyView:
    anomaly, mch_no, app_id = row
    details: dict[str, Any] = json.loads(anomaly.details or "{}")
    amount = details.get("amount")
    return AnomalyView(
        id=anomaly.id,
        kind=anomaly.kind,
        order_no=anomaly.order_no,
        refund_no=details.get("refund_no"),
        mch_no=mch_no,
        app_id=app_id,
        channel_account_id=anomaly.channel_account_id,
        channel_trade_no=anomaly.channel_trade_no,
        amount=amount if isinstance(amount, int) else None,
        note=details.get("note"),
        source=details.get("source"),
        created_at=anomaly.created_at,
    )


async def list_anomalies(deps: PayDeps, after: str | None, limit: int, kind: str | None) -> list[AnomalyView]:
    async with deps.db.uow() as uow:
        rows = await repo.anomalies(uow.session, after, limit, kind)
    return [_view(r) for r in rows]


async def get_anomaly(deps: PayDeps, anomaly_id: str) -> AnomalyView | None:
    async with deps.db.uow() as uow:
        row = await repo.anomaly(uow.session, anomaly_id)
    return None if row is None else _view(row)
