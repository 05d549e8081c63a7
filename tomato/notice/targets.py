"""Where an event's webhook goes: the object's own `notify_url`, else the app's default (docs/webhooks.md).

The object's URL belongs to the pay context, so it is asked through a `TargetLookup`: `PayTargets` asks the pay
service (`order_notify_urls` in one query per batch; `refund_notify_url`: the refund's URL, else its order's).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from tomato.pay.service import PayService


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


_ORDER_EVENTS = ("pay.", "split.")


class PayTargets:
    def __init__(self, pay: PayService) -> None:
        self._pay = pay

    async def object_urls(self, events: Sequence[EventRef]) -> list[str | None]:
        order_nos = {str(e.data.get("order_no")) for e in events if e.event_type.startswith(_ORDER_EVENTS)}
        orders = await self._pay.order_notify_urls(sorted(order_nos))
        urls: list[str | None] = []
        for event in events:
            if event.event_type.startswith(_ORDER_EVENTS):  # an order's, or a split of it: the order's URL
                urls.append(orders.get(str(event.data.get("order_no"))))
            elif event.event_type.startswith("refund.") and event.data.get("refund_no"):
                urls.append(await self._pay.refund_notify_url(str(event.data["refund_no"])))
            else:
                urls.append(None)
        return urls


class NoObjectUrls:
    """Every event goes to the app's default (tests and benchmarks without pay orders)."""

    async def object_urls(self, events: Sequence[EventRef]) -> list[str | None]:
        return [None] * len(events)
