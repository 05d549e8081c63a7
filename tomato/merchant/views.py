"""The merchant context's views of its rows, as the admin API, the portal and the signed API show them."""

from __future__ import annotations

import json
from collections.abc import Sequence

from tomato.merchant.models import App, AppKey, FeePlan, Merchant
from tomato.merchant.schemas import DEFAULT_SETTLE_CYCLE, AppView, FeePlanView, KeyView, MerchantView


def app_view(app: App, merchant_status: str, keys: Sequence[AppKey]) -> AppView:
    effective = "FROZEN" if merchant_status != "ACTIVE" or app.status != "ACTIVE" else "ACTIVE"
    return AppView(
        app_id=app.app_id,
        mch_no=app.mch_no,
        name=app.name,
        status=effective,
        sign_type=app.sign_type,
        notify_url=app.notify_url,
        pay_methods=json.loads(app.pay_methods),
        amount_limit=app.amount_limit,
        keys=[KeyView(key_id=k.key_id, status=k.status, created_at=k.created_at) for k in keys],
        created_at=app.created_at,
    )


def merchant_view(m: Merchant, apps: list[AppView]) -> MerchantView:
    return MerchantView(
        mch_no=m.mch_no,
        name=m.name,
        status=m.status,
        fee_plan_id=m.fee_plan_id,
        settle_cycle=m.settle_cycle or DEFAULT_SETTLE_CYCLE,
        created_at=m.created_at,
        apps=apps,
    )


def fee_plan_view(p: FeePlan) -> FeePlanView:
    return FeePlanView(
        id=p.id,
        name=p.name,
        rates=json.loads(p.rates),
        min_fee=p.min_fee,
        refund_fee=p.refund_fee,
        created_at=p.created_at,
    )
