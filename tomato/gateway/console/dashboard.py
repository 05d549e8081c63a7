"""The dashboard's charts from the contexts' reads: volume and success rate per channel over the last 24 hours,
discrepancies per business day, and the webhook backlog by delivery status."""

from __future__ import annotations

from datetime import timedelta
from zoneinfo import ZoneInfo

from markupsafe import Markup

from tomato.bootstrap import Container
from tomato.core.clock import as_utc
from tomato.gateway.console import charts
from tomato.gateway.console.i18n import Translator
from tomato.notice.service import NoticeService

HOURS = 24
DAYS = 14
BACKLOG_STATUSES = ("PENDING", "FAILED", "SUCCEEDED", "SKIPPED")


def _yuan(fen: float) -> str:
    return f"¥{fen / 100:,.0f}"


async def volume_charts(c: Container, t: Translator) -> tuple[Markup, Markup]:
    now = as_utc(c.clock.now()).replace(minute=0, second=0, microsecond=0)
    hours = [now - timedelta(hours=HOURS - 1 - i) for i in range(HOURS)]
    tz = ZoneInfo(c.settings.business_timezone)
    categories = [h.astimezone(tz).strftime("%H:00") for h in hours]
    rows = await c.pay.hourly_volume(HOURS)
    channels = sorted({r.channel for r in rows})
    index = {h: i for i, h in enumerate(hours)}
    amounts = {ch: [0] * HOURS for ch in channels}
    orders = {ch: [0] * HOURS for ch in channels}
    succeeded = {ch: [0] * HOURS for ch in channels}
    for r in rows:
        i = index.get(r.hour)
        if i is None:
            continue
        amounts[r.channel][i] += r.amount
        orders[r.channel][i] += r.orders
        succeeded[r.channel][i] += r.succeeded
    volume = charts.bar_chart(t("chart.volume"), categories, [(ch, amounts[ch]) for ch in channels], _yuan)
    rates: list[tuple[str, list[float | None]]] = [
        (ch, [(s / n if n else None) for s, n in zip(succeeded[ch], orders[ch], strict=True)]) for ch in channels
    ]
    rate = charts.line_chart(t("chart.success_rate"), categories, rates)
    return charts.render(volume, t("chart.empty")), charts.render(rate, t("chart.empty"))


async def discrepancy_chart(c: Container, t: Translator) -> Markup:
    by_day = await c.reconciliation.discrepancies_by_day(DAYS)
    today = c.reconciliation.today()
    days = [(today - timedelta(days=DAYS - 1 - i)).isoformat() for i in range(DAYS)]
    open_ = [by_day.get(d, {}).get("OPEN", 0) for d in days]
    closed = [sum(n for s, n in by_day.get(d, {}).items() if s != "OPEN") for d in days]
    series = [(t("chart.open"), open_), (t("chart.resolved"), closed)]
    chart = charts.bar_chart(t("chart.discrepancies"), [d[5:] for d in days], series, counts=True)
    return charts.render(chart, t("chart.empty"))


async def backlog_chart(c: Container, t: Translator) -> Markup:
    counts = await NoticeService(c.db).counts()
    series = [(t("chart.deliveries"), [counts.get(s, 0) for s in BACKLOG_STATUSES])]
    chart = charts.bar_chart(t("chart.backlog"), [t(f"status.{s}") for s in BACKLOG_STATUSES], series, counts=True)
    return charts.render(chart, t("chart.empty"))
