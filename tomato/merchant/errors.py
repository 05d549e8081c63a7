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


class PortalUserNotFound(NotFound):
    code = "USER_NOT_FOUND"


class PortalUserConflict(Conflict):
    """An email already taken (sign-in names are unique), or a change the user's state does not allow."""

    code = "USER_CONFLICT"


class InviteNotFound(NotFound):
    """Unknown, used or expired: all look the same, so an invitation link reveals nothing about others."""

    code = "INVITE_NOT_FOUND"


class SignInFailed(AuthError):
    """Wrong email, password or one-time code: one answer for all, so nothing tells which part was wrong."""

    code = "SIGN_IN_FAILED"
    status = 401


class AccountLocked(AuthError):
    code = "ACCOUNT_LOCKED"
    status = 423
