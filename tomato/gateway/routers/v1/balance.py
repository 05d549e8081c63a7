"""The merchant's money: `GET /v1/balance`, `GET /v1/balance/transactions`, `GET /v1/statements/{date}`
(docs/api.md)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from tomato.account.schemas import BalanceTransactionPage, BalanceView
from tomato.account.service import LedgerService, transaction_view
from tomato.gateway.deps import container
from tomato.gateway.paging import Cursor, Limit, check_limit, decode_int_cursor, encode_cursor
from tomato.gateway.signed_route import SignedRoute, current_app
from tomato.gateway.statements import business_date, statement_csv

router = APIRouter(prefix="/v1", route_class=SignedRoute, tags=["merchant: balance"])


def _ledger(request: Request) -> LedgerService:
    c = container(request)
    return LedgerService(c.db, c.settings.business_timezone)


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
