"""The error hierarchy. Every error a client can see carries a stable code and HTTP status (docs/api.md).

    TomatoError
    ├── InvalidRequest            400/422 INVALID_REQUEST (details: [{field, issue}])
    ├── PayloadTooLarge           413 PAYLOAD_TOO_LARGE
    ├── AuthError                 401 SIGNATURE_INVALID | TIMESTAMP_EXPIRED | NONCE_REUSED | APP_NOT_FOUND
    ├── Forbidden                 403 APP_DISABLED | MERCHANT_FROZEN | PAY_METHOD_NOT_ENABLED | FORBIDDEN
    ├── NotFound                  404 ORDER_NOT_FOUND | REFUND_NOT_FOUND | PAYOUT_NOT_FOUND | NOT_FOUND
    ├── Conflict                  409 *_CONFLICT | REFUND_AMOUNT_EXCEEDED | REFUND_NOT_ALLOWED | …
    ├── RateLimited               429 RATE_LIMITED (retry_after seconds)
    ├── ChannelError              502 CHANNEL_ERROR
    ├── NoChannelAvailable        503 NO_CHANNEL_AVAILABLE
    ├── ServiceUnavailable        503 SERVICE_UNAVAILABLE (retry_after seconds; a backend the check needs is down)
    └── InternalError             500 INTERNAL_ERROR

Contexts subclass these (or instantiate them with their own code); the gateway maps them to the error body.
"""

from __future__ import annotations

from typing import Any


class TomatoError(Exception):
    code: str = "INTERNAL_ERROR"
    status: int = 500

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        status: int | None = None,
        details: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        self.details = details


class InvalidRequest(TomatoError):
    code = "INVALID_REQUEST"
    status = 422

    @classmethod
    def field(cls, field: str, issue: str) -> InvalidRequest:
        return cls(f"{field}: {issue}", details=[{"field": field, "issue": issue}])


class MalformedJson(InvalidRequest):
    status = 400


class PayloadTooLarge(TomatoError):
    code = "PAYLOAD_TOO_LARGE"
    status = 413


class AuthError(TomatoError):
    code = "SIGNATURE_INVALID"
    status = 401


class Unauthenticated(AuthError):
    code = "UNAUTHENTICATED"


class Forbidden(TomatoError):
    code = "FORBIDDEN"
    status = 403


class NotFound(TomatoError):
    code = "NOT_FOUND"
    status = 404


class Conflict(TomatoError):
    code = "CONFLICT"
    status = 409


class RateLimited(TomatoError):
    code = "RATE_LIMITED"
    status = 429

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ChannelError(TomatoError):
    code = "CHANNEL_ERROR"
    status = 502


class NoChannelAvailable(TomatoError):
    code = "NO_CHANNEL_AVAILABLE"
    status = 503


class ServiceUnavailable(TomatoError):
    """A backend a safety check depends on (nonce store, rate limiter) is unreachable: refuse, never skip the check."""

    code = "SERVICE_UNAVAILABLE"
    status = 503

    def __init__(self, message: str, *, retry_after: int = 1) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class InternalError(TomatoError):
    code = "INTERNAL_ERROR"
    status = 500


class HttpInsideTransaction(RuntimeError):
    """Raised by guarded HTTP clients when called while a unit of work is open (docs/architecture.md)."""
