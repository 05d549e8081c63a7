"""Where an event's webhook goes: the object's own `notify_url`, else the app's default (API.md §2).

The object's URL belongs to the pay context, so it is asked through a `TargetLookup`. `PayTargets` asks the pay
service for refunds (`refund_notify_url`: the refund's URL, else its order's). For orders the pay service has
no such call yet, so it reads `pay_orders.notify_url` by a two-column Core query (no pay model is imported) —
to be replaced by `PayService.order_notify_urls` when that exists.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import column, select, table

from tomato.core.db import Database
from tomato.pay.service import PayService

_ORDERS = table("pay_orders", column("order_no"), column("notify_url"))


@dataclass(frozen=True)
class EventRef:
    event_id: str
    event_type: str
    aggregate_type: str
    aggregate_id: str
    data: dict[str, Any]


class TargetLookup(Protocol):
    async def object_urls(self, events: Sequence[EventRef]) -> list[str | None]:
        """The object's own notify_url per event (None: use the app's default)."""
        ...


class PayTargets:
    def __init__(self, db: Database, pay: PayService) -> None:
        self._db = db
        self._pay = pay

    async def object_urls(self, events: Sequence[EventRef]) -> list[str | None]:
        order_nos = {str(e.data.get("order_no")) for e in events if e.event_type.startswith("pay.")}
        orders = await self._order_urls(sorted(order_nos)) if order_nos else {}
        urls: list[str | None] = []
        for event in events:
            if event.event_type.startswith("pay."):
                urls.append(orders.get(str(event.data.get("order_no"))))
            elif event.event_type.startswith("refund.") and event.data.get("refund_no"):
                urls.append(await self._pay.refund_notify_url(str(event.data["refund_no"])))
            else:
                urls.append(None)
        return urls

    async def _order_urls(self, order_nos: list[str]) -> dict[str, str | None]:
        async with self._db.engine.connect() as conn:
            rows = await conn.execute(
                select(_ORDERS.c.order_no, _ORDERS.c.notify_url).where(_ORDERS.c.order_no.in_(order_nos))
            )
            return {str(r.order_no): r.notify_url for r in rows}


class NoObjectUrls:
    """Every event goes to the app's default (tests and benchmarks without pay orders)."""

    async def object_urls(self, events: Sequence[EventRef]) -> list[str | None]:
        return [None] * len(events)
