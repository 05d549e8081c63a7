"""Finance reads of the ledger: balances by account, a merchant's balance and mode, journals by account and date, one
journal, the trial balance."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request

from tomato.account.accounts import AccountType
from tomato.account.schemas import AccountBalancePage, BalanceView, JournalPage, JournalView, TrialBalance
from tomato.account.service import LedgerService
from tomato.gateway.deps import admin_route, container
from tomato.gateway.openapi import errors
from tomato.gateway.paging import Cursor, Limit, check_limit, decode_cursor, decode_int_cursor, encode_cursor
from tomato.gateway.statements import business_date

router = APIRouter(prefix="/admin/ledger", tags=["admin: ledger"], route_class=admin_route("finance"))

ACCOUNT = r"^[a-z_]{1,32}(:[A-Za-z0-9_-]{1,64})?$"
OWNER = r"^[A-Za-z0-9_-]{1,64}$"
DATE = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"


def _ledger(request: Request) -> LedgerService:
    c = container(request)
    return LedgerService(c.db, c.settings.business_timezone)


@router.get("/balances", response_model=AccountBalancePage)
async def list_balances(
    request: Request,
    account_type: AccountType | None = None,
    owner: Annotated[str | None, Query(pattern=OWNER)] = None,
    limit: Limit = None,
    cursor: Cursor = None,
) -> AccountBalancePage:
    """Every account's balance (Σ of its buckets), by account code; filter by type and owner (a merchant number or
    channel account id). `balance` is the normal-side figure, `raw` the signed one (debit > 0)."""
    n = check_limit(limit)
    kind = None if account_type is None else account_type.value
    rows = await _ledger(request).account_balances(kind, owner, decode_cursor(cursor), n + 1)
    shown = rows[:n]
    return AccountBalancePage(data=shown, next_cursor=encode_cursor(shown[-1].account) if len(rows) > n else None)


@router.get("/merchants/{mch_no}/balance", response_model=BalanceView)
async def merchant_balance(mch_no: Annotated[str, Path(pattern=OWNER)], request: Request) -> BalanceView:
    """A merchant's balance as `GET /v1/balance` shows it: `pending` and `available` (platform-held money), the
    `mode` (direct, service_provider or mixed) and the service-provider figures (`collected`, `fee_receivable`)."""
    return await _ledger(request).balance(mch_no)


@router.get("/entries", response_model=JournalPage)
async def list_entries(
    request: Request,
    account: Annotated[str | None, Query(pattern=ACCOUNT, max_length=97)] = None,
    date: Annotated[str | None, Query(pattern=DATE)] = None,
    limit: Limit = None,
    cursor: Cursor = None,
) -> JournalPage:
    """Journals with their lines, newest first: those with a line on `account`, of business date `date`, or both."""
    n = check_limit(limit)
    day = None if date is None else business_date(date).isoformat()
    rows = await _ledger(request).entries(account, day, decode_int_cursor(cursor), n + 1)
    shown = rows[:n]
    return JournalPage(data=shown, next_cursor=encode_cursor(shown[-1].id[1:]) if len(rows) > n else None)


@router.get("/trial-balance", response_model=TrialBalance)
async def trial_balance(request: Request) -> TrialBalance:
    """Σ of every account type's balances, normal side and raw; `total_raw` is 0 (`balanced`) when the ledger is
    whole."""
    return await _ledger(request).trial_balance()


@router.get(
    "/journals/{journal_id}",
    response_model=JournalView,
    responses=errors(404),
)
async def get_journal(journal_id: Annotated[str, Path(max_length=32)], request: Request) -> JournalView:
    return await _ledger(request).journal(journal_id)
