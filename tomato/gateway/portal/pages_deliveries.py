"""The developer's webhook pages: the merchant's deliveries across its apps (filter, attempts) and resend.

Every read and the resend go through the notice service scoped to the signed-in merchant, so another merchant's
delivery id is `404` exactly like one that does not exist; the resend is the admin API's call.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Request
from starlette.responses import Response

from tomato.gateway.console.render import redirect
from tomato.gateway.deps import container
from tomato.gateway.paging import decode_int_cursor, encode_cursor
from tomato.gateway.portal import audit
from tomato.gateway.portal.guard import portal_route, viewer_of
from tomato.gateway.portal.render import html
from tomato.gateway.portal.roles import DEVELOPERS
from tomato.notice.events import EventType as KnownType
from tomato.notice.service import NoticeService

router = APIRouter(prefix="/portal", route_class=portal_route(*DEVELOPERS), include_in_schema=False)

DeliveryId = Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{1,32}$")]
EventType = Annotated[str | None, Query(max_length=64, pattern=r"^[a-z_.]*$")]
CursorQ = Annotated[str | None, Query(max_length=200, pattern=r"^[A-Za-z0-9_-]+$")]
Status = Literal["", "PENDING", "SUCCEEDED", "FAILED", "SKIPPED"]
STATUSES = ("PENDING", "SUCCEEDED", "FAILED", "SKIPPED")
PAGE = 50


@router.get("/deliveries")
async def deliveries(
    request: Request, status: Status | None = None, event_type: EventType = None, cursor: CursorQ = None
) -> Response:
    """Newest first; the merchant scope is a filter the page adds itself, never one read from the request."""
    filters = {k: v for k, v in {"status": status, "event_type": event_type}.items() if v}
    scoped = {**filters, "mch_no": viewer_of(request).mch_no}
    items = await NoticeService(container(request).db).list_deliveries(scoped, decode_int_cursor(cursor), PAGE + 1)
    shown = items[:PAGE]
    nxt = encode_cursor(shown[-1].id[1:]) if len(items) > PAGE else None
    return html(request, "dev_deliveries.html", deliveries=shown, filters=filters, next_cursor=nxt,
                statuses=STATUSES, event_types=[e.value for e in KnownType])  # fmt: skip


@router.get("/deliveries/{delivery_id}")
async def delivery(delivery_id: DeliveryId, request: Request) -> Response:
    detail = await NoticeService(container(request).db).get_delivery(delivery_id, mch_no=viewer_of(request).mch_no)
    return html(request, "dev_delivery.html", delivery=detail)


@router.post("/deliveries/{delivery_id}/resend")
async def resend(delivery_id: DeliveryId, request: Request) -> Response:
    """A new schedule round starting now, as the admin API's resend (refused for SKIPPED or while attempted)."""
    svc, mch_no = NoticeService(container(request).db), viewer_of(request).mch_no
    before = await svc.get_delivery(delivery_id, mch_no=mch_no)
    after = await svc.resend(delivery_id, mch_no=mch_no)
    trim = {"attempt_log"}  # the record keeps the delivery's state, not every response body it received
    await audit.record(request, "delivery.resend", delivery_id, before.model_dump(mode="json", exclude=trim),
                       after.model_dump(mode="json", exclude=trim))  # fmt: skip
    return redirect(f"/portal/deliveries/{delivery_id}?ok=portal_resent")
