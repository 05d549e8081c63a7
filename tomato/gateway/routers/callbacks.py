"""Channel callbacks `/callbacks/{channel}/{channel_account_id}`: verify on the raw bytes, apply once,
answer in the channel's own form — success for duplicates too, a refusal when verification, account or amount
does not hold.
"""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request, Response

from tomato.channel.protocol import AckResponse, CallbackRejected
from tomato.core.errors import NotFound, PayloadTooLarge
from tomato.gateway.deps import container
from tomato.gateway.signed_route import read_body_capped
from tomato.pay.service import Outcome

log = logging.getLogger(__name__)
router = APIRouter(prefix="/callbacks", tags=["channel callbacks"], include_in_schema=False)


def _send(ack: AckResponse) -> Response:
    return Response(ack.body, status_code=ack.status_code, media_type=ack.content_type)


@router.post("/{channel}/{channel_account_id}")
async def channel_callback(channel: str, channel_account_id: str, request: Request) -> Response:
    c = container(request)
    try:
        adapter = await c.channels.adapter(channel_account_id)
    except NotFound:
        return Response(b"unknown channel account", status_code=404, media_type="text/plain")
    if adapter.channel != channel:
        return Response(b"channel does not match the account", status_code=404, media_type="text/plain")
    try:
        body = await read_body_capped(request)
        notify = adapter.parse_callback(dict(request.headers), body)
    except (CallbackRejected, PayloadTooLarge) as exc:
        log.warning("refused %s callback for %s: %s", channel, channel_account_id, exc)
        return _send(adapter.callback_ack(False, "verification failed"))
    outcome = await c.pay.apply_notify(channel_account_id, notify)
    if outcome is Outcome.REJECTED:
        return _send(adapter.callback_ack(False, "order, account or amount does not match"))
    return _send(adapter.callback_ack(True))
