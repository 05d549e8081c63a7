"""Every console form that changes something leaves an audit record (via "console"), written after the change
succeeded, with the target's view before and after (secrets never: views carry none)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel
from starlette.requests import Request

from tomato.gateway.console.guard import viewer_of
from tomato.gateway.deps import container
from tomato.gateway.errors import request_id


def view(model: BaseModel | None) -> dict[str, Any] | None:
    return None if model is None else model.model_dump(mode="json")


async def record(
    request: Request, action: str, target: str, before: Mapping[str, Any] | None, after: Mapping[str, Any] | None
) -> None:
    from tomato.gateway.audit_trail import record_admin_action

    await record_admin_action(
        container(request), actor_token=viewer_of(request).token, via="console", action=action, target=target,
        before=before, after=after, request_id=request_id(request) or None,
    )  # fmt: skip
