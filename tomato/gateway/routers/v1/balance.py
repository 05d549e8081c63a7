"""The merchant's money: `GET /v1/balance`, `GET /v1/balance/transactions`, `GET /v1/statements/{date}`
(docs/api.md)."""

from __future__ import annotations

import csv
import io
import re
from datetime import date

from fastapi import APIRouter, Request, Response

from tomato.account.schemas import BalanceTransaction, BalanceTransactionPage, BalanceView
from tomato.account.service import LedgerService, transaction_view
from tomato.core.errors import InvalidRequest
from tomato.gateway.deps import container
from tomato.gateway.paging import Cursor, Limit, check_limit, decode_int_cursor, encode_cursor
from tomato.gateway.signed_route import SignedRoute, current_app

router = APIRouter(prefix="/v1", route_class=SignedRoute, tags=["merchant: balance"])

_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", re.ASCII)
STATEMENT_HEADER = ("created_at", "type", "order_no", "refund_no", "payout_no", "amount", "fee", "net")


def _ledger(request: Request) -> LedgerService:
    c = container(request)
    return LedgerService(c.db, c.settings.business_timezone)


def business_date(text: str, field: str = "date") -> date:
    """A `YYYY-MM-DD` calendar date, else 422 naming `field`."""
    try:
        if _DATE.fullmatch(text) is None:
            raise ValueError(text)
        return date.fromisoformat(text)
    except ValueError as exc:
        raise InvalidRequest.field(field, "must be a date YYYY-MM-DD") from exc


@router.get("/balance", response_model=BalanceView)
async def get_balance(request: Request) -> BalanceView:
    """`pending` (collected, not yet settled) and `available` (settled, can be paid out), in fen — money the platform
    holds. `mode` and `service_provider` tell of payments a service-provider channel account settled straight to the
    merchant (`collected`) and the fee on them the merchant owes (`fee_receivable`); those are never paid out here."""
    return await _ledger(request).balance(current_app(request).mch_no)


@router.get("/balance/transactions", response_model=BalanceTransactionPage)
async def list_transactions(request: Request, limit: Limit = None, cursor: Cursor = None) -> BalanceTransactionPage:
    """Every movement of the merchant's balances, newest first: payment, refund, settlement, payout, adjustment,
    split, split_return."""
    n = check_limit(limit)
    rows = await _ledger(request).transactions(current_app(request).mch_no, decode_int_cursor(cursor), n + 1)
    shown = rows[:n]
    return BalanceTransactionPage(
        data=[transaction_view(j) for j in shown],
        next_cursor=encode_cursor(str(shown[-1].seq)) if len(rows) > n else None,
    )


def statement_csv(rows: list[BalanceTransaction]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(STATEMENT_HEADER)
    for t in rows:
        data = t.model_dump(mode="json")
        writer.writerow(["" if data[name] is None else data[name] for name in STATEMENT_HEADER])
    return out.getvalue()


@router.get(
    "/statements/{date}",
    response_class=Response,
    responses={200: {"content": {"text/csv": {}}, "description": "one row per balance transaction"}},
)
async def get_statement(date: str, request: Request) -> Response:
    """The balance transactions created on a business date, oldest first, as CSV (`created_at` RFC 3339 UTC,
    amounts in fen, an empty field for null). Service-provider payments move no platform-held balance and are not
    listed, so the rows sum to the day's movement of `pending` + `available`."""
    day = business_date(date)
    rows = await _ledger(request).statement(current_app(request).mch_no, day)
    return Response(statement_csv(rows), media_type="text/csv; charset=utf-8")
