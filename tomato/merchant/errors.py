"""Errors of the merchant context, with their stable API codes."""

from __future__ import annotations

from tomato.core.errors import AuthError, Conflict, Forbidden, NotFound


class MerchantNotFound(NotFound):
    code = "MERCHANT_NOT_FOUND"


class AppNotFound(NotFound):
    code = "APP_NOT_FOUND"


class KeyNotFound(NotFound):
    code = "KEY_NOT_FOUND"


class UnknownApp(AuthError):
    """The signed API's view of a missing app: 401, not 404."""

    code = "APP_NOT_FOUND"


class AppDisabled(Forbidden):
    code = "APP_DISABLED"


class MerchantFrozen(Forbidden):
    code = "MERCHANT_FROZEN"


class PayMethodNotEnabled(Forbidden):
    code = "PAY_METHOD_NOT_ENABLED"


class TooManyKeys(Conflict):
    code = "KEY_LIMIT_REACHED"


class LastKey(Conflict):
    code = "LAST_KEY"


class FeePlanNotFound(NotFound):
    code = "FEE_PLAN_NOT_FOUND"


class AdminTokenNotFound(NotFound):
    code = "TOKEN_NOT_FOUND"


class AdminTokenRevoked(Conflict):
    """Revoking a token already revoked: the code every "already in that state" conflict of the admin API uses."""

    code = "ORDER_STATE_CONFLICT"
