"""Every portal action that changes something leaves an audit record (who, when, what) via "portal", written after
the change succeeded, with the merchant it belongs to. As in the console, a failure to write the record does not
undo an action that has already happened: it is logged at ERROR instead."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel
from starlette.requests import Request

from tomato.gateway.deps import container
from tomato.gateway.errors import request_id
from tomato.gateway.portal.guard import viewer_of

log = logging.getLogger(__name__)


def view(model: BaseModel | None) -> dict[str, Any] | None:
    return None if model is None else model.model_dump(mode="json")


async def record(
    request: Request,
    action: str,
    target: str,
    before: Mapping[str, Any] | BaseModel | None = None,
    after: Mapping[str, Any] | BaseModel | None = None,
) -> None:
    """`action` is `<object>.<verb>` like the API's (`refund.create`, `app_key.rotate`, `payout.create`)."""
    member = viewer_of(request).member
    rid = request_id(request) or None
    try:
        await container(request).merchants.record_admin_action(
            via="portal", action=action, target=target, before=before, after=after, request_id=rid,
            actor=f"portal:{member.role}:{member.email}", actor_id=member.user_id, mch_no=member.mch_no,
        )  # fmt: skip
    except Exception:
        log.exception("audit record lost: %s on %s [%s]", action, target, rid)
