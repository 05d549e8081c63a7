"""Every query of the merchant context. Never commits: the service owns the unit of work."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from tomato.merchant.models import AdminToken, App, AppKey, FeePlan, Merchant, PlatformKey


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
