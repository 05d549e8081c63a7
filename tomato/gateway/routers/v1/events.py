"""`GET /v1/events` and `GET /v1/events/{event_id}`: the app's events, each byte-identical to the webhook body
(docs/api.md)."""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from tomato.gateway.deps import container
from tomato.gateway.list_filters import CreatedFrom, CreatedTo, created_window
from tomato.gateway.openapi import errors
from tomato.gateway.paging import Cursor, Limit, Page, check_limit, decode_int_cursor, encode_cursor
from tomato.gateway.signed_route import SignedRoute, current_app
from tomato.notice.events import EventType
from tomato.notice.schemas import EventFilter, WebhookEvent
from tomato.notice.service import NoticeService

router = APIRouter(prefix="/v1", route_class=SignedRoute, tags=["merchant: events"])


@router.get(
    "/events",
    response_class=Response,
    responses={200: {"model": Page[WebhookEvent], "description": "the webhook bodies, oldest first"}},
)
async def list_events(
    request: Request,
    limit: Limit = None,
    cursor: Cursor = None,
    type: Annotated[EventType | None, Query(description="only events of this type")] = None,  # noqa: A002
    created_from: CreatedFrom = None,
    created_to: CreatedTo = None,
) -> Response:
    """Catch up on webhooks: every event of the calling app in commit order, `limit` 1–100 (default 20).

    Events appear once the relay has numbered them (core.positions), normally within a moment of their commit."""
    n = check_limit(limit)
    after = decode_int_cursor(cursor)  # an event's feed position
    window = created_window(created_from, created_to)
    filters = EventFilter(None if type is None else type.value, window.start, window.end)
    page = await NoticeService(container(request).db).list_events(current_app(request).app_id, after, n, filters)
    next_cursor = encode_cursor(str(page.last_position)) if page.more and page.last_position is not None else None
    # the stored bodies are spliced in as they are, so each item is exactly what the webhook carried
    body = (
        b'{"data":['
        + b",".join(p.encode() for p in page.payloads)
        + b'],"next_cursor":'
        + json.dumps(next_cursor).encode()
        + b"}"
    )
    return Response(body, media_type="application/json")


@router.get(
    "/events/{event_id}",
    response_class=Response,
    responses={200: {"model": WebhookEvent, "description": "the webhook body"}, **errors(404)},
)
async def get_event(event_id: str, request: Request) -> Response:
    """One of the app's events, exactly as its webhook carried it; unknown (or past the retention window of the
    event store) → 404 EVENT_NOT_FOUND."""
    payload = await NoticeService(container(request).db).get_event(current_app(request).app_id, event_id)
    return Response(payload.encode(), media_type="application/json")
