"""Statement faults of the simulator (docs/operations.md): make a date's statement differ from the records.

`POST /sandbox/statement-faults` adds faults for one channel and China calendar date (they add up);
`DELETE /sandbox/statement-faults` removes them all. `MISSING_LOCAL` is applied to the trade at once: an unpaid
trade becomes paid at the channel — on its statement and to queries — without a notify, and stays paid.
"""

from __future__ import annotations

from datetime import date
from typing import Literal

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, ConfigDict, Field, field_validator

from tomato.channel.sandbox.state import (
    SandboxState,
    SimTrade,
    StatementFault,
    StatementFaultType,
    TradeState,
    day_time,
)

_UNPAID = (TradeState.UNSCANNED, TradeState.WAITING, TradeState.CLOSED)


class StatementFaultIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: StatementFaultType
    order_no: str = Field(min_length=1, max_length=64, pattern=r"^[0-9A-Za-z_\-]+$")


class StatementFaultsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    channel: Literal["alipay", "wechat", "bank"]
    date: str = Field(pattern=r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
    faults: list[StatementFaultIn] = Field(min_length=1, max_length=1000)

    @field_validator("date")
    @classmethod
    def _calendar_date(cls, value: str) -> str:
        date.fromisoformat(value)  # ValueError → 422 naming `date`
        return value


class StatementFaultsOut(BaseModel):
    channel: str
    date: str
    faults: list[StatementFaultIn]


def create_statement_router(state: SandboxState) -> APIRouter:
    router = APIRouter(prefix="/sandbox", tags=["sandbox"])

    @router.post("/statement-faults", response_model=StatementFaultsOut, responses={404: {}, 409: {}})
    async def add_faults(body: StatementFaultsIn) -> StatementFaultsOut:
        day = date.fromisoformat(body.date)
        book = state.books[body.channel]
        silent: list[SimTrade] = []
        for fault in body.faults:  # every fault is checked before any is applied
            trade = book.find_by_order_no(fault.order_no)
            if fault.type is StatementFaultType.MISSING_LOCAL:
                if trade is None:
                    raise HTTPException(404, f"{body.channel} has no trade {fault.order_no}")
                if trade.state not in _UNPAID:
                    raise HTTPException(409, f"trade {fault.order_no} is {trade.state.value}, not unpaid")
                silent.append(trade)
            elif trade is None and not any(fault.order_no in t.refunds for t in book.trades.values()):
                raise HTTPException(404, f"{body.channel} has no trade or refund {fault.order_no}")
        simulator = state.simulators[body.channel]
        for trade in silent:
            simulator.pay_silently(trade, day_time(day, trade, state.clock.now()))
        faults = state.statement_faults.setdefault((body.channel, day), [])
        faults += [StatementFault(f.type, f.order_no) for f in body.faults]
        listed = [StatementFaultIn(type=f.type, order_no=f.order_no) for f in faults]
        return StatementFaultsOut(channel=body.channel, date=body.date, faults=listed)

    @router.delete("/statement-faults")
    async def reset_faults() -> dict[str, str]:
        state.reset_statement_faults()
        return {"status": "reset"}

    return router
