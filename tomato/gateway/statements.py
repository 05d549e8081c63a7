"""The merchant's daily statement as CSV, one row per balance transaction: the same bytes from the merchant API
(`GET /v1/statements/{date}`) and the merchant portal's download."""

from __future__ import annotations

import csv
import io
import re
from datetime import date

from tomato.account.schemas import BalanceTransaction
from tomato.core.errors import InvalidRequest

_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", re.ASCII)
STATEMENT_HEADER = ("created_at", "type", "order_no", "refund_no", "payout_no", "amount", "fee", "net")


def business_date(text: str, field: str = "date") -> date:
    """A `YYYY-MM-DD` calendar date, else 422 naming `field`."""
    try:
        if _DATE.fullmatch(text) is None:
            raise ValueError(text)
        return date.fromisoformat(text)
    except ValueError as exc:
        raise InvalidRequest.field(field, "must be a date YYYY-MM-DD") from exc


def statement_csv(rows: list[BalanceTransaction]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(STATEMENT_HEADER)
    for t in rows:
        data = t.model_dump(mode="json")
        writer.writerow(["" if data[name] is None else data[name] for name in STATEMENT_HEADER])
    return out.getvalue()
