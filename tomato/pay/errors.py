"""Errors of the pay context, with their stable API codes."""

from __future__ import annotations

from tomato.core.errors import Conflict, NotFound


class OrderNotFound(NotFound):
    code = "ORDER_NOT_FOUND"


class OutTradeNoConflict(Conflict):
    code = "OUT_TRADE_NO_CONFLICT"


class OrderStateConflict(Conflict):
    code = "ORDER_STATE_CONFLICT"
