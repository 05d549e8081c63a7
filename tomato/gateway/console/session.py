"""The console's session cookie: the signed-in admin token, sealed with the platform's secret box.

The cookie holds `{token, csrf, iat}` encrypted and authenticated with AES-GCM under the platform key ring
(`SecretBox`, the same keys that encrypt secrets at rest), bound by associated data to this one use, so it can be
neither read nor altered nor moved from another sealed column. Nothing in it is trusted without the seal; the token
inside is checked against the database on every request, so revoking it ends the session at once. The cookie is
HttpOnly, SameSite=Strict, scoped to `/console`, and Secure whenever the request came over https.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response

from tomato.core.crypto import SecretBox, SecretBoxError

COOKIE = "tomato_console"
PATH = "/console"
MAX_AGE_S = 12 * 3600  # a sign-in lasts a working day at most
_CONTEXT = "console-session/v1"


@dataclass(frozen=True)
class Session:
    """`token` is None before sign-in: the anonymous session carries only the sign-in form's CSRF token."""

    token: str | None
    csrf: str
    issued_at: int


def new_session(token: str | None, now: float) -> Session:
    """A fresh CSRF token every time: signing in never keeps the anonymous session's."""
    return Session(token=token, csrf=secrets.token_urlsafe(32), issued_at=int(now))


def seal(box: SecretBox, session: Session, context: str = _CONTEXT) -> str:
    """`context` binds the seal to one use: the portal's cookies (another context) never open as the console's."""
    plain = json.dumps({"t": session.token, "c": session.csrf, "i": session.issued_at}, separators=(",", ":"))
    sealed = box.encrypt(plain, context=context)
    return base64.urlsafe_b64encode(sealed.encode()).decode().rstrip("=")


def unseal(
    box: SecretBox, value: str | None, now: float, context: str = _CONTEXT, max_age_s: int = MAX_AGE_S
) -> Session | None:
    """None for a missing, tampered, foreign or expired cookie: all of them mean "not signed in"."""
    if not value or len(value) > 4096:
        return None
    try:
        sealed = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode()
        data = json.loads(box.decrypt(sealed, context=context))
    except (binascii.Error, UnicodeDecodeError, ValueError, SecretBoxError):
        return None
    if not isinstance(data, dict):
        return None
    token, csrf, issued = data.get("t"), data.get("c"), data.get("i")
    if not (token is None or isinstance(token, str)) or not isinstance(csrf, str) or not isinstance(issued, int):
        return None
    if not 0 <= now - issued <= max_age_s:
        return None
    return Session(token=token, csrf=csrf, issued_at=issued)


def is_https(request: Request) -> bool:
    return request.url.scheme == "https"


def set_cookie(
    response: Response,
    request: Request,
    box: SecretBox,
    session: Session,
    *,
    cookie: str = COOKIE,
    path: str = PATH,
    context: str = _CONTEXT,
    max_age_s: int = MAX_AGE_S,
) -> None:
    response.set_cookie(
        cookie,
        seal(box, session, context),
        max_age=max_age_s,
        path=path,
        secure=is_https(request),
        httponly=True,
        samesite="strict",
    )


def clear_cookie(response: Response, request: Request, *, cookie: str = COOKIE, path: str = PATH) -> None:
    response.delete_cookie(cookie, path=path, secure=is_https(request), httponly=True, samesite="strict")
