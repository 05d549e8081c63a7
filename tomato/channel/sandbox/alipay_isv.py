"""Service-provider ("ISV") authorizations of the Alipay simulator (docs/channels.md, "Service-provider accounts").

`authorize(app_id, app_auth_token, auth_app_id)` records that provider app `app_id` may act for sub-merchant
`auth_app_id` with that token, as Alipay's app authorization does. A request carrying `app_auth_token` acts for the
sub-merchant: its trades are the sub-merchant's (the book's merchant id is `auth_app_id`), its bill is theirs. A
token not issued to the calling app is refused as Alipay does: code 20001 "Insufficient Token Permissions", sub_code
`aop.invalid-app-auth-token`. Every authenticated request is recorded (`seen`) so tests can check what was sent.
"""

from __future__ import annotations

import hmac
from collections import deque
from dataclasses import dataclass, field

INVALID_TOKEN_CODE = "20001"
INVALID_TOKEN_MSG = "Insufficient Token Permissions"
INVALID_TOKEN_SUB_CODE = "aop.invalid-app-auth-token"
INVALID_TOKEN_SUB_MSG = "无效的应用授权令牌"
NO_BILL_SUB_CODE = "isp.bill_not_exist"  # a sub-merchant's day without any trade: no bill (40004)
NO_BILL_SUB_MSG = "账单不存在"
SEEN_KEPT = 1000


@dataclass(frozen=True)
class Grant:
    """One app authorization: provider app `app_id` acts for `auth_app_id` with `token` (never printed)."""

    app_id: str
    auth_app_id: str
    token: str = field(repr=False)


@dataclass(frozen=True)
class SeenRequest:
    """A request whose signature verified: the calling app, the token it sent (not printed) and whom it acted for
    (`merchant_id`: the sub-merchant with a valid token, the app itself without one, None when refused)."""

    method: str
    app_id: str
    app_auth_token: str | None = field(repr=False)
    merchant_id: str | None


class IsvGrants:
    def __init__(self) -> None:
        self._by_token: dict[str, Grant] = {}
        self.seen: deque[SeenRequest] = deque(maxlen=SEEN_KEPT)

    def authorize(self, app_id: str, app_auth_token: str, auth_app_id: str) -> Grant:
        """Issue (or re-issue) `app_auth_token` to provider app `app_id` for sub-merchant `auth_app_id`."""
        if not app_id or not app_auth_token or not auth_app_id:
            raise ValueError("app_id, app_auth_token and auth_app_id are required")
        grant = Grant(app_id, auth_app_id, app_auth_token)
        self._by_token[app_auth_token] = grant
        return grant

    def acting_for(self, method: str, app_id: str, app_auth_token: str | None) -> str | None:
        """Whom a verified request from `app_id` acts for; None when its token was not issued to that app."""
        merchant_id: str | None = app_id
        if app_auth_token is not None:
            grant = self._by_token.get(app_auth_token)
            valid = grant is not None and hmac.compare_digest(grant.app_id.encode(), app_id.encode())
            merchant_id = grant.auth_app_id if grant is not None and valid else None
        self.seen.append(SeenRequest(method, app_id, app_auth_token, merchant_id))
        return merchant_id

    def tokens_sent(self, method: str | None = None) -> list[str | None]:
        """The `app_auth_token` of every recorded request (of `method` when given), oldest first."""
        return [r.app_auth_token for r in self.seen if method is None or r.method == method]
