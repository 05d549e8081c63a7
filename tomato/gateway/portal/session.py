"""The portal's session cookie: the console's sealed session under its own name, path and seal context.

The token inside is `<user_id>.<epoch>` once signed in, or `pending:<user_id>.<epoch>` between the password and the
one-time code (that half-signed-in state lasts 5 minutes). The epoch is the user's `session_epoch`: disabling the
user, or changing their role, bumps it and every cookie of theirs stops working on its next request.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from tomato.core.crypto import SecretBox
from tomato.gateway.console import session as sealed
from tomato.gateway.console.session import Session, new_session

COOKIE = "tomato_portal"
PATH = "/portal"
CONTEXT = "portal-session/v1"
MAX_AGE_S = 8 * 3600
PENDING_S = 300
PENDING = "pending:"

__all__ = ["Session", "new_session", "read", "write", "clear", "token_for", "parse_token"]


def read(request: Request, box: SecretBox, now: float) -> Session | None:
    return sealed.unseal(box, request.cookies.get(COOKIE), now, context=CONTEXT, max_age_s=MAX_AGE_S)


def write(response: Response, request: Request, box: SecretBox, session: Session) -> None:
    sealed.set_cookie(response, request, box, session, cookie=COOKIE, path=PATH, context=CONTEXT, max_age_s=MAX_AGE_S)


def clear(response: Response, request: Request) -> None:
    sealed.clear_cookie(response, request, cookie=COOKIE, path=PATH)


def token_for(user_id: str, epoch: int, pending: bool = False) -> str:
    return f"{PENDING if pending else ''}{user_id}.{epoch}"


def parse_token(token: str | None) -> tuple[str, int, bool] | None:
    """(user_id, epoch, pending) or None for anything malformed."""
    if not token:
        return None
    pending = token.startswith(PENDING)
    user_id, _, epoch = token.removeprefix(PENDING).partition(".")
    if not user_id.startswith("U") or not epoch.isascii() or not epoch.isdigit() or len(epoch) > 9:
        return None
    return user_id, int(epoch), pending
