"""Orders and attempts as plain attribute rows on the create, query and notify paths: building an ORM instance costs
ten times as much, and these rows are only read or inserted by statement, never added to a session."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

from sqlalchemy import Table

from tomato.pay.models import PayAttempt, PayOrder

_ORDER_COLUMNS = cast(Table, PayOrder.__table__).c


class _NewOrder(SimpleNamespace):
    """A new order's columns as plain attributes: a column left unset reads None, as on a transient ORM instance,
    and keeps its column default in the insert (`set_values`). A tenth of an ORM instance's cost to build."""

    def __getattr__(self, name: str) -> Any:
        if name in _ORDER_COLUMNS:
            return None
        raise AttributeError(name)


def new_order(**columns: Any) -> PayOrder:
    """A new (not yet inserted) order for `insert_order` and the submission that follows; never for a session."""
    return cast(PayOrder, _NewOrder(**columns))


def new_attempt(**columns: Any) -> PayAttempt:
    """A new attempt's columns as plain attributes (`insert_order`, `add_attempt`); never for a session itself."""
    return cast(PayAttempt, SimpleNamespace(**columns))


def set_values(row: PayOrder | PayAttempt) -> dict[str, Any]:
    """The attributes set on a new (transient) row: unset ones keep their column defaults."""
    return {k: v for k, v in vars(row).items() if not k.startswith("_")}


def detached(row: dict[str, Any]) -> PayOrder:
    """The row's columns as attributes, for reading (order_view …): no ORM instance is built (a tenth of the cost);
    never add it to a session."""
    return cast(PayOrder, SimpleNamespace(**row))
