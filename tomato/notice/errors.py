"""Errors of the notice context (API error body; operators see them on the admin API)."""

from __future__ import annotations

from tomato.core.errors import Conflict, NotFound


class DeliveryNotFound(NotFound):
    code = "DELIVERY_NOT_FOUND"


class DeliveryNotResendable(Conflict):
    """The delivery has no URL (SKIPPED) or a worker is attempting it right now."""

    code = "DELIVERY_NOT_RESENDABLE"


class EventNotFound(NotFound):
    """No merchant-facing event of the caller's app has this id (or the retention job has purged it)."""

    code = "EVENT_NOT_FOUND"
