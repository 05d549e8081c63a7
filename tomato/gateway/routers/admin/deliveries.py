"""Operator endpoints for webhook deliveries: list and filter, read one with its attempts, resend."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request

from tomato.gateway.audit_trail import audited
from tomato.gateway.deps import admin_route, container
from tomato.gateway.openapi import errors
from tomato.gateway.paging import Cursor, Limit, Page, check_limit, decode_int_cursor, encode_cursor
from tomato.notice.schemas import DeliveryDetail, DeliveryView, ResendRange, ResendResult
from tomato.notice.service import NoticeService

router = APIRouter(prefix="/admin/deliveries", tags=["admin: deliveries"], route_class=admin_route("operator"))


def _service(request: Request) -> NoticeService:
    return NoticeService(container(request).db)


Filter = Annotated[str | None, Query(min_length=1, max_length=64)]


@router.get("", response_model=Page[DeliveryView])
async def list_deliveries(
    request: Request,
    limit: Limit = None,
    cursor: Cursor = None,
    mch_no: Filter = None,
    app_id: Filter = None,
    event_id: Filter = None,
    status: Literal["PENDING", "SUCCEEDED", "FAILED", "SKIPPED"] | None = None,
) -> dict[str, Any]:
    """Newest first; filter by merchant, app, event and status (PENDING, SUCCEEDED, FAILED, SKIPPED)."""
    n = check_limit(limit)
    given = {"mch_no": mch_no, "app_id": app_id, "event_id": event_id, "status": status}
    filters = {k: v for k, v in given.items() if v is not None}
    items = await _service(request).list_deliveries(filters, decode_int_cursor(cursor), n + 1)
    more = len(items) > n
    shown = items[:n]
    return {
        "data": [d.model_dump(mode="json") for d in shown],
        "next_cursor": encode_cursor(shown[-1].id[1:]) if more else None,
    }


@router.post("/resend", response_model=ResendResult)
async def resend_failed(cmd: ResendRange, request: Request) -> ResendResult:
    """Every FAILED delivery of `mch_no` created in [from, to) gets a new schedule round, starting now."""
    result = ResendResult(resent=await _service(request).resend_failed(cmd))
    after = {**cmd.model_dump(mode="json", by_alias=True), **result.model_dump()}
    await audited(request, "delivery.resend_failed", cmd.mch_no, after=after)
    return result


@router.get("/{delivery_id}", response_model=DeliveryDetail)
async def get_delivery(delivery_id: str, request: Request) -> DeliveryDetail:
    """The delivery and every attempt: time, HTTP status, latency, first KiB of the response, error class."""
    return await _service(request).get_delivery(delivery_id)


@router.post("/{delivery_id}/resend", response_model=DeliveryDetail, responses=errors(409))
async def resend(delivery_id: str, request: Request) -> DeliveryDetail:
    """A new schedule round starting now (any status but SKIPPED; not while an attempt is running)."""
    svc = _service(request)
    before = await svc.get_delivery(delivery_id)
    after = await svc.resend(delivery_id)
    await audited(request, "delivery.resend", delivery_id, before=_status(before), after=_status(after))
    return after


def _status(d: DeliveryDetail) -> dict[str, Any]:
    """The delivery without its attempt log: the trail records the state change, not every past response."""
    return d.model_dump(mode="json", exclude={"attempt_log"})
