"""`post_committed`'s one-statement path (PostgreSQL, no guarded line, no fence) and when it is not taken."""

from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from tests.fixtures.ledger import payment_entry
from tomato.account import accounts as acct
from tomato.account.ledger import balances, post_committed
from tomato.core.clock import SystemClock
from tomato.core.db import Database, fenced
from tomato.core.ids import Snowflake


class CountingFence:
    def __init__(self) -> None:
        self.confirmed = 0

    def check(self) -> None:
        return None

    async def confirm(self, session: AsyncSession) -> None:
        self.confirmed += 1


async def test_a_fenced_posting_takes_the_unit_of_work_and_confirms_its_fence(db: Database) -> None:
    ids, fence = Snowflake(21), CountingFence()
    with fenced(fence):
        first = await post_committed(db, ids, SystemClock(), payment_entry("M1", 1_000, 6, 4, order_no="P1"))
    again = await post_committed(db, ids, SystemClock(), payment_entry("M1", 1_000, 6, 4, order_no="P1"))
    assert fence.confirmed == 1  # confirmed inside the posting's transaction, before its commit
    assert (again.journal_id, again.replayed, first.replayed) == (first.journal_id, True, False)
    async with db.uow() as uow:
        assert (await balances(uow.session, [acct.merchant_pending("M1")]))["merchant_pending:M1"] == 994


async def test_the_one_statement_path_books_every_line_and_balance(db: Database) -> None:
    if db.dialect != "postgresql":
        pytest.skip("the one-statement path is PostgreSQL's")
    ids = Snowflake(22)
    for n in range(5):
        await post_committed(db, ids, SystemClock(), payment_entry("M2", 10_000, 60, 38, order_no=f"P2{n}"))
    async with db.uow() as uow:
        accounts = [acct.merchant_pending("M2"), acct.PLATFORM_FEE_INCOME, acct.channel_receivable("CA1"),
                    acct.channel_fee_expense("CA1")]  # fmt: skip
        got = await balances(uow.session, accounts)
    assert got == {"merchant_pending:M2": 5 * 9_940, "platform_fee_income": 300, "channel_receivable:CA1": 5 * 9_962,
                   "channel_fee_expense:CA1": 190}  # fmt: skip
