"""Channel callbacks `/callbacks/{channel}/{channel_account_id}`: verify on the raw bytes, apply once,
answer in the channel's own form — success for duplicates too, a refusal when verification, account or amount
does not hold.
"""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request, Response

from tomato.channel.protocol import AckResponse, CallbackRejected
from tomato.channel.service import ChannelService
from tomato.core.errors import NotFound, PayloadTooLarge
from tomato.gateway.deps import container
from tomato.gateway.signed_route import read_body_capped
from tomato.pay.service import Outcome

log = logging.getLogger(__name__)
router = APIRouter(tags=["channel callbacks"], include_in_schema=False)  # full paths: Starlette routes get no prefix


def _send(ack: AckResponse) -> Response:
    return Response(ack.body, status_code=ack.status_code, media_type=ack.content_type)


def _refuse(channel: str, channel_account_id: str, reason: str) -> Response:
    """Refused in the path's channel's form; a path naming no channel we speak gets a plain 404."""
    log.warning("refused %r callback for %r: %s", channel, channel_account_id, reason)  # repr: the path is theirs
    ack = ChannelService.callback_refusal(channel, reason)
    if ack is None:
        return Response(b"unknown channel", status_code=404, media_type="text/plain")
    return _send(ack)


async def _callback_endpoint(request: Request) -> Response:
    """A plain Starlette endpoint: the path's two strings need none of FastAPI's parameter machinery."""
    params = request.path_params
    return await channel_callback(params["channel"], params["channel_account_id"], request)


router.add_route(
    "/callbacks/{channel}/{channel_account_id}", _callback_endpoint, methods=["POST"], include_in_schema=False
)


async def channel_callback(channel: str, channel_account_id: str, request: Request) -> Response:
    c = container(request)
    try:
        adapter = await c.channels.adapter(channel_account_id)
    except NotFound:
        return _refuse(channel, channel_account_id, "unknown channel account")
    if adapter.channel != channel:
        return _refuse(channel, channel_account_id, "channel does not match the account")
    try:
        body = await read_body_capped(request)
        notify = adapter.parse_callback(dict(request.headers), body)
    except (CallbackRejected, PayloadTooLarge) as exc:
        log.warning("refused %s callback for %s: %s", channel, channel_account_id, exc)
        return _send(adapter.callback_ack(False, "verification failed"))
    if notify.kind == "payout":
        if not await c.payouts.apply_notify(channel_account_id, notify):
            return _send(adapter.callback_ack(False, "payout, account or amount does not match"))
        return _send(adapter.callback_ack(True))
    outcome = await c.pay.apply_notify(channel_account_id, notify)
    if outcome is Outcome.REJECTED:
        return _send(adapter.callback_ack(False, "order, account or amount does not match"))
    return _send(adapter.callback_ack(True))
