"""`GET /v1/events`: the app's events, oldest first, each byte-identical to the webhook body (docs/api.md)."""

from __future__ import annotations

import json

from fastapi import APIRouter, Request, Response

from tomato.gateway.deps import container
from tomato.gateway.paging import Cursor, Limit, Page, check_limit, decode_int_cursor, encode_cursor
from tomato.gateway.signed_route import SignedRoute, current_app
from tomato.notice.schemas import WebhookEvent
from tomato.notice.service import NoticeService

router = APIRouter(prefix="/v1", route_class=SignedRoute, tags=["merchant: events"])


@router.get(
    "/events",
    response_class=Response,
    responses={200: {"model": Page[WebhookEvent], "description": "the webhook bodies, oldest first"}},
)
async def list_events(request: Request, limit: Limit = None, cursor: Cursor = None) -> Response:
    """Catch up on webhooks: every event of the calling app in commit order, `limit` 1–100 (default 20).

    Events appear once the relay has numbered them (core.positions), normally within a moment of their commit."""
    n = check_limit(limit)
    after = decode_int_cursor(cursor)  # an event's feed position
    page = await NoticeService(container(request).db).list_events(current_app(request).app_id, after, n)
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
