"""Finance pages: ledger balances and the trial balance, settlements, and their CSV exports."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from tomato.account.accounts import AccountType
from tomato.account.service import LedgerService
from tomato.core.errors import InvalidRequest
from tomato.gateway.console.csv_export import csv_response
from tomato.gateway.console.guard import page_route
from tomato.gateway.console.render import html
from tomato.gateway.deps import container
from tomato.gateway.paging import cursor_int, decode_cursor, encode_cursor
from tomato.reconciliation.schemas import parse_day

router = APIRouter(prefix="/console", route_class=page_route("finance"), include_in_schema=False)

Owner = Annotated[str | None, Query(max_length=64, pattern=r"^[A-Za-z0-9_-]*$")]
Kind = Annotated[str | None, Query(max_length=32, pattern=r"^[a-z_]*$")]
CursorQ = Annotated[str | None, Query(max_length=200, pattern=r"^[A-Za-z0-9_-]+$")]
Day = Annotated[str | None, Query(pattern=r"^([0-9]{4}-[0-9]{2}-[0-9]{2})?$")]
PAGE = 100
KINDS = [k.value for k in AccountType]


def _ledger(request: Request) -> LedgerService:
    c = container(request)
    return LedgerService(c.db, c.settings.business_timezone)


@router.get("/ledger")
async def ledger(request: Request, account_type: Kind = None, owner: Owner = None, cursor: CursorQ = None) -> Response:
    if account_type and account_type not in KINDS:
        raise InvalidRequest.field("account_type", f"must be one of {', '.join(KINDS)}")
    svc = _ledger(request)
    rows = await svc.account_balances(account_type or None, owner or None, decode_cursor(cursor), PAGE + 1)
    shown = rows[:PAGE]
    nxt = encode_cursor(shown[-1].account) if len(rows) > PAGE else None
    trial = await svc.trial_balance()
    # filtered to a merchant: its balance as the merchant sees it, with the mode (direct / service_provider / mixed)
    merchant = await svc.balance(owner) if owner and any(_merchant_account(b.account_type) for b in shown) else None
    return html(request, "finance/ledger.html", balances=shown, trial=trial, kinds=KINDS, merchant=merchant,
                filters={"account_type": account_type or "", "owner": owner or ""}, next_cursor=nxt)  # fmt: skip


def _merchant_account(account_type: str) -> bool:
    return account_type.startswith("merchant_")


@router.get("/ledger/trial-balance.csv")
async def trial_balance_csv(request: Request) -> Response:
    trial = await _ledger(request).trial_balance()
    rows: list[tuple[object, ...]] = [(r.account_type, r.accounts, r.normal_balance, r.raw) for r in trial.types]
    rows.append(("TOTAL", sum(r.accounts for r in trial.types), "", trial.total_raw))
    return csv_response("trial-balance.csv", ("account_type", "accounts", "normal_balance_fen", "raw_fen"), rows)


def _settlement_filters(date: str | None, mch_no: str | None) -> tuple[str | None, str | None]:
    if date:
        try:
            parse_day(date)
        except ValueError as exc:
            raise InvalidRequest.field("date", str(exc)) from exc
    return date or None, mch_no or None


@router.get("/settlements")
async def settlements(request: Request, date: Day = None, mch_no: Owner = None, cursor: CursorQ = None) -> Response:
    day, mch = _settlement_filters(date, mch_no)
    key = decode_cursor(cursor)
    before = None if key is None else cursor_int(key)
    c = container(request)
    items = await c.settlement.list_batches(parse_day(day) if day else None, mch, before, PAGE + 1)
    shown = items[:PAGE]
    nxt = encode_cursor(shown[-1].id.removeprefix("SB")) if len(items) > PAGE else None
    return html(request, "finance/settlements.html", items=shown, filters={"date": day or "", "mch_no": mch or ""},
                next_cursor=nxt)  # fmt: skip


@router.get("/settlements.csv")
async def settlements_csv(request: Request, date: Day = None, mch_no: Owner = None) -> Response:
    day, mch = _settlement_filters(date, mch_no)
    c = container(request)
    rows: list[tuple[object, ...]] = []
    before = None
    while True:
        chunk = await c.settlement.list_batches(parse_day(day) if day else None, mch, before, 1000)
        rows += [
            (b.id, b.mch_no, b.date, b.amount, b.line_count, b.journal_id, b.created_at.isoformat()) for b in chunk
        ]
        if len(chunk) < 1000:
            break
        before = int(chunk[-1].id.removeprefix("SB"))
    header = ("id", "mch_no", "date", "amount_fen", "line_count", "journal_id", "created_at")
    return csv_response("settlements.csv", header, rows)
