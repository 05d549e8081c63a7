"""Finance endpoints: reconciliation runs and batches, discrepancies and their resolution, pay anomalies and
theirs, and each batch's summary as CSV. Every route needs the finance role (operator → 403)."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request, Response

from tomato.core.errors import InvalidRequest
from tomato.gateway.audit_trail import audited, bearer_token
from tomato.gateway.deps import admin_route, container
from tomato.gateway.paging import check_limit, decode_cursor, encode_cursor
from tomato.reconciliation.schemas import (
    AnomalyItem,
    AnomalyPage,
    AnomalyResolve,
    BatchPage,
    BatchView,
    DiscrepancyPage,
    DiscrepancyResolve,
    DiscrepancyView,
    ReconciliationRun,
    parse_day,
)

router = APIRouter(prefix="/admin", tags=["admin: reconciliation"], route_class=admin_route("finance"))

BatchId = Annotated[str, Path(pattern=r"^RB[0-9]{1,20}$", description="a batch id, RB…")]
DiscrepancyId = Annotated[str, Path(pattern=r"^RD[0-9]{1,20}$", description="a discrepancy id, RD…")]
AnomalyId = Annotated[str, Path(pattern=r"^AN[0-9]{1,20}$", description="an anomaly id, AN…")]
Limit = Annotated[int | None, Query(ge=1, le=100, description="1–100, default 20")]
Cursor = Annotated[str | None, Query(max_length=200)]
Type = Literal["MISSING_LOCAL", "MISSING_CHANNEL", "AMOUNT_MISMATCH", "FEE_MISMATCH", "STATUS_MISMATCH", "DUPLICATE"]

_AUTH: dict[int | str, dict[str, Any]] = {
    401: {"description": "no, unknown or revoked bearer token (UNAUTHENTICATED)"},
    403: {"description": "a token without the finance role (FORBIDDEN)"},
    422: {"description": "a field, query or path parameter is invalid; `details` name it (INVALID_REQUEST)"},
}
_BODY: dict[int | str, dict[str, Any]] = {400: {"description": "the body is not JSON (INVALID_REQUEST)"}}


async def _actor(request: Request) -> str:
    return await container(request).merchants.admin_name(bearer_token(request)) or str(request.state.admin_role)


@router.post(
    "/reconciliation/run",
    response_model=BatchView,
    responses={
        **_AUTH,
        **_BODY,
        404: {"description": "no such channel account (CHANNEL_ACCOUNT_NOT_FOUND)"},
        502: {"description": "the statement could not be fetched or failed its checks; the batch is ERROR"},
    },
)
async def run(cmd: ReconciliationRun, request: Request) -> BatchView:
    """Reconciles one channel account's statement of one business date (again: same batch, resolutions kept)."""
    svc = container(request).reconciliation
    day = parse_day(cmd.date)
    if day > svc.today():
        raise InvalidRequest.field("date", "is in the future")
    if day < svc.today() - timedelta(days=3660):
        raise InvalidRequest.field("date", "is more than ten years ago")
    batch = await svc.run(cmd.channel_account_id, day)
    await audited(request, "reconciliation.run", f"{cmd.channel_account_id}:{day.isoformat()}", after=batch)
    return batch


