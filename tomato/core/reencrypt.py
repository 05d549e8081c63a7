"""Re-encrypting one secret column under the key ring's active key, for `tomato secrets re-encrypt`.

Each context names its own columns (merchant, channel); this walks one of them in primary-key batches. A row is
rewritten by compare-and-set on its old ciphertext, so a row changed meanwhile (a key rotated, an account edited) is
left alone and counted, never overwritten; rows already under the active key are skipped, so a run can be stopped
and started again at any point.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import InstrumentedAttribute

from tomato.core.crypto import SecretBox, SecretBoxError
from tomato.core.db import Database

DEFAULT_BATCH = 200


@dataclass
class ReencryptCount:
    """What one run did to one column. `changed` rows were rewritten by someone else between read and write (run
    again); `failed` rows no key of the ring opens (their key id is not in TOMATO_SECRET_KEYS)."""

    table: str
    rewritten: int = 0
    current: int = 0
    changed: int = 0
    failed: int = 0

    @property
    def done(self) -> bool:
        return self.changed == 0 and self.failed == 0


async def reencrypt_column(
    db: Database,
    box: SecretBox,
    *,
    key: InstrumentedAttribute[Any],
    column: InstrumentedAttribute[Any],
    context: Callable[[str], str],
    batch: int = DEFAULT_BATCH,
) -> ReencryptCount:
    """Every non-null ciphertext of `column` sealed under the active key; `context(pk)` is each row's associated
    data, exactly as the owning service encrypts it. One transaction per batch; no key material is logged."""
    table = key.class_.__tablename__
    count = ReencryptCount(table=f"{table}.{column.key}")
    after: str | None = None
    while True:
        async with db.uow() as uow:
            q = select(key, column).where(column.is_not(None)).order_by(key).limit(batch)
            if after is not None:
                q = q.where(key > after)
            rows = (await uow.session.execute(q)).all()
        if not rows:
            return count
        after = rows[-1][0]
        updates: list[tuple[str, str, str]] = []
        for pk, old in rows:
            try:
                new = box.reencrypt(old, context=context(pk))
            except SecretBoxError:
                count.failed += 1
                continue
            if new is None:
                count.current += 1
            else:
                updates.append((pk, old, new))
        if not updates:
            continue
        async with db.uow() as uow:
            for pk, old, new in updates:
                res = await uow.session.execute(
                    update(key.class_).where(key == pk, column == old).values({column.key: new})
                )
                if int(res.rowcount) == 1:  # type: ignore[attr-defined]
                    count.rewritten += 1
                else:
                    count.changed += 1
            await uow.commit()
