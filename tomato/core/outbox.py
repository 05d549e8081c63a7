"""The transactional outbox: events are rows written in the same transaction as the change they announce.

A relay (`tomato.core.relay`) later publishes unsent rows to the event bus; `published_at IS NULL` is the only
selector (never an id watermark), so a row whose transaction commits late is still sent.

`seq` (and the event id) is taken when the row is written, so rows commit out of `seq` order. Readers that page
through events (`GET /v1/events`) use `position` instead: numbered after commit, in commit order, by
`tomato.core.positions`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, DateTime, Index, String, Text, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from tomato.core.clock import rfc3339, utcnow
from tomato.core.db import Base
from tomato.core.ids import Snowflake


class OutboxEvent(Base):
    __tablename__ = "outbox_events"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, unique=True)
    event_type: Mapped[str] = mapped_column(String(64))
    aggregate_type: Mapped[str] = mapped_column(String(32))
    aggregate_id: Mapped[str] = mapped_column(String(64))
    app_id: Mapped[str | None] = mapped_column(String(64))
    payload: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    published_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    position: Mapped[int | None] = mapped_column(BigInteger)  # None until numbered after commit
    facts: Mapped[str | None] = mapped_column(Text)  # JSON for the platform's own consumers; never sent out

    __table_args__ = (
        Index("ix_outbox_unpublished", "published_at", "seq"),
        Index("ix_outbox_position", "position", unique=True),
        Index("ix_outbox_app_position", "app_id", "position"),
        Index("ix_outbox_app_type_position", "app_id", "event_type", "position"),  # `GET /v1/events?type=` (0017)
        Index(
            "ix_outbox_unpositioned",
            "seq",
            postgresql_where=text("position IS NULL"),
            sqlite_where=text("position IS NULL"),
        ),
    )


@dataclass(frozen=True)
class BusMessage:
    """What travels on the bus: the event id (consumers dedupe on it), its type (routing key) and JSON body."""

    id: str
    type: str
    body: bytes

    def json(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.body)
        return data


def add_event(
    session: AsyncSession,
    ids: Snowflake,
    *,
    event_type: str,
    aggregate_type: str,
    aggregate_id: str,
    data: dict[str, Any],
    app_id: str | None = None,
    facts: dict[str, Any] | None = None,
) -> OutboxEvent:
    """Adds the event to the caller's unit of work; the body is the webhook body (docs/webhooks.md). `facts` is
    what internal consumers need beyond it (the ledger: fees, channel account, business date), kept off the wire."""
    values = event_values(
        ids, event_type=event_type, aggregate_type=aggregate_type, aggregate_id=aggregate_id, data=data,
        app_id=app_id, facts=facts,
    )  # fmt: skip
    row = OutboxEvent(**values)
    session.add(row)
    return row


def event_values(
    ids: Snowflake,
    *,
    event_type: str,
    aggregate_type: str,
    aggregate_id: str,
    data: dict[str, Any],
    app_id: str | None = None,
    facts: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The outbox row's columns, for writers that insert it themselves in their own statement (the notify path)."""
    seq = ids.next_int()
    event_id = f"E{seq}"
    now = utcnow()
    body = {"id": event_id, "type": event_type, "created_at": rfc3339(now), "data": data}
    return {
        "id": event_id,
        "seq": seq,
        "event_type": event_type,
        "aggregate_type": aggregate_type,
        "aggregate_id": aggregate_id,
        "app_id": app_id,
        "payload": json.dumps(body, separators=(",", ":"), ensure_ascii=False),
        "created_at": now,
        "published_at": None,
        "facts": None if facts is None else json.dumps(facts, separators=(",", ":"), sort_keys=True),
    }


def to_message(row: OutboxEvent) -> BusMessage:
    return BusMessage(id=row.id, type=row.event_type, body=row.payload.encode())
