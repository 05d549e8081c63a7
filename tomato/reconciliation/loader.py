"""Bulk-loads a parsed statement into the staging table `recon_lines`: PostgreSQL `COPY` through asyncpg's
`copy_records_to_table` on the session's raw connection, batched multi-row inserts on SQLite. Lines are consumed
as the parser yields them, a chunk at a time, so memory stays bounded whatever the file size.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import insert

from tomato.core.db import Database
from tomato.reconciliation import repository as repo
from tomato.reconciliation.source import LineLike, MalformedLike

CHUNK = 20_000
MAX_REASONS = 20


@dataclass
class Loaded:
    rows: int = 0
    malformed: int = 0
    reasons: list[str] = field(default_factory=list)  # the first MAX_REASONS, "line N: reason"


def _kind(line: LineLike) -> str:
    return str(line.kind.value if hasattr(line.kind, "value") else line.kind).upper()


def record(batch_id: str, line: LineLike) -> tuple[Any, ...]:
    """The staging row of a line: `ref` is the order_no of a payment, the refund_no of a refund."""
    kind = _kind(line)
    ref = line.order_no if kind == "PAYMENT" else line.refund_no
    if not ref:
        ref = f"?{line.channel_trade_no}"
    status = "SUCCESS" if line.status == "SUCCESS" else line.status[:32]
    return (batch_id, line.line_no, kind, ref[:64], line.order_no, line.channel_trade_no[:64], line.amount, line.fee,
            status, line.occurred_at)  # fmt: skip


async def load(
    db: Database,
    batch_id: str,
    lines: Iterable[LineLike | MalformedLike],
    *,
    progress: Callable[[int], None] | None = None,
    chunk: int = CHUNK,
) -> Loaded:
    """Replaces the batch's staged lines with `lines`; malformed rows are counted (with their reasons), not
    staged. Iterating `lines` may raise (a file rejected whole): nothing is committed then."""
    loaded = Loaded()
    async with db.engine.connect() as conn:
        await conn.execute(repo.LINES.delete().where(repo.LINES.c.batch_id == batch_id))
        pg = db.dialect == "postgresql"
        raw: Any = (await conn.get_raw_connection()).driver_connection if pg else None
        buffer: list[tuple[Any, ...]] = []

        async def flush() -> None:
            if pg:
                await raw.copy_records_to_table("recon_lines", records=buffer, columns=repo.LINE_COLUMNS)
            else:
                await conn.execute(insert(repo.LINES), [dict(zip(repo.LINE_COLUMNS, r, strict=True)) for r in buffer])
            loaded.rows += len(buffer)
            buffer.clear()
            if progress is not None:
                progress(loaded.rows)

        for item in lines:
            if isinstance(item, MalformedLike) and not hasattr(item, "amount"):
                loaded.malformed += 1
                if len(loaded.reasons) < MAX_REASONS:
                    loaded.reasons.append(f"line {item.line_no}: {item.reason}")
                continue
            buffer.append(record(batch_id, item))  # type: ignore[arg-type]
            if len(buffer) >= chunk:
                await flush()
        if buffer:
            await flush()
        await conn.commit()
    return loaded
