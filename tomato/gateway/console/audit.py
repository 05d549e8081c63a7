"""Every console form that changes something leaves an audit record via "console", written after the change
succeeded, with the target's view before and after (the trail redacts secrets on the way in).

Like the API's records (gateway.audit_trail.audited), a failure to write the record does not undo or hide an
action that has already happened: it is logged at ERROR instead.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel
from starlette.requests import Request

from tomato.gateway.audit_trail import record_admin_action
from tomato.gateway.console.guard import viewer_of
from tomato.gateway.deps import container
from tomato.gateway.errors import request_id

log = logging.getLogger(__name__)


def view(model: BaseModel | None) -> dict[str, Any] | None:
    return None if model is None else model.model_dump(mode="json")


async def record(
    request: Request, action: str, target: str, before: Mapping[str, Any] | None, after: Mapping[str, Any] | None
) -> None:
    rid = request_id(request) or None
    try:
        await record_admin_action(
            container(request), actor_token=viewer_of(request).token, via="console", action=action, target=target,
            before=before, after=after, request_id=rid,
        )  # fmt: skip
    except Exception:
        log.exception("audit record lost: %s on %s [%s]", action, target, rid)
