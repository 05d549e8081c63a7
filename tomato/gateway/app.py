"""The app factory: composes routers, middleware and error mapping around one process container."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI

from tomato import __version__
from tomato.bootstrap import Container
from tomato.core.settings import Settings
from tomato.gateway import errors, openapi
from tomato.gateway.channel_metrics import channel_health
from tomato.gateway.console import router as console_router
from tomato.gateway.docs import install_docs
from tomato.gateway.metrics import Metrics, multiprocess_dir
from tomato.gateway.middleware import RequestContextMiddleware
from tomato.gateway.portal import router as portal_router
from tomato.gateway.routers import callbacks, cashier, health
from tomato.gateway.routers.admin import audit as admin_audit
from tomato.gateway.routers.admin import channel_identities as admin_channel_identities
from tomato.gateway.routers.admin import channels as admin_channels
from tomato.gateway.routers.admin import deliveries as admin_deliveries
from tomato.gateway.routers.admin import fee_plans as admin_fee_plans
from tomato.gateway.routers.admin import ledger as admin_ledger
from tomato.gateway.routers.admin import merchants as admin_merchants
from tomato.gateway.routers.admin import portal_users as admin_portal_users
from tomato.gateway.routers.admin import reconciliation as admin_reconciliation
from tomato.gateway.routers.admin import routing as admin_routing
from tomato.gateway.routers.admin import settlements as admin_settlements
from tomato.gateway.routers.admin import tokens as admin_tokens
from tomato.gateway.routers.metrics import metrics_router
from tomato.gateway.routers.v1 import balance, events, pay_orders, payouts, platform, refunds, splits
from tomato.gateway.signed_route import install_unmatched

log = logging.getLogger(__name__)

DESCRIPTION = (
    "The merchant API `/v1` (every request signed, every answer to a known app signed: docs/api.md) and the "
    "operator and finance API `/admin` (bearer tokens with roles). Every operation lists each status it can "
    "answer; every error has the `Error` body. What the document guarantees: docs/openapi.md."
)

Hook = Callable[[Container], Awaitable[None]]
Builder = Callable[[], Awaitable[Container]]


def create_app(
    container: Container | Builder,
    *,
    on_start: list[Hook] | None = None,
    on_stop: list[Hook] | None = None,
    settings: Settings | None = None,
) -> FastAPI:
    """`container` is a built container (tests, dev) or a builder run in the lifespan (each `serve` worker).

    `on_start`/`on_stop` let roles attach background loops (relay, consumers) without the app knowing them.
    `settings` decide what the app exposes (metrics, docs, access log) before a builder has run; by default those of
    the container, or the defaults.
    """
    if settings is None:
        settings = container.settings if isinstance(container, Container) else Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = not isinstance(container, Container)
        c = await container() if not isinstance(container, Container) else container
        if owned:
            _attach(app, c, metrics)
        for hook in on_start or []:
            await hook(c)
        try:
            yield
        finally:
            for hook in reversed(on_stop or []):
                try:
                    await asyncio.wait_for(hook(c), timeout=8)
                except Exception:
                    log.warning("shutdown hook failed", exc_info=True)
            if owned:
                await c.aclose()
            metrics.process_exiting()

    app = FastAPI(
        title="Tomato Pay", version=__version__, lifespan=lifespan, openapi_url=None, docs_url=None, redoc_url=None
    )
    metrics = Metrics(multiproc=multiprocess_dir())
    if isinstance(container, Container):
        _attach(app, container, metrics)
    app.state.metrics = metrics
    errors.install(app)
    install_unmatched(app)
    app.include_router(health.router)
    if settings.metrics_enabled:
        app.include_router(metrics_router(settings.metrics_token))
    app.include_router(pay_orders.router)
    app.include_router(refunds.router)
    app.include_router(splits.router)
    app.include_router(payouts.router)
    app.include_router(platform.router)
    app.include_router(events.router)
    app.include_router(balance.router)
    app.include_router(callbacks.router)
    app.include_router(cashier.router)
    app.include_router(admin_merchants.router)
    app.include_router(admin_channels.router)
    app.include_router(admin_channel_identities.router)
    app.include_router(admin_portal_users.router)
    app.include_router(admin_routing.router)
    app.include_router(admin_deliveries.router)
    app.include_router(admin_settlements.finance)
    app.include_router(admin_settlements.calendar)
    app.include_router(admin_fee_plans.router)
    app.include_router(admin_reconciliation.router)
    app.include_router(admin_ledger.router)
    app.include_router(admin_tokens.router)
    app.include_router(admin_audit.router)
    app.include_router(console_router)
    app.include_router(portal_router)
    app.add_middleware(RequestContextMiddleware, metrics=metrics, access_log=settings.access_log)
    openapi.install(app, description=DESCRIPTION)
    install_docs(app, settings)
    return app


def _attach(app: FastAPI, c: Container, metrics: Metrics) -> None:
    app.state.container = c
    metrics.collector(lambda: channel_health(c.channels))