@router.get("/reconciliation/batches", response_model=BatchPage, responses=_AUTH)
async def list_batches(
    request: Request,
    limit: Limit = None,
    cursor: Cursor = None,
    channel_account_id: Annotated[str | None, Query(max_length=32, pattern=r"^[A-Za-z0-9_-]+$")] = None,
    date: Annotated[str | None, Query(pattern=r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")] = None,
    status: Literal["RUNNING", "MATCHED", "DISCREPANCIES", "ERROR"] | None = None,
) -> BatchPage:
    """Newest business date first."""
    n = check_limit(limit)
    key = decode_cursor(cursor)
    after = None
    if key is not None:
        day, _, batch_id = key.partition(":")
        if not batch_id:
            raise InvalidRequest.field("cursor", "malformed cursor")
        after = (day, batch_id)
    given = {"channel_account_id": channel_account_id, "date": date, "status": status}
    filters = {k: v for k, v in given.items() if v is not None}
    items = await container(request).reconciliation.list_batches(after, n + 1, filters)
    shown = items[:n]
    nxt = encode_cursor(f"{shown[-1].date}:{shown[-1].id}") if len(items) > n else None
    return BatchPage(data=shown, next_cursor=nxt)


@router.get(
    "/reconciliation/batches/{batch_id}",
    response_model=BatchView,
    responses={**_AUTH, 404: {"description": "no such batch (BATCH_NOT_FOUND)"}},
)
async def get_batch(batch_id: BatchId, request: Request) -> BatchView:
    return await container(request).reconciliation.get_batch(batch_id)


@router.get(
    "/reconciliation/batches/{batch_id}/summary.csv",
    response_class=Response,
    responses={
        **_AUTH,
        200: {"content": {"text/csv": {}}, "description": "UTF-8 CSV with a BOM"},
        404: {"description": "no such batch (BATCH_NOT_FOUND)"},
    },
)
async def summary_csv(batch_id: BatchId, request: Request) -> Response:
    """Counts and amounts on each side, matched, each discrepancy type, the status, then every discrepancy."""
    body = await container(request).reconciliation.summary_csv(batch_id)
    return Response(
        body,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="reconciliation-{batch_id}.csv"'},
    )


@router.get("/reconciliation/discrepancies", response_model=DiscrepancyPage, responses=_AUTH)
async def list_discrepancies(
    request: Request,
    limit: Limit = None,
    cursor: Cursor = None,
    batch_id: Annotated[str | None, Query(pattern=r"^RB[0-9]{1,20}$")] = None,
    type: Type | None = None,  # noqa: A002 - the API's name
    status: Literal["OPEN", "AUTO_RESOLVED", "RESOLVED"] | None = None,
) -> DiscrepancyPage:
    n = check_limit(limit)
    given = {"batch_id": batch_id, "type": type, "status": status}
    filters = {k: v for k, v in given.items() if v is not None}
    items = await container(request).reconciliation.list_discrepancies(decode_cursor(cursor), n + 1, filters)
    shown = items[:n]
    return DiscrepancyPage(data=shown, next_cursor=encode_cursor(shown[-1].id) if len(items) > n else None)


@router.get(
    "/reconciliation/discrepancies/{discrepancy_id}",
    response_model=DiscrepancyView,
    responses={**_AUTH, 404: {"description": "no such discrepancy (DISCREPANCY_NOT_FOUND)"}},
)
async def get_discrepancy(discrepancy_id: DiscrepancyId, request: Request) -> DiscrepancyView:
    return await container(request).reconciliation.get_discrepancy(discrepancy_id)


@router.post(
    "/reconciliation/discrepancies/{discrepancy_id}/resolve",
    response_model=DiscrepancyView,
    responses={
        **_AUTH,
        **_BODY,
        404: {"description": "no such discrepancy (DISCREPANCY_NOT_FOUND)"},
        409: {"description": "already resolved or auto-resolved (ORDER_STATE_CONFLICT)"},
    },
)
async def resolve(discrepancy_id: DiscrepancyId, cmd: DiscrepancyResolve, request: Request) -> DiscrepancyView:
    """ACCEPT_CHANNEL books an adjusting ledger entry; ACCEPT_LOCAL and WRITE_OFF record the decision. Audited."""
    actor = await _actor(request)
    svc = container(request).reconciliation
    before = await svc.get_discrepancy(discrepancy_id)
    after = await svc.resolve(discrepancy_id, cmd.action, cmd.note, actor)
    await audited(request, "reconciliation.resolve", discrepancy_id, before=before, after=after)
    return after


@router.get("/anomalies", response_model=AnomalyPage, responses=_AUTH)
async def list_anomalies(
    request: Request,
    limit: Limit = None,
    cursor: Cursor = None,
    kind: Annotated[str | None, Query(max_length=32, pattern=r"^[a-z_]+$")] = None,
) -> AnomalyPage:
    """Pay anomalies newest first, each with finance's resolution (null while open)."""
    n = check_limit(limit)
    items = await container(request).reconciliation.list_anomalies(decode_cursor(cursor), n + 1, kind)
    shown = items[:n]
    return AnomalyPage(data=shown, next_cursor=encode_cursor(shown[-1].id) if len(items) > n else None)


@router.post(
    "/anomalies/{anomaly_id}/resolve",
    response_model=AnomalyItem,
    responses={
        **_AUTH,
        **_BODY,
        404: {"description": "no such anomaly (ANOMALY_NOT_FOUND)"},
        409: {"description": "already resolved (ORDER_STATE_CONFLICT)"},
    },
)
async def resolve_anomaly(anomaly_id: AnomalyId, cmd: AnomalyResolve, request: Request) -> AnomalyItem:
    """RELEASE_TO_MERCHANT, REFUND_PAYER or WRITE_OFF the money held in suspense for the anomaly. Audited."""
    actor = await _actor(request)
    after = await container(request).reconciliation.resolve_anomaly(anomaly_id, cmd.action, cmd.note, actor)
    await audited(request, "anomaly.resolve", anomaly_id, after=after)
    return after
