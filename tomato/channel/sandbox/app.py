"""`create_sandbox_app`: the simulator as its own ASGI app (gateways + payer API); shutdown closes the notifier."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from tomato.channel.sandbox.alipay import AlipaySimulator
from tomato.channel.sandbox.bank import BankSimulator
from tomato.channel.sandbox.barcodes import create_barcode_router
from tomato.channel.sandbox.payer import create_payer_router
from tomato.channel.sandbox.registration import create_registration_router
from tomato.channel.sandbox.state import SandboxState
from tomato.channel.sandbox.statements import create_statement_router
from tomato.channel.sandbox.wechat import WechatSimulator


def alipay_simulator(state: SandboxState) -> AlipaySimulator:
    """The state's Alipay simulator, created (with a fresh key) on first use."""
    existing = state.simulators.get("alipay")
    if isinstance(existing, AlipaySimulator):
        return existing
    return AlipaySimulator(state)


def bank_simulator(state: SandboxState) -> BankSimulator:
    """The state's bank simulator, created (with a fresh key and cert id) on first use."""
    existing = state.simulators.get("bank")
    if isinstance(existing, BankSimulator):
        return existing
    return BankSimulator(state)


def wechat_simulator(state: SandboxState) -> WechatSimulator:
    """The state's WeChat Pay simulator, created (with a fresh platform key) on first use."""
    existing = state.simulators.get("wechat")
    if isinstance(existing, WechatSimulator):
        return existing
    return WechatSimulator(state)


def create_sandbox_app(state: SandboxState) -> FastAPI:
    alipay_simulator(state)
    wechat_simulator(state)
    bank_simulator(state)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await state.aclose()

    app = FastAPI(title="Tomato Pay channel simulator", lifespan=lifespan)
    app.state.sandbox = state
    for simulator in state.simulators.values():
        app.include_router(simulator.router())
    app.include_router(create_payer_router(state))
    app.include_router(create_barcode_router(state.barcodes))
    app.include_router(create_registration_router(state))
    app.include_router(create_statement_router(state))

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app
