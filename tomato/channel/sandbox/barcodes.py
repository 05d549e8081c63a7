"""Payer-presented codes (付款码) at the simulators: `POST /sandbox/barcodes` hands out a code of a channel whose
payer behaves as asked, and each channel's barcode pay consults this book.

Behaviours, as seen by the channel's barcode pay request:
- `pay`: paid at once;
- `confirm_after`: "the payer is confirming" (Alipay `10003`, WeChat `USERPAYING`) until `confirm_after_s` seconds
  after the pay request, paid from then on (queries say so; a cancel/reverse before then stops it);
- `never`: confirming for ever (until cancelled/reversed);
- `refuse`: refused (insufficient funds).
A code the book never issued is refused as an invalid code. Codes have each channel's shape: Alipay 18 digits
starting 28, WeChat 18 starting 13, UnionPay 19 starting 62.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from tomato.core.clock import Clock

Behaviour = Literal["pay", "confirm_after", "never", "refuse"]
_PREFIX = {"alipay": ("28", 18), "wechat": ("13", 18), "bank": ("62", 19)}


@dataclass(frozen=True)
class Barcode:
    code: str
    channel: str
    behaviour: Behaviour
    confirm_after_s: float


class BarcodeBook:
    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._codes: dict[str, Barcode] = {}
        self._presented: dict[str, datetime] = {}  # code → when its pay request first arrived

    def issue(self, channel: str, behaviour: Behaviour, confirm_after_s: float = 10.0) -> Barcode:
        prefix, length = _PREFIX[channel]
        code = prefix + "".join(secrets.choice("0123456789") for _ in range(length - len(prefix)))
        barcode = Barcode(code, channel, behaviour, confirm_after_s)
        self._codes[code] = barcode
        return barcode

    def lookup(self, code: str) -> Barcode | None:
        return self._codes.get(code)

    def present(self, code: str) -> None:
        """The pay request carrying the code arrived now (the confirm-after clock starts at the first one)."""
        self._presented.setdefault(code, self._clock.now())

    def confirmed(self, code: str) -> bool:
        """Whether the payer has confirmed by now: `pay` at once, `confirm_after` once its delay has passed."""
        barcode = self._codes.get(code)
        if barcode is None or barcode.behaviour in ("never", "refuse"):
            return False
        if barcode.behaviour == "pay":
            return True
        presented = self._presented.get(code)
        return presented is not None and self._clock.now() >= presented + timedelta(seconds=barcode.confirm_after_s)


class BarcodeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    channel: Literal["alipay", "wechat", "bank"]
    behaviour: Behaviour = "pay"
    confirm_after_s: float = Field(default=10.0, ge=0, le=3600)


def create_barcode_router(book: BarcodeBook) -> APIRouter:
    router = APIRouter(prefix="/sandbox", include_in_schema=False)

    @router.post("/barcodes")
    async def issue(body: BarcodeRequest) -> dict[str, str]:
        return {"auth_code": book.issue(body.channel, body.behaviour, body.confirm_after_s).code}

    return router
