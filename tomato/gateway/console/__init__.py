"""The operator and finance console under `/console`: server-rendered pages (Jinja2, autoescaped) over the same
services the `/admin` API calls, a sealed session cookie, CSRF on every form, role checks on the server, Chinese
and English, and charts as inline SVG. docs/console.md describes it for its users."""

from __future__ import annotations

from fastapi import APIRouter

from tomato.gateway.console import (
    pages_audit,
    pages_auth,
    pages_channels,
    pages_deliveries,
    pages_fallback,
    pages_ledger,
    pages_merchants,
    pages_recon,
    pages_tokens,
)

router = APIRouter()
for part in (
    pages_auth.public,
    pages_auth.signed_in,
    pages_merchants.router,
    pages_channels.router,
    pages_deliveries.router,
    pages_recon.router,
    pages_ledger.router,
    pages_tokens.router,
    pages_audit.router,
    pages_fallback.router,  # last: only what no page above took
):
    router.include_router(part)
