"""The merchant portal under `/portal`: a merchant's own people (owner, developer, finance, support) serve
themselves in the browser over the same services as the API. Same stack as the console (server-rendered Jinja2,
sealed session cookie, CSRF on every form, roles checked on the server, Chinese and English); every page reads only
the signed-in user's merchant, and every action leaves an audit record. docs/portal.md describes it."""

from __future__ import annotations

from fastapi import APIRouter

from tomato.gateway.portal import (
    pages_apps,
    pages_auth,
    pages_deliveries,
    pages_home,
    pages_money,
    pages_orders,
    pages_users,
)

router = APIRouter()
for part in (
    pages_auth.public,
    pages_auth.signed_in,
    pages_home.router,
    pages_users.router,
    pages_orders.router,
    pages_orders.refunding,
    pages_money.router,
    pages_apps.router,
    pages_deliveries.router,
):
    router.include_router(part)
