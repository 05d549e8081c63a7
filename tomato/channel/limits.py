"""Daily limits: what each channel account has taken per business day, held atomically before a channel is called.

`hold` is one guarded upsert on the account's usage row (`amount + :a <= :limit`, re-checked by PostgreSQL on the
locked row after a concurrent commit; SQLite serialises writers), plus the hold's own row in the same transaction,
so concurrent orders can never pass the limit between a read and a write. `release` deletes hold rows and takes
their amounts off the usage in one transaction: a hold is given back at most once, whoever asks how often.
Queries only; the caller's unit of work commits.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Table, delete, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from tomato.channel.models import AccountUsage, LimitHold
from tomato.core.db import one_of

USAGE: Table = AccountUsage.__table__  # type: ignore[assignment]
HOLDS: Table = LimitHold.__table__  # type: ignore[assignment]


async def hold(
    s: AsyncSession, hold_id: str, account_id: str, day: str, amount: int, limit: int, now: datetime
) -> bool:
    """Adds `amount` to the account's usage of `day` if it stays within `limit`; False (nothing written) if not."""
    if amount > limit:
        return False
    dialect = s.bind.dialect.name if s.bind is not None else "sqlite"
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    new_row = insert(USAGE).values(account_id=account_id, business_date=day, amount=amount)
    upsert = new_row.on_conflict_do_update(
        index_elements=[USAGE.c.account_id, USAGE.c.business_date],
        set_={"amount": USAGE.c.amount + new_row.excluded.amount},
        where=USAGE.c.amount + new_row.excluded.amount <= limit,
    ).returning(USAGE.c.amount)
    if (await s.execute(upsert)).first() is None:
        return False
    await s.execute(
        HOLDS.insert().values(hold_id=hold_id, account_id=account_id, business_date=day, amount=amount, created_at=now)
    )
    return True


async def release(s: AsyncSession, hold_ids: Sequence[str]) -> int:
    """Gives back the holds among `hold_ids` that still stand; returns the amount released."""
    if not hold_ids:
        return 0
    gone = (
        await s.execute(
            delete(HOLDS)
            .where(one_of(s, HOLDS.c.hold_id, hold_ids))
            .returning(HOLDS.c.account_id, HOLDS.c.business_date, HOLDS.c.amount)
        )
    ).all()
    for account_id, day, amount in gone:
        await s.execute(
            update(USAGE)
            .where(USAGE.c.account_id == account_id, USAGE.c.business_date == day, USAGE.c.amount >= amount)
            .values(amount=USAGE.c.amount - amount)
        )
    return sum(int(amount) for _, _, amount in gone)
