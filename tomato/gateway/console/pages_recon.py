"""Finance pages: reconciliation batches by date with their summary, the discrepancy list (filters, resolution
form, CSV) and pay anomalies (resolution form)."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Request
from starlette.responses import Response

from tomato.core.errors import InvalidRequest
from tomato.gateway.console import audit
from tomato.gateway.console.audit import view
from tomato.gateway.console.csv_export import csv_response
from tomato.gateway.console.guard import form_of, page_route, viewer_of
from tomato.gateway.console.render import html, redirect
from tomato.gateway.deps import container
from tomato.gateway.paging import decode_cursor, encode_cursor
from tomato.reconciliation.schemas import (
    AnomalyResolve,
    DiscrepancyResolve,
    DiscrepancyView,
    ReconciliationRun,
    parse_day,
)

router = APIRouter(prefix="/console", route_class=page_route("finance"), include_in_schema=False)

BatchId = Annotated[str, Path(pattern=r"^RB[0-9]{1,20}$")]
DiscrepancyId = Annotated[str, Path(pattern=r"^RD[0-9]{1,20}$")]
AnomalyId = Annotated[str, Path(pattern=r"^AN[0-9]{1,20}$")]
Day = Annotated[str | None, Query(pattern=r"^([0-9]{4}-[0-9]{2}-[0-9]{2})?$")]
BatchQ = Annotated[str | None, Query(pattern=r"^(RB[0-9]{1,20})?$")]
CursorQ = Annotated[str | None, Query(max_length=200, pattern=r"^[A-Za-z0-9_-]+$")]
Type = Literal[
    "", "MISSING_LOCAL", "MISSING_CHANNEL", "AMOUNT_MISMATCH", "FEE_MISMATCH", "STATUS_MISMATCH", "DUPLICATE"
]
Status = Literal["", "OPEN", "AUTO_RESOLVED", "RESOLVED"]
TYPES = [t for t in Type.__args__ if t]  # type: ignore[attr-defined]
STATUSES = [s for s in Status.__args__ if s]  # type: ignore[attr-defined]
PAGE = 50
CSV_HEADER = ("id", "batch_id", "type", "status", "order_no", "refund_no", "channel_trade_no", "local_amount",
              "channel_amount", "local_fee", "channel_fee", "action", "note", "by", "at")  # fmt: skip


def _day(value: str | None, default: str) -> str:
    if not value:
        return default
    try:
        return parse_day(value).isoformat()
    except ValueError as exc:
        raise InvalidRequest.field("date", str(exc)) from exc


@router.get("/reconciliation")
async def batches(request: Request, date: Day = None) -> Response:
    c = container(request)
    svc = c.reconciliation
    yesterday = (svc.today() - timedelta(days=1)).isoformat()
    day = _day(date, yesterday)
    found = await svc.list_batches(None, 100, {"date": day})
    accounts = await c.channels.list_accounts(None, 100)
    return html(request, "finance/batches.html", day=day, batches=found, accounts=accounts, types=TYPES)


@router.post("/reconciliation/run")
async def run(request: Request) -> Response:
    form = form_of(request)
    cmd = ReconciliationRun(channel_account_id=form.get("channel_account_id") or "", date=form.get("date") or "")
    svc = container(request).reconciliation
    day = parse_day(cmd.date)
    if day > svc.today():
        raise InvalidRequest.field("date", "is in the future")
    if day < svc.today() - timedelta(days=3660):
        raise InvalidRequest.field("date", "is more than ten years ago")
    batch = await svc.run(cmd.channel_account_id, day)
    await audit.record(request, "reconciliation.run", batch.id, None, view(batch))
    return redirect(f"/console/reconciliation/batches/{batch.id}")


@router.get("/reconciliation/batches/{batch_id}")
async def batch(batch_id: BatchId, request: Request) -> Response:
    svc = container(request).reconciliation
    found = await svc.get_batch(batch_id)
    items = await svc.list_discrepancies(None, 500, {"batch_id": batch_id})
    return html(request, "finance/batch.html", batch=found, items=items, types=TYPES)


@router.get("/reconciliation/batches/{batch_id}/summary.csv")
async def summary_csv(batch_id: BatchId, request: Request) -> Response:
    body = await container(request).reconciliation.summary_csv(batch_id)
    disposition = f'attachment; filename="reconciliation-{batch_id}.csv"'
    return Response(body, media_type="text/csv; charset=utf-8", headers={"Content-Disposition": disposition})


def _filters(batch_id: str | None, type_: str | None, status: str | None) -> dict[str, str]:
    given = {"batch_id": batch_id, "type": type_, "status": status}
    return {k: v for k, v in given.items() if v}


@router.get("/discrepancies")
async def discrepancies(
    request: Request, batch_id: BatchQ = None, type: Type | None = None,  # noqa: A002 - the list's filter name
    status: Status | None = None, cursor: CursorQ = None,
) -> Response:  # fmt: skip
    filters = _filters(batch_id, type, status)
    items = await container(request).reconciliation.list_discrepancies(decode_cursor(cursor), PAGE + 1, filters)
    shown = items[:PAGE]
    nxt = encode_cursor(shown[-1].id) if len(items) > PAGE else None
    return html(request, "finance/discrepancies.html", items=shown, filters=filters, next_cursor=nxt, types=TYPES,
                statuses=STATUSES)  # fmt: skip


@router.get("/discrepancies.csv")
async def discrepancies_csv(
    request: Request, batch_id: BatchQ = None, type: Type | None = None,  # noqa: A002
    status: Status | None = None,
) -> Response:  # fmt: skip
    filters = _filters(batch_id, type, status)
    svc = container(request).reconciliation
    rows: list[DiscrepancyView] = []
    after = None
    while True:  # every matching row, a thousand at a time
        chunk = await svc.list_discrepancies(after, 1000, filters)
        rows += chunk
        if len(chunk) < 1000:
            break
        after = chunk[-1].id
    return csv_response("discrepancies.csv", CSV_HEADER, (_row(d) for d in rows))


def _row(d: DiscrepancyView) -> list[object]:
    r = d.resolution
    return [d.id, d.batch_id, d.type, d.status, d.order_no, d.refund_no, d.channel_trade_no, d.local_amount,
            d.channel_amount, d.local_fee, d.channel_fee, r and r.action, r and r.note, r and r.by,
            r and r.at.isoformat()]  # fmt: skip


@router.get("/discrepancies/{discrepancy_id}")
async def discrepancy(discrepancy_id: DiscrepancyId, request: Request) -> Response:
    found = await container(request).reconciliation.get_discrepancy(discrepancy_id)
    return html(request, "finance/discrepancy.html", d=found)


@router.post("/discrepancies/{discrepancy_id}/resolve")
async def resolve(discrepancy_id: DiscrepancyId, request: Request) -> Response:
    form = form_of(request)
    cmd = DiscrepancyResolve.model_validate({"action": form.get("action") or "", "note": form.get("note") or ""})
    svc = container(request).reconciliation
    before = await svc.get_discrepancy(discrepancy_id)
    after = await svc.resolve(discrepancy_id, cmd.action, cmd.note, viewer_of(request).name)
    await audit.record(request, "reconciliation.resolve", discrepancy_id, view(before), view(after))
    return redirect(f"/console/discrepancies/{discrepancy_id}?ok=resolved")


@router.get("/anomalies")
async def anomalies(
    request: Request, kind: Annotated[str | None, Query(max_length=32, pattern=r"^[a-z_]*$")] = None,
    cursor: CursorQ = None,
) -> Response:  # fmt: skip
    items = await container(request).reconciliation.list_anomalies(decode_cursor(cursor), PAGE + 1, kind or None)
    shown = items[:PAGE]
    nxt = encode_cursor(shown[-1].id) if len(items) > PAGE else None
    return html(request, "finance/anomalies.html", items=shown, kind=kind or "", next_cursor=nxt)


@router.post("/anomalies/{anomaly_id}/resolve")
async def resolve_anomaly(anomaly_id: AnomalyId, request: Request) -> Response:
    form = form_of(request)
    cmd = AnomalyResolve.model_validate({"action": form.get("action") or "", "note": form.get("note") or ""})
    after = await container(request).reconciliation.resolve_anomaly(
        anomaly_id, cmd.action, cmd.note, viewer_of(request).name
    )
    await audit.record(request, "anomaly.resolve", anomaly_id, None, view(after))
    return redirect("/console/anomalies?ok=resolved")
