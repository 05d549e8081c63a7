"""Bulk-loads a parsed statement into the staging table `recon_lines`: PostgreSQL `COPY` through asyncpg on the raw
connection (`copy_records_to_table`, or `copy_to_table` of the COPY text a parser made itself), batched multi-row
inserts on SQLite.

The parser runs in a worker thread and hands over chunks through a queue of two, so parsing the next chunk overlaps
the database taking the last one, and memory stays bounded (two chunks) whatever the file size.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import insert, text

from tomato.core.db import Database
from tomato.reconciliation import repository as repo
from tomato.reconciliation.source import LineLike, MalformedLike, RecordSource
from tomato.reconciliation.statement import staging_row

CHUNK = 10_000
MAX_REASONS = 20
_DONE = object()


@dataclass
class Loaded:
    rows: int = 0
    malformed: int = 0
    reasons: list[str] = field(default_factory=list)  # the first MAX_REASONS, "line N: reason"


def record(batch_id: str, line: LineLike) -> tuple[Any, ...]:
    """The staging row of a line: `ref` is the order_no of a payment, the refund_no of a refund."""
    return staging_row(batch_id, line)


def _chunks(
    batch_id: str, lines: Iterable[LineLike | MalformedLike] | RecordSource, loaded: Loaded, chunk: int, copy_text: bool
) -> Iterable[list[tuple[Any, ...]] | bytes]:
    """Lists of staging rows, or COPY text (`copy_text`, PostgreSQL). A `RecordSource` (a parsed `Statement`) gives
    them itself, a list or a text at a time (for WeChat without an object per line); plain lines are turned into
    rows here, `chunk` to a list."""
    buffer: list[tuple[Any, ...]] = []
    if isinstance(lines, RecordSource):
        for rows in lines.records(batch_id, copy_text=copy_text):
            if isinstance(rows, list | bytes):
                yield rows
            else:
                _malformed(loaded, rows)
        return
    for item in lines:
        if isinstance(item, MalformedLike) and not hasattr(item, "amount"):
            _malformed(loaded, item)
            continue
        buffer.append(record(batch_id, item))  # type: ignore[arg-type]
        if len(buffer) >= chunk:
            yield buffer
            buffer = []
    if buffer:
        yield buffer


def _malformed(loaded: Loaded, item: MalformedLike) -> None:
    loaded.malformed += 1
    if len(loaded.reasons) < MAX_REASONS:
        loaded.reasons.append(f"line {item.line_no}: {item.reason}")


async def load(
    db: Database,
    batch_id: str,
    lines: Iterable[LineLike | MalformedLike] | RecordSource,
    *,
    progress: Callable[[int], None] | None = None,
    chunk: int = CHUNK,
) -> Loaded:
    """Replaces the batch's staged lines with `lines`; malformed rows are counted (with their reasons), not
    staged. When iterating `lines` raises (a file rejected whole) nothing is committed and the error propagates."""
    loaded = Loaded()
    pg = db.dialect == "postgresql"
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=2)
    stop = False

    def produce() -> None:
        def hand_over(item: Any) -> None:
            asyncio.run_coroutine_threadsafe(queue.put(item), loop).result()

        try:
            for part in _chunks(batch_id, lines, loaded, chunk, copy_text=pg):
                if stop:
                    return
                hand_over(part)
            hand_over(_DONE)
        except BaseException as exc:  # the file was rejected: the consumer raises it
            hand_over(exc)

    producer = loop.run_in_executor(None, produce)
    try:
        async with db.engine.connect() as conn:
            await conn.execute(repo.LINES.delete().where(repo.LINES.c.batch_id == batch_id))
            raw: Any = (await conn.get_raw_connection()).driver_connection if pg else None
            while True:
                part = await queue.get()
                if part is _DONE:
                    break
                if isinstance(part, BaseException):
                    raise part
                if isinstance(part, bytes):
                    # a memoryview: asyncpg would take bytes for a file name
                    text_rows = memoryview(part)
                    await raw.copy_to_table("recon_lines", source=text_rows, columns=repo.LINE_COLUMNS, format="text")
                    loaded.rows += part.count(b"\n")
                elif pg:
                    await raw.copy_records_to_table("recon_lines", records=part, columns=repo.LINE_COLUMNS)
                    loaded.rows += len(part)
                else:
                    await conn.execute(insert(repo.LINES), [dict(zip(repo.LINE_COLUMNS, r, strict=True)) for r in part])
                    loaded.rows += len(part)
                if progress is not None:
                    progress(loaded.rows)
            if pg:
                await conn.execute(text("ANALYZE recon_lines"))  # statistics of the new batch, for matching
            await conn.commit()
    finally:
        stop = True
        while not producer.done():  # let a producer blocked on the full queue finish
            while not queue.empty():
                queue.get_nowait()
            await asyncio.sleep(0.01)
        await producer
    return loaded
