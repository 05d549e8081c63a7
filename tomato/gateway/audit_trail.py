"""The gateway's side of the admin audit trail: what the admin API routes and the console call once an action has
succeeded. Storage, redaction and queries live in the merchant context (tomato.merchant.audit); this only adapts a
request (its bearer token and request id) to it.

The row is written after the action's own commit, in its own transaction: an action never waits on, or is rolled
back by, its audit row. Should that write fail, the action has still happened, so the answer stays the action's
answer and the loss is logged at ERROR with everything the row would have held but its views.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from fastapi import Request
from pydantic import BaseModel

from tomato.bootstrap import Container
from tomato.gateway.deps import container

log = logging.getLogger(__name__)


async def record_admin_action(
    c: Container,
    *,
    actor_token: str,
    via: str,
    action: str,
    target: str,
    before: Mapping[str, Any] | None,
    after: Mapping[str, Any] | None,
    request_id: str | None = None,
) -> None:
    """One audit row: `actor_token` is the plaintext bearer token the request used (resolved here to its id and
    role:name, never stored); `via` is "api", "console" or "cli"; `before`/`after` are the target's views (secrets
    are redacted on the way in). Raises ValueError on a `via` or `action` no caller should send."""
    await c.merchants.record_admin_action(
        actor_token=actor_token,
        via=via,
        action=action,
        target=target,
        before=before,
        after=after,
        request_id=request_id,
    )


def bearer_token(request: Request) -> str:
    """The token of `Authorization: Bearer …` (the route class has already checked it)."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


async def audited(
    request: Request,
    action: str,
    target: str,
    *,
    before: BaseModel | Mapping[str, Any] | None = None,
    after: BaseModel | Mapping[str, Any] | None = None,
) -> None:
    """What every mutating `/admin` route calls after its service call succeeded: records it `via` "api"."""
    try:
        await record_admin_action(
            container(request),
            actor_token=bearer_token(request),
            via="api",
            action=action,
            target=target,
            before=_view(before),
            after=_view(after),
            request_id=getattr(request.state, "request_id", None),
        )
    except Exception:
        log.exception("audit record lost: %s on %s [%s]", action, target, getattr(request.state, "request_id", ""))


def _view(value: BaseModel | Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    return value
