"""The posting engine on SQLite and PostgreSQL: balanced, idempotent by source key, guarded, hot-account safe."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest
from sqlalchemy import func, select

from tests.fixtures.ledger import fund_available, payment_entry
from tomato.account import accounts as acct
from tomato.account.errors import InsufficientBalance, LedgerConflict
from tomato.account.ledger import EntryRequest, Line, balances, post, post_committed
from tomato.account.models import Balance, Journal
from tomato.account.models import Line as LineRow
from tomato.core.clock import SystemClock
from tomato.core.db import Database
from tomato.core.ids import Snowflake

CLOCK = SystemClock()


@pytest.fixture
def ids() -> Snowflake:
    return Snowflake(7)


async def counts(db: Database) -> tuple[int, int, int]:
    async with db.uow() as uow:
        s = uow.session
        journals = (await s.execute(select(func.count()).select_from(Journal))).scalar_one()
        lines = (await s.execute(select(func.count()).select_from(LineRow))).scalar_one()
        total = (await s.execute(select(func.coalesce(func.sum(Balance.balance), 0)))).scalar_one()
    return int(journals), int(lines), int(total)


async def read(db: Database, *accounts: str) -> dict[str, int]:
    async with db.uow() as uow:
        return await balances(uow.session, accounts)


async def test_a_payment_books_the_four_lines_and_every_balance_sums_to_zero(db: Database, ids: Snowflake) -> None:
    posted = await post_committed(db, ids, CLOCK, payment_entry("M1", 100_000, 600, 380, channel_account="CA9"))
    assert not posted.replayed and posted.journal_id.startswith("J")
    got = await read(
        db,
        acct.merchant_pending("M1"),
        acct.PLATFORM_FEE_INCOME,
        acct.channel_receivable("CA9"),
        acct.channel_fee_expense("CA9"),
    )
    assert got == {
        "merchant_pending:M1": 99_400,
        "platform_fee_income": 600,
        "channel_receivable:CA9": 99_620,
        "channel_fee_expense:CA9": 380,
    }
    assert await counts(db) == (1, 4, 0)


async def test_a_replay_with_the_same_lines_writes_nothing_and_answers_the_first_journal(
    db: Database, ids: Snowflake
) -> None:
    entry = payment_entry("M1", 1_000, 6, 4, order_no="P42")
    first = await post_committed(db, ids, CLOCK, entry)
    again = await post_committed(db, ids, CLOCK, dataclasses.replace(entry, lines=tuple(reversed(entry.lines))))
    assert again.replayed and again.journal_id == first.journal_id
    assert await counts(db) == (1, 4, 0)
    assert (await read(db, acct.merchant_pending("M1")))["merchant_pending:M1"] == 994


async def test_a_replay_with_other_lines_is_refused_and_writes_nothing(db: Database, ids: Snowflake) -> None:
    await post_committed(db, ids, CLOCK, payment_entry("M1", 1_000, 6, 4, order_no="P43"))
    with pytest.raises(LedgerConflict):
        await post_committed(db, ids, CLOCK, payment_entry("M1", 2_000, 12, 8, order_no="P43"))
    assert await counts(db) == (1, 4, 0)
    assert (await read(db, acct.merchant_pending("M1")))["merchant_pending:M1"] == 994


async def test_a_guarded_line_short_of_funds_refuses_and_the_whole_unit_of_work_rolls_back(
    db: Database, ids: Snowflake
) -> None:
    await fund_available(db, ids, "M2", 500)
    hold = EntryRequest(
        source_type="payout",
        source_id="W1",
        leg="hold",
        kind="payout",
        lines=(Line(acct.merchant_available("M2"), 501, guard=True), Line(acct.payout_in_transit("M2"), -501)),
        business_date="2026-12-06",
        mch_no="M2",
    )
    with pytest.raises(InsufficientBalance):
        await post_committed(db, ids, CLOCK, hold)
    assert await counts(db) == (1, 2, 0)
    ok = await post_committed(
        db,
        ids,
        CLOCK,
        dataclasses.replace(
            hold,
            source_id="W2",
            lines=(Line(acct.merchant_available("M2"), 500, guard=True), Line(acct.payout_in_transit("M2"), -500)),
        ),
    )
    assert not ok.replayed
    assert await read(db, acct.merchant_available("M2"), acct.payout_in_transit("M2")) == {
        "merchant_available:M2": 0,
        "payout_in_transit:M2": 500,
    }


async def test_a_guarded_line_on_an_account_never_booked_to_is_refused(db: Database, ids: Snowflake) -> None:
    hold = EntryRequest(
        source_type="payout", source_id="W9", leg="hold", kind="payout",
        lines=(Line(acct.merchant_available("M3"), 1, guard=True), Line(acct.payout_in_transit("M3"), -1)),
        business_date="2026-12-06",
    )  # fmt: skip
    with pytest.raises(InsufficientBalance):
        await post_committed(db, ids, CLOCK, hold)
    assert await counts(db) == (0, 0, 0)


@pytest.mark.parametrize(
    "lines",
    [
        (),
        (Line(acct.merchant_pending("M1"), 5), Line(acct.PLATFORM_FEE_INCOME, -4)),
        (Line(acct.merchant_pending("M1"), 0), Line(acct.PLATFORM_FEE_INCOME, 0)),
        (Line("nobody:M1", 5), Line(acct.PLATFORM_FEE_INCOME, -5)),
        (Line(acct.PLATFORM_FEE_INCOME, 5, guard=True), Line(acct.merchant_pending("M1"), -5)),
    ],
    ids=["empty", "unbalanced", "zero", "unknown-account", "guarded-hot-account"],
)
async def test_malformed_entries_are_programming_errors_and_write_nothing(
    db: Database, ids: Snowflake, lines: tuple[Line, ...]
) -> None:
    entry = EntryRequest(source_type="t", source_id="x", leg="l", kind="adjustment", lines=lines, business_date="d")
    with pytest.raises(ValueError):
        async with db.uow() as uow:
            await post(uow.session, ids, CLOCK.now(), entry)
    assert await counts(db) == (0, 0, 0)


async def test_hot_accounts_spread_over_buckets_and_still_sum_right(db: Database, ids: Snowflake) -> None:
    for n in range(40):
        await post_committed(db, ids, CLOCK, payment_entry(f"M{n % 3}", 1_000, 6, 4))
    async with db.uow() as uow:
        used = (
            await uow.session.execute(
                select(func.count()).select_from(Balance).where(Balance.account == acct.PLATFORM_FEE_INCOME)
            )
        ).scalar_one()
        merchant_rows = (
            await uow.session.execute(
                select(func.count()).select_from(Balance).where(Balance.account == acct.merchant_pending("M0"))
            )
        ).scalar_one()
    assert used > 4  # 40 postings over 16 buckets land in several
    assert merchant_rows == 1
    assert (await read(db, acct.PLATFORM_FEE_INCOME))["platform_fee_income"] == 240
    assert (await counts(db))[2] == 0


@pytest.fixture
def pg_db(db: Database) -> Database:
    if db.dialect != "postgresql":
        pytest.skip("concurrency is proven on PostgreSQL; SQLite serialises writers")
    return db


async def test_the_same_entry_posted_ten_times_at_once_books_once(pg_db: Database, ids: Snowflake) -> None:
    entry = payment_entry("M5", 100_000, 600, 380, order_no="P777")
    results = await asyncio.gather(*(post_committed(pg_db, ids, CLOCK, entry) for _ in range(10)))
    assert len({r.journal_id for r in results}) == 1
    assert sum(not r.replayed for r in results) == 1
    assert await counts(pg_db) == (1, 4, 0)
    assert (await read(pg_db, acct.merchant_pending("M5")))["merchant_pending:M5"] == 99_400


async def test_twenty_concurrent_holds_of_sixty_percent_never_overdraw(pg_db: Database, ids: Snowflake) -> None:
    await fund_available(pg_db, ids, "M6", 100_000)

    async def hold(n: int) -> bool:
        entry = EntryRequest(
            source_type="payout", source_id=f"W6{n}", leg="hold", kind="payout",
            lines=(Line(acct.merchant_available("M6"), 60_000, guard=True),
                   Line(acct.payout_in_transit("M6"), -60_000)),
            business_date="2026-12-06", mch_no="M6",
        )  # fmt: skip
        try:
            await post_committed(pg_db, ids, CLOCK, entry)
            return True
        except InsufficientBalance:
            return False

    accepted = await asyncio.gather(*(hold(n) for n in range(20)))
    assert sum(accepted) == 1
    got = await read(pg_db, acct.merchant_available("M6"), acct.payout_in_transit("M6"))
    assert got == {"merchant_available:M6": 40_000, "payout_in_transit:M6": 60_000}
    assert await counts(pg_db) == (2, 4, 0)


async def test_concurrent_payments_of_many_merchants_keep_every_invariant(pg_db: Database, ids: Snowflake) -> None:
    entries = [payment_entry(f"M{n % 7}", 1_000 + n, 6, 4, channel_account=f"CA{n % 2}") for n in range(120)]
    sem = asyncio.Semaphore(16)

    async def one(entry: EntryRequest) -> None:
        async with sem:
            await post_committed(pg_db, ids, CLOCK, entry)

    await asyncio.gather(*(one(e) for e in entries))
    journals, lines, total = await counts(pg_db)
    assert (journals, lines, total) == (120, 480, 0)
    async with pg_db.uow() as uow:
        mismatched = (
            await uow.session.execute(
                select(Balance.account)
                .group_by(Balance.account)
                .having(
                    func.sum(Balance.balance)
                    != select(func.sum(LineRow.amount)).where(LineRow.account == Balance.account).scalar_subquery()
                )
            )
        ).all()
    assert mismatched == []
