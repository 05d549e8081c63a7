"""CSRF protection for every console form: a per-session token in a hidden field, compared in constant time.

The session cookie is SameSite=Strict already; the token is the second, independent check, so a form posted from
anywhere that did not render it (another site, a replayed page of another session, a script without it) is refused.
"""

from __future__ import annotations

import hmac

from tomato.gateway.console.session import Session

FIELD = "csrf_token"


def valid(session: Session | None, presented: str | None) -> bool:
    if session is None or not presented:
        return False
    return hmac.compare_digest(session.csrf.encode(), presented.encode())
