"""The merchant's money (owner, finance): balances and balance transactions, settlements, payouts with a request form
and a confirmation step (the second POST, confirm=yes, pays out through the same service call and rules as
`POST /v1/payouts`), and the daily statement as the very CSV `GET /v1/statements/{date}` answers."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request
from starlette.responses import Response

from tomato.account.payouts.schemas import BankAccount, PayoutCreate
from tomato.account.service import LedgerService, transaction_view
from tomato.core.clock import business_date as date_of
from tomato.gateway.console.render import SECURITY_HEADERS, redirect
from tomato.gateway.deps import container
from tomato.gateway.paging import cursor_int, decode_cursor, decode_int_cursor, encode_cursor
from tomato.gateway.portal import audit
from tomato.gateway.portal.guard import form_of, portal_route, viewer_of
from tomato.gateway.portal.money_forms import PAGE, CursorQ, DayQ, Number, cut, fen, fresh_number
from tomato.gateway.portal.render import html
from tomato.gateway.portal.roles import FINANCE
from tomato.gateway.statements import business_date, statement_csv
from tomato.merchant.errors import AppNotFound
from tomato.merchant.schemas import AppView
from tomato.merchant.service import MerchantService

router = APIRouter(prefix="/portal", route_class=portal_route(*FINANCE), include_in_schema=False)

PayoutNo = Annotated[str, Path(pattern=Number)]
Day = Annotated[str, Path(pattern=r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")]


def _ledger(request: Request) -> LedgerService:
    c = container(request)
    return LedgerService(c.db, c.settings.business_timezone)


@router.get("/balance")
async def balance(request: Request, cursor: CursorQ = None) -> Response:
    mch_no = viewer_of(request).mch_no
    ledger = _ledger(request)
    rows = await ledger.transactions(mch_no, decode_int_cursor(cursor or None), PAGE + 1)
    shown = rows[:PAGE]
    nxt = encode_cursor(str(shown[-1].seq)) if len(rows) > PAGE else None
    return html(request, "money/balance.html", balance=await ledger.balance(mch_no),
                transactions=[transaction_view(j) for j in shown], next_cursor=nxt)  # fmt: skip


@router.get("/settlements")
async def settlements(request: Request, cursor: CursorQ = None) -> Response:
    key = decode_cursor(cursor or None)
    before = None if key is None else cursor_int(key)
    rows = await container(request).settlement.list_batches(None, viewer_of(request).mch_no, before, PAGE + 1)
    shown, nxt = cut(rows, lambda b: b.id.removeprefix("SB"))
    return html(request, "money/settlements.html", items=shown, next_cursor=nxt)


@router.get("/payouts")
async def payouts(request: Request, cursor: CursorQ = None) -> Response:
    rows = await container(request).payouts.list_for_merchant(
        viewer_of(request).mch_no, decode_cursor(cursor or None), PAGE + 1
    )
    shown, nxt = cut(rows, lambda p: p.payout_no)
    return html(request, "money/payouts.html", payouts=shown, next_cursor=nxt)


async def _apps(request: Request) -> list[AppView]:
    merchant = await container(request).merchants.get_merchant(viewer_of(request).mch_no)
    return merchant.apps


@router.get("/payouts/new")
async def payout_form(request: Request) -> Response:
    c = container(request)
    apps = await _apps(request)
    values = {"app_id": apps[0].app_id if apps else "", "amount": "", "name": "", "number": "", "bank": "",
              "out_payout_no": fresh_number(c.ids, "WD")}  # fmt: skip
    balance_now = await _ledger(request).balance(viewer_of(request).mch_no)
    return html(request, "money/payout_form.html", apps=apps, values=values, balance=balance_now)


@router.get("/payouts/{payout_no}")
async def payout(payout_no: PayoutNo, request: Request) -> Response:
    found = await container(request).payouts.get_for_merchant(viewer_of(request).mch_no, payout_no)
    return html(request, "money/payout.html", payout=found)


@router.post("/payouts")
async def payout_create(request: Request) -> Response:
    """Without confirm=yes: the confirmation page, nothing written. With it: the payout, as the API makes it, from
    the chosen app of this merchant (an app id of another merchant is not found, like one that does not exist)."""
    c = container(request)
    form = form_of(request)
    apps = {a.app_id: a for a in await _apps(request)}
    app_id = form.get("app_id") or ""
    if app_id not in apps:
        raise AppNotFound(f"app {app_id} not found")
    cmd = PayoutCreate(
        out_payout_no=form.get("out_payout_no") or "",
        amount=fen(form, "amount"),
        bank_account=BankAccount(
            name=form.get("name") or "", number=form.get("number") or "", bank=form.get("bank") or ""
        ),  # fmt: skip
    )
    if form.get("confirm") != "yes":
        values = {"app_id": app_id, "amount": form.get("amount") or "", "name": cmd.bank_account.name,
                  "number": cmd.bank_account.number, "bank": cmd.bank_account.bank,
                  "out_payout_no": cmd.out_payout_no}  # fmt: skip
        return html(request, "money/payout_confirm.html", cmd=cmd, values=values, app=apps[app_id])
    app = await c.merchants.app_auth(app_id)
    MerchantService.ensure_usable(app)
    made, created = await c.payouts.create(app, cmd)
    if created:  # the same out_payout_no again answers the payout it made, which changes nothing
        await audit.record(request, "payout.create", made.payout_no, after=made)
    return redirect(f"/portal/payouts/{made.payout_no}?ok=payout_created")


@router.get("/statements")
async def statements(request: Request, date: DayQ = None) -> Response:
    """Pick a business date; the day's rows are shown and downloadable as the API's CSV."""
    c = container(request)
    day = business_date(date) if date else None
    rows = await _ledger(request).statement(viewer_of(request).mch_no, day) if day else []
    today = date_of(c.clock.now(), c.settings.business_timezone)
    return html(request, "money/statements.html", day=day.isoformat() if day else "", rows=rows, today=today)


@router.get("/statements/{day}.csv")
async def statement_download(day: Day, request: Request) -> Response:
    rows = await _ledger(request).statement(viewer_of(request).mch_no, business_date(day))
    headers = {**SECURITY_HEADERS, "Content-Disposition": f'attachment; filename="statement-{day}.csv"'}
    return Response(statement_csv(rows), media_type="text/csv; charset=utf-8", headers=headers)
