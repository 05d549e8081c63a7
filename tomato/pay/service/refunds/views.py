"""Refund rows → the API refund object (also the `data` of every refund.* event), and the reads."""

from __future__ import annotations

from typing import Any

from tomato.core.clock import rfc3339
from tomato.pay import repository as repo
from tomato.pay.errors import RefundNotFound
from tomato.pay.models import Refund
from tomato.pay.schemas import RefundView
from tomato.pay.service.deps import PayDeps


def refund_view(r: Refund) -> RefundView:
    return RefundView(
        refund_no=r.refund_no,
        order_no=r.order_no,
        out_refund_no=r.out_refund_no,
        amount=r.amount,
        status=r.status,
        channel_refund_no=r.channel_refund_no,
        failure_reason=r.failure_reason,
        created_at=rfc3339(r.created_at) or "",
        succeeded_at=rfc3339(r.succeeded_at),
    )


def refund_payload(r: Refund) -> dict[str, Any]:
    """The `data` of refund.* events: exactly the API refund object, so webhooks and GET agree."""
    return refund_view(r).model_dump(mode="json")


async def get_refund(deps: PayDeps, app_id: str, refund_no: str) -> RefundView:
    async with deps.db.uow() as uow:
        refund = await repo.get_refund_for_app(uow.session, app_id, refund_no)
    if refund is None:
        raise RefundNotFound(f"refund {refund_no} not found")
    return refund_view(refund)


async def find_refund(deps: PayDeps, app_id: str, out_refund_no: str) -> RefundView:
    async with deps.db.uow() as uow:
        refund = await repo.refund_by_out_refund_no(uow.session, app_id, out_refund_no)
    if refund is None:
        raise RefundNotFound(f"no refund with out_refund_no {out_refund_no}")
    return refund_view(refund)


async def reload_view(deps: PayDeps, refund_no: str) -> RefundView:
    async with deps.db.uow() as uow:
        refund = await repo.get_refund(uow.session, refund_no)
    if refund is None:
        raise RefundNotFound(f"refund {refund_no} not found")
    return refund_view(refund)


async def refund_notify_url(deps: PayDeps, refund_no: str) -> str | None:
    """Where the refund's webhooks go before the app default: the refund's own notify_url, else its order's."""
    async with deps.db.uow() as uow:
        refund = await repo.get_refund(uow.session, refund_no)
        order = None if refund is None else await repo.get(uow.session, refund.order_no)
    if refund is None:
        raise RefundNotFound(f"refund {refund_no} not found")
    return refund.notify_url or (order.notify_url if order is not None else None)
