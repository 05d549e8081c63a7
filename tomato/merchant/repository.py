"""Every query of the merchant context. Never commits: the service owns the unit of work."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from tomato.merchant.admin_schemas import AuditFilter
from tomato.merchant.models import AdminAudit, AdminToken, App, AppKey, FeePlan, Merchant, PlatformKey


async def get_merchant(s: AsyncSession, mch_no: str) -> Merchant | None:
    return await s.get(Merchant, mch_no)


async def list_merchants(s: AsyncSession, after: str | None, limit: int) -> Sequence[Merchant]:
    q = select(Merchant).order_by(Merchant.mch_no).limit(limit)
    if after is not None:
        q = q.where(Merchant.mch_no > after)
    return (await s.scalars(q)).all()


async def set_settle_cycle(s: AsyncSession, mch_no: str, cycle: str, now: datetime) -> bool:
    res = await s.execute(update(Merchant).where(Merchant.mch_no == mch_no).values(settle_cycle=cycle, updated_at=now))
    return int(res.rowcount) == 1  # type: ignore[attr-defined]


async def settle_cycles(s: AsyncSession, mch_nos: Sequence[str]) -> dict[str, str]:
    rows = await s.execute(select(Merchant.mch_no, Merchant.settle_cycle).where(Merchant.mch_no.in_(list(mch_nos))))
    return {mch_no: cycle for mch_no, cycle in rows.all()}


async def get_app(s: AsyncSession, app_id: str) -> App | None:
    return await s.get(App, app_id)


async def apps_of(s: AsyncSession, mch_nos: Sequence[str]) -> Sequence[App]:
    if not mch_nos:
        return []
    return (await s.scalars(select(App).where(App.mch_no.in_(mch_nos)).order_by(App.app_id))).all()


async def active_keys(s: AsyncSession, app_ids: Sequence[str]) -> Sequence[AppKey]:
    if not app_ids:
        return []
    q = (
        select(AppKey)
        .where(AppKey.app_id.in_(app_ids), AppKey.status == "ACTIVE")
        .order_by(AppKey.created_at.desc(), AppKey.key_id.desc())
    )
    return (await s.scalars(q)).all()


async def count_active_keys(s: AsyncSession, app_id: str) -> int:
    q = select(func.count()).select_from(AppKey).where(AppKey.app_id == app_id, AppKey.status == "ACTIVE")
    return int((await s.execute(q)).scalar_one())


async def revoke_key(s: AsyncSession, app_id: str, key_id: str) -> bool:
    res = await s.execute(
        update(AppKey)
        .where(AppKey.app_id == app_id, AppKey.key_id == key_id, AppKey.status == "ACTIVE")
        .values(status="REVOKED")
    )
    return bool(res.rowcount)  # type: ignore[attr-defined]


async def set_merchant_status(s: AsyncSession, mch_no: str, status: str, now: datetime) -> bool:
    res = await s.execute(update(Merchant).where(Merchant.mch_no == mch_no).values(status=status, updated_at=now))
    return bool(res.rowcount)  # type: ignore[attr-defined]


async def set_app_status(s: AsyncSession, app_id: str, status: str, now: datetime) -> bool:
    res = await s.execute(update(App).where(App.app_id == app_id).values(status=status, updated_at=now))
    return bool(res.rowcount)  # type: ignore[attr-defined]


async def find_token(s: AsyncSession, token_hash: str) -> AdminToken | None:
    return await s.get(AdminToken, token_hash)


async def find_token_by_id(s: AsyncSession, token_id: str) -> AdminToken | None:
    return (await s.scalars(select(AdminToken).where(AdminToken.token_id == token_id))).first()


async def list_tokens(s: AsyncSession, after: str | None, limit: int) -> Sequence[AdminToken]:
    """Oldest first, then by id; `after` is the last token id seen (its creation time places the page)."""
    q = select(AdminToken).order_by(AdminToken.created_at, AdminToken.token_id).limit(limit)
    if after is not None:
        anchor = select(AdminToken.created_at).where(AdminToken.token_id == after).scalar_subquery()
        q = q.where(
            or_(AdminToken.created_at > anchor, and_(AdminToken.created_at == anchor, AdminToken.token_id > after))
        )
    return (await s.scalars(q)).all()


async def revoke_token(s: AsyncSession, token_id: str, now: datetime) -> bool:
    """Compare-and-set: only a token not yet revoked is revoked (False: unknown or already revoked)."""
    res = await s.execute(
        update(AdminToken)
        .where(AdminToken.token_id == token_id, AdminToken.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    return bool(res.rowcount)  # type: ignore[attr-defined]


async def list_audit(s: AsyncSession, f: AuditFilter, before_id: int | None, limit: int) -> Sequence[AdminAudit]:
    """Newest first; `before_id` is the last record id seen. `since`/`until` must be UTC (SQLite compares text)."""
    q = select(AdminAudit).order_by(AdminAudit.id.desc()).limit(limit)
    if before_id is not None:
        q = q.where(AdminAudit.id < before_id)
    if f.action is not None:
        q = q.where(AdminAudit.action == f.action)
    if f.actor is not None:
        by_id = f.actor.startswith("tok_")
        q = q.where(AdminAudit.actor_token_id == f.actor if by_id else AdminAudit.actor == f.actor)
    if f.target is not None:
        q = q.where(AdminAudit.target == f.target)
    if f.mch_no is not None:
        q = q.where(AdminAudit.mch_no == f.mch_no)
    if f.since is not None:
        q = q.where(AdminAudit.at >= f.since)
    if f.until is not None:
        q = q.where(AdminAudit.at < f.until)
    return (await s.scalars(q)).all()


async def latest_platform_key(s: AsyncSession) -> PlatformKey | None:
    q = select(PlatformKey).order_by(PlatformKey.created_at.desc()).limit(1)
    return (await s.scalars(q)).first()


async def get_fee_plan(s: AsyncSession, plan_id: str) -> FeePlan | None:
    return await s.get(FeePlan, plan_id)


async def list_fee_plans(s: AsyncSession, after: str | None, limit: int) -> Sequence[FeePlan]:
    q = select(FeePlan).order_by(FeePlan.id).limit(limit)
    if after is not None:
        q = q.where(FeePlan.id > after)
    return (await s.scalars(q)).all()


async def set_fee_plan(s: AsyncSession, mch_no: str, plan_id: str | None, now: datetime) -> bool:
    res = await s.execute(update(Merchant).where(Merchant.mch_no == mch_no).values(fee_plan_id=plan_id, updated_at=now))
    return bool(res.rowcount)  # type: ignore[attr-defined]


async def fee_plan_of_merchant(s: AsyncSession, mch_no: str) -> FeePlan | None:
    """The plan the merchant is on now (None: no plan, or no such merchant)."""
    q = select(FeePlan).join(Merchant, Merchant.fee_plan_id == FeePlan.id).where(Merchant.mch_no == mch_no)
    return (await s.scalars(q)).first()
