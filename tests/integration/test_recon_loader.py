"""The staging load on both databases: what `recon_lines` holds after a load is exactly the staging rows of the
statement's lines, whether PostgreSQL took them as COPY text (plain WeChat payment rows) or as records."""

from __future__ import annotations

import io

import pytest
from sqlalchemy import select

from tests.unit.test_statement_parsers import WX_ODD_ROWS, WX_PAYMENT, WX_SUMMARY_HEADER, wx_bill
from tomato.core.clock import as_utc
from tomato.core.db import Database
from tomato.reconciliation import loader
from tomato.reconciliation import repository as repo
from tomato.reconciliation.statement import Statement


@pytest.mark.parametrize("block", [7, 4096])
async def test_staged_lines_are_the_staging_rows_whatever_the_path(
    db: Database, block: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tomato.reconciliation.parsers import wechat

    plain = [WX_PAYMENT.replace("`T1,", f"`T{n},").replace("10:00:05", f"23:59:{n % 60:02d}") for n in range(60)]
    rows = [*plain[:30], *WX_ODD_ROWS, *plain[30:]]
    data = wx_bill(rows, summary=None, eol="\r\n") + (WX_SUMMARY_HEADER + "\r\n`0,`0,`0,`0,`0,`0,`0\r\n").encode()
    monkeypatch.setattr(wechat, "BLOCK", block)
    statement = Statement("wechat", lambda: io.BytesIO(data))
    expected = [row for part in statement.records("RB1") if isinstance(part, list) for row in part]

    loaded = await loader.load(db, "RB1", statement)

    assert (loaded.rows, loaded.malformed) == (len(expected), 5)
    assert loaded.rows == 68  # 60 plain rows and 14 odd ones, of which 5 are malformed and 1 is blank
    async with db.engine.connect() as conn:
        staged = (await conn.execute(select(repo.LINES).order_by(repo.LINES.c.line_no))).all()
    got = [(*row[:9], as_utc(row[9])) for row in staged]
    assert got == [(*row[:9], as_utc(row[9])) for row in expected]
