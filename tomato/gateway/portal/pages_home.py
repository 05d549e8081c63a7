"""The dashboard (every role): today's volume and success rate per pay method of the merchant as server-rendered
SVG; owner and finance also see the pending and available balance (the others' roles do not cover money)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from markupsafe import Markup
from starlette.responses import Response

from tomato.account.service import LedgerService
from tomato.core.clock import business_date
from tomato.gateway.console import charts
from tomato.gateway.console.i18n import Translator
from tomato.gateway.deps import container
from tomato.gateway.portal.guard import portal_route, viewer_of
from tomato.gateway.portal.render import html
from tomato.gateway.portal.roles import EVERYONE, FINANCE
from tomato.pay.schemas import MethodVolume

router = APIRouter(prefix="/portal", route_class=portal_route(*EVERYONE), include_in_schema=False)
WHOLE = 10_000  # success rates in basis points: 10,000 is 100 %


def _yuan(fen: float) -> str:
    """An axis tick (a fen amount) in whole yuan."""
    return f"¥{int(fen) // 100:,}"


def _percent(bp: float) -> str:
    return f"{int(bp) // 100}%"


def rate_bp(v: MethodVolume) -> int:
    return v.succeeded * WHOLE // v.orders if v.orders else 0


def volume_charts(t: Translator, rows: list[MethodVolume]) -> tuple[Markup, Markup]:
    methods = [r.pay_method for r in rows]
    volume = charts.bar_chart(
        t("portal.money.chart_volume"), methods, [(t("portal.money.succeeded_amount"), [r.amount for r in rows])],
        _yuan,
    )  # fmt: skip
    rate = charts.bar_chart(
        t("portal.money.chart_rate"), methods, [(t("portal.money.success_rate"), [rate_bp(r) for r in rows])],
        _percent, top=WHOLE,
    )  # fmt: skip
    empty = t("portal.money.chart_empty")
    return charts.render(volume, empty), charts.render(rate, empty)


@router.get("")
async def home(request: Request) -> Response:
    c = container(request)
    me = viewer_of(request)
    rows = await c.pay.today_by_method(me.mch_no)
    volume, rate = volume_charts(request.state.t, rows)
    balance = None
    if me.role in FINANCE:
        balance = await LedgerService(c.db, c.settings.business_timezone).balance(me.mch_no)
    today = business_date(c.clock.now(), c.settings.business_timezone)
    return html(request, "home.html", volume=volume, rate=rate, methods=rows, rates=[rate_bp(r) for r in rows],
                balance=balance, today=today)  # fmt: skip
