"""Wiring a standalone simulator (`tomato sandbox`) to a platform over HTTP.

`GET /sandbox/keys` gives each channel's public key (to configure channel accounts with); `POST /sandbox/apps`
registers a merchant-side public key under the channel's merchant id (Alipay `app_id`), as a channel's console
would. `tomato dev` does the same in-process.
"""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, ConfigDict, Field

from tomato.channel.sandbox.alipay import AlipaySimulator
from tomato.channel.sandbox.state import SandboxState


class AppRegistration(BaseModel):
    model_config = ConfigDict(extra="forbid")

    channel: Literal["alipay"]
    merchant_id: str = Field(min_length=1, max_length=64)
    public_key_pem: str = Field(min_length=1, max_length=8192)


def create_registration_router(state: SandboxState) -> APIRouter:
    router = APIRouter(prefix="/sandbox", include_in_schema=False)

    @router.get("/keys")
    async def keys() -> dict[str, str]:
        return {name: sim.public_key_pem for name, sim in state.simulators.items() if hasattr(sim, "public_key_pem")}

    @router.post("/apps")
    async def register(body: AppRegistration) -> dict[str, str]:
        simulator = state.simulators.get(body.channel)
        if not isinstance(simulator, AlipaySimulator):
            raise HTTPException(404, f"no {body.channel} simulator")
        try:
            simulator.register_app(body.merchant_id, body.public_key_pem)
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from exc
        return {"channel": body.channel, "merchant_id": body.merchant_id}

    return router
