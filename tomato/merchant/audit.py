"""The audit trail of admin actions: one row per action that succeeded, with the target's views before and after.

Secrets never reach a row: every key that names one (`secret`, `token`, `private_key_pem`, `api_v3_key`, …, at any
depth) has its value replaced by "[redacted]", and the acting token's plaintext is scrubbed from every string, so a
caller that passes a whole form or a creation answer cannot leak what it holds. Rows are only inserted, never
changed: the trail is what operators and finance read and export (docs/audit.md).
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import Enum
from typing import Any

from pydantic import BaseModel

from tomato.core.clock import rfc3339, utcnow
from tomato.core.db import Database
from tomato.core.ids import Snowflake
from tomato.merchant import repository as repo
from tomato.merchant.admin_schemas import VIAS, AdminIdentity, AuditEntryView, AuditFilter
from tomato.merchant.models import AdminAudit

log = logging.getLogger(__name__)

REDACTED = "[redacted]"
SECRET_KEYS = frozenset(
    {
        "secret",
        "token",
        "password",
        "private_key_pem",
        "api_v3_key",
        "api_v2_key",
        "secret_ciphertext",
        "private_key_ciphertext",
    }
)
SECRET_SUFFIXES = ("_secret", "_secrets", "_token", "_password", "_private_key", "private_key_pem", "_ciphertext")
MAX_ACTION = 64
MAX_TARGET = 128
MAX_ACTOR = 160
EXPORT_PAGE = 500


def is_secret_key(key: str) -> bool:
    k = key.lower()
    return k in SECRET_KEYS or k.endswith(SECRET_SUFFIXES)


def redact(value: Any, scrub: str | None = None) -> Any:
    """A JSON-ready copy of `value` with every secret-named key's value replaced and `scrub` cut out of strings."""
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json")
    if isinstance(value, Mapping):
        return {str(k): REDACTED if is_secret_key(str(k)) else redact(v, scrub) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [redact(v, scrub) for v in value]
    if isinstance(value, str):
        return value.replace(scrub, REDACTED) if scrub and scrub in value else value
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, datetime):
        return rfc3339(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Enum):
        return redact(value.value, scrub)
    if isinstance(value, Decimal):
        return str(value)
    return redact(str(value), scrub)


def _encode(view: Mapping[str, Any] | BaseModel | None, scrub: str | None) -> str | None:
    if view is None:
        return None
    return json.dumps(redact(view, scrub), ensure_ascii=False, sort_keys=True, separators=(",", ":"))


class AdminAuditLog:
    def __init__(self, db: Database, ids: Snowflake) -> None:
        self._db = db
        self._ids = ids

    async def record(
        self,
        *,
        who: AdminIdentity | None,
        actor: str,
        via: str,
        action: str,
        target: str,
        before: Mapping[str, Any] | BaseModel | None,
        after: Mapping[str, Any] | BaseModel | None,
        request_id: str | None = None,
        scrub: str | None = None,
        actor_id: str | None = None,
        mch_no: str | None = None,
    ) -> AuditEntryView:
        """Inserts one row in its own unit of work. `who` is the acting token (None from the CLI, where `actor`
        names the user); `scrub` is the token's plaintext, cut out of anything stored. A portal user's action names
        the user's id in `actor_id` and the merchant in `mch_no`."""
        if via not in VIAS:
            raise ValueError(f"via must be one of {', '.join(VIAS)}, not {via!r}")
        if not action or len(action) > MAX_ACTION:
            raise ValueError(f"action must be 1-{MAX_ACTION} characters")
        row = AdminAudit(
            id=self._ids.next_int(),
            at=utcnow(),
            actor=(who.actor if who is not None else actor)[:MAX_ACTOR],
            actor_token_id=who.token_id if who is not None else actor_id,
            via=via,
            action=action,
            target=target[:MAX_TARGET],
            before=_encode(before, scrub),
            after=_encode(after, scrub),
            request_id=request_id[:64] if request_id else None,
            mch_no=mch_no,
        )
        async with self._db.uow() as uow:
            uow.session.add(row)
            await uow.commit()
        log.info("admin action %s on %s by %s via %s", row.action, row.target, row.actor, row.via)
        return entry_view(row)

    async def page(self, f: AuditFilter, before_id: int | None, limit: int) -> list[AuditEntryView]:
        async with self._db.uow() as uow:
            rows = await repo.list_audit(uow.session, _in_utc(f), before_id, limit)
            return [entry_view(r) for r in rows]

    async def export(self, f: AuditFilter, page_size: int = EXPORT_PAGE) -> AsyncIterator[list[AuditEntryView]]:
        """Every matching record, newest first, a page at a time, each page read in its own short transaction."""
        before_id: int | None = None
        while True:
            items = await self.page(f, before_id, page_size)
            if items:
                yield items
            if len(items) < page_size:
                return
            before_id = int(items[-1].id[2:])


def _in_utc(f: AuditFilter) -> AuditFilter:
    """Stored times are UTC (and SQLite compares them as text): bounds are converted before the query."""
    return AuditFilter(
        action=f.action,
        actor=f.actor,
        target=f.target,
        since=f.since.astimezone(UTC) if f.since is not None else None,
        until=f.until.astimezone(UTC) if f.until is not None else None,
    )


def entry_view(row: AdminAudit) -> AuditEntryView:
    return AuditEntryView(
        id=f"AU{row.id}",
        at=row.at,
        actor=row.actor,
        actor_token_id=row.actor_token_id,
        via=row.via,
        action=row.action,
        target=row.target,
        before=json.loads(row.before) if row.before else None,
        after=json.loads(row.after) if row.after else None,
        request_id=row.request_id,
    )
