"""Tokens for the operator endpoints (`/metrics`, the API docs) on public ports: off, open, or behind a token.

The token is compared in constant time (both sides hashed first, so not even its length leaks). `/metrics` takes
`Authorization: Bearer <token>` (what Prometheus sends); the docs take the same, or HTTP Basic with the token as the
password, so a browser asks for it once and sends it with the page's own request for `/openapi.json`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

from starlette.requests import Request
from starlette.responses import Response

from tomato.gateway.errors import error_body, request_id


def offered_token(authorization: str | None, *, basic: bool) -> str | None:
    scheme, _, value = (authorization or "").strip().partition(" ")
    if scheme.lower() == "bearer":
        return value.strip()
    if basic and scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        return decoded.partition(":")[2]
    return None


def token_matches(offered: str | None, token: str) -> bool:
    if offered is None:
        return False
    return hmac.compare_digest(hashlib.sha256(offered.encode()).digest(), hashlib.sha256(token.encode()).digest())


def refusal(request: Request, token: str | None, *, realm: str, basic: bool = False) -> Response | None:
    """None when the request may pass (no token configured, or the right one offered); else the 401 to send."""
    if token is None or token_matches(offered_token(request.headers.get("authorization"), basic=basic), token):
        return None
    scheme = "Basic" if basic else "Bearer"
    body = error_body("UNAUTHENTICATED", f"{realm} needs its token", request_id(request))
    return Response(body, status_code=401, media_type="application/json",
                    headers={"WWW-Authenticate": f'{scheme} realm="{realm}"'})  # fmt: skip
