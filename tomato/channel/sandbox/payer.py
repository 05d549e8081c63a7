"""The payer side of the simulator (docs/operations.md): scan a pay code or order number, and switch faults.

Lookups are delegated to every attached channel simulator through `ChannelSimulator.find_for_scan`, so WeChat and
bank simulators plug in without touching this module.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, ConfigDict, Field, model_validator

from tomato.channel.sandbox.state import ChannelSimulator, SandboxState, SimTrade


class ScanIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    content: str | None = None
    order_no: str | None = None
    result: Literal["paid", "failed"] = "paid"

    @model_validator(mode="after")
    def _one_key(self) -> ScanIn:
        if not self.content and not self.order_no:
            raise ValueError("content or order_no is required")
        return self


class ScanOut(BaseModel):
    channel: str
    channel_trade_no: str
    status: Literal["PAID", "FAILED"]


class FaultsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    channel: Literal["alipay", "wechat", "bank"]
    latency_ms: int | None = Field(default=None, ge=0, le=600_000)
    error_rate: float | None = Field(default=None, ge=0, le=1)
    timeout_rate: float | None = Field(default=None, ge=0, le=1)
    drop_notify: bool | None = None
    duplicate_notify: int | None = Field(default=None, ge=0, le=100)
    ignore_close: bool | None = None
    reject_refunds: bool | None = None
    reject_payouts: bool | None = None


def find_trade(
    state: SandboxState, content: str | None, order_no: str | None
) -> tuple[ChannelSimulator, SimTrade] | None:
    """Ask each attached channel simulator in turn; the first that knows the code or order wins."""
    for simulator in state.simulators.values():
        trade = simulator.find_for_scan(content, order_no)
        if trade is not None:
            return simulator, trade
    return None


def create_payer_router(state: SandboxState) -> APIRouter:
    router = APIRouter(prefix="/sandbox", tags=["sandbox"])

    @router.post("/scan", response_model=ScanOut)
    async def scan(body: ScanIn) -> ScanOut:
        found = find_trade(state, body.content, body.order_no)
        if found is None:
            raise HTTPException(404, "no trade for this content or order_no")
        simulator, trade = found
        if trade.settled:
            raise HTTPException(409, f"trade is already {trade.state.value}")
        paid = body.result == "paid"
        simulator.complete(trade, paid)
        status: Literal["PAID", "FAILED"] = "PAID" if paid else "FAILED"
        return ScanOut(channel=trade.channel, channel_trade_no=trade.channel_trade_no, status=status)

    @router.post("/faults")
    async def set_faults(body: FaultsIn) -> dict[str, Any]:
        changes = body.model_dump(exclude_unset=True, exclude={"channel"})
        faults = state.faults[body.channel]
        faults.update({k: v for k, v in changes.items() if v is not None})
        return {"channel": body.channel, **vars(faults)}

    @router.delete("/faults")
    async def reset_faults() -> dict[str, str]:
        state.reset_faults()
        return {"status": "reset"}

    return router
