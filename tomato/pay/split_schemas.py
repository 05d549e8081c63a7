"""The profit-sharing API's commands and objects (docs/merchant-guide.md, "Profit sharing")."""

from __future__ import annotations

import json
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StringConstraints, field_validator

from tomato.core.clock import UtcDateTime
from tomato.core.crypto import sha256_hex
from tomato.core.money import MAX_FEN
from tomato.core.text import SafeText
from tomato.pay.schemas import OutNo

ReceiverId = Annotated[str, StringConstraints(pattern=r"^S[0-9]{1,30}$")]


class SplitReceiverCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    channel: Literal["alipay", "wechat"] = Field(description="the channel the receiver has an account at")
    account: str = Field(
        pattern=r"^[0-9A-Za-z_@.+-]{1,64}$",
        description="WeChat Pay: a merchant id (MERCHANT) or an openid under the platform's appid (PERSONAL); "
        "Alipay: a user id (2088…) or a logon id",
    )
    account_type: Literal["MERCHANT", "PERSONAL"] = Field(description="a merchant's account or a person's")
    name: SafeText | None = Field(
        default=None, min_length=1, max_length=128, description="the full name (WeChat: required for MERCHANT)"
    )


class SplitReceiverView(BaseModel):
    receiver_id: str = Field(description="the receiver's id (`S…`)")
    channel: str = Field(description="`alipay` or `wechat`")
    account: str = Field(description="the receiver's account at the channel")
    account_type: str = Field(description="`MERCHANT` or `PERSONAL`")
    name: str | None = Field(description="the receiver's name as registered")
    created_at: UtcDateTime = Field(description="when it was registered (RFC 3339 UTC)")


class SplitShareCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    receiver_id: ReceiverId = Field(description="a receiver registered for the order's channel")
    amount: StrictInt = Field(ge=1, le=MAX_FEN, description="fen to this receiver")
    description: SafeText = Field(min_length=1, max_length=80, description="why, shown to the receiver")


class SplitCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    out_split_no: OutNo = Field(description="your split number, unique per app: a repeat returns the same split")
    receivers: list[SplitShareCreate] = Field(
        min_length=1, max_length=50, description="who gets how much; each receiver at most once"
    )

    @field_validator("receivers")
    @classmethod
    def _distinct(cls, value: list[SplitShareCreate]) -> list[SplitShareCreate]:
        if len({r.receiver_id for r in value}) != len(value):
            raise ValueError("a receiver appears twice")
        return value

    @property
    def amount(self) -> int:
        return sum(r.amount for r in self.receivers)

    def request_hash(self) -> str:
        return sha256_hex(json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":")).encode())


class SplitShareView(BaseModel):
    receiver_id: str = Field(description="the receiver")
    amount: int = Field(description="this receiver's share in fen")
    status: str = Field(description="`PENDING`, `SUCCEEDED` or `FAILED`, as the split's")


class SplitView(BaseModel):
    """The API split object; also the `data` of `split.*` events."""

    split_no: str = Field(description="the platform's split number (`D…`)")
    order_no: str = Field(description="the order split")
    out_split_no: str = Field(description="your split number")
    status: str = Field(description="`PENDING` (the channel is splitting), `SUCCEEDED` or `FAILED`")
    amount: int = Field(description="fen split in all")
    receivers: list[SplitShareView] = Field(description="each receiver's share")
    created_at: UtcDateTime = Field(description="when it was made")
    finished_at: UtcDateTime | None = Field(description="when it became SUCCEEDED or FAILED; null while PENDING")


class SplitList(BaseModel):
    data: list[SplitView] = Field(description="the order's splits, oldest first")
