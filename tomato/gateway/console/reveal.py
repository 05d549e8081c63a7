"""A new secret (an app's HMAC secret, an admin token) is shown once, on a page of its own reached by a redirect, so
that reloading it never posts the form again (which would make a second app, key or token).

The form's answer puts the secret in a short-lived cookie sealed like the session (AES-GCM under the platform key
ring, its own associated data), bound to the session's CSRF token and sent only to `/console/reveal`; that page shows
it and deletes the cookie in the same answer. A reload, another session or a copied cookie shows nothing.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from tomato.core.crypto import SecretBoxError
from tomato.gateway.console.guard import viewer_of
from tomato.gateway.console.render import redirect
from tomato.gateway.console.session import is_https
from tomato.gateway.deps import container

COOKIE = "tomato_console_reveal"
PATH = "/console/reveal"
MAX_AGE_S = 300
_CONTEXT = "console-reveal/v1"


def redirect_to_reveal(request: Request, shown: dict[str, str]) -> Response:
    """The answer to a form that made a secret: a 303 to the page that shows it, the secret sealed in a cookie."""
    c = container(request)
    plain = json.dumps({"c": viewer_of(request).session.csrf, "i": int(c.clock.timestamp()), "s": shown})
    sealed = base64.urlsafe_b64encode(c.box.encrypt(plain, context=_CONTEXT).encode()).decode().rstrip("=")
    response = redirect(PATH)
    response.set_cookie(COOKIE, sealed, max_age=MAX_AGE_S, path=PATH, secure=is_https(request), httponly=True,
                        samesite="strict")  # fmt: skip
    return response


def take(request: Request) -> dict[str, Any] | None:
    """What a form of this session sealed within the last 5 minutes (the page then calls `forget`)."""
    c = container(request)
    value = request.cookies.get(COOKIE)
    if not value or len(value) > 8192:
        return None
    try:
        sealed = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode()
        data = json.loads(c.box.decrypt(sealed, context=_CONTEXT))
    except (binascii.Error, UnicodeDecodeError, ValueError, SecretBoxError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("i"), int) or not isinstance(data.get("s"), dict):
        return None
    if not hmac.compare_digest(str(data.get("c")), viewer_of(request).session.csrf):
        return None  # sealed for another session
    if not 0 <= c.clock.timestamp() - data["i"] <= MAX_AGE_S:
        return None
    shown: dict[str, Any] = data["s"]
    return shown


def forget(response: Response, request: Request) -> None:
    response.delete_cookie(COOKIE, path=PATH, secure=is_https(request), httponly=True, samesite="strict")
