"""Commands into and read models out of the pay context (the API field rules, docs/api.md)."""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from tomato.core.clock import UtcDateTime
from tomato.core.crypto import sha256_hex
from tomato.core.money import MAX_FEN
from tomato.core.pay_methods import PayMethod
from tomato.core.text import DocumentedRule, SafeText, refuse_control_characters

OutNo = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
HttpUrl = Annotated[
    str,
    StringConstraints(max_length=512, pattern=r"^https?://[^\s]+$"),
    AfterValidator(refuse_control_characters),
    DocumentedRule(),
]


def field_errors(model: str, problems: list[tuple[str, str]]) -> ValidationError:
    """A rule across fields, reported at the fields to fix (`payer.openid`), not at the whole body: a model
    validator's plain ValueError would carry no location."""
    return ValidationError.from_exception_data(
        model,
        [
            InitErrorDetails(
                type=PydanticCustomError("cross_field", "{issue}", {"issue": issue}),
                loc=tuple(field.split(".")),
                input=None,
            )
            for field, issue in problems
        ],
    )


def _metadata_schema(schema: dict[str, Any]) -> None:
    """The document's metadata rule: at most 20 pairs, keys of 1-64 characters (checked by `_meta`)."""
    [(pattern, values)] = schema.pop("patternProperties").items()
    schema.update(
        maxProperties=20,
        propertyNames={"minLength": 1, "maxLength": 64, "pattern": pattern},
        additionalProperties=values,
    )


class Payer(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    openid: SafeText = Field(min_length=1, max_length=128)


class PayOrderCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    out_trade_no: OutNo
    amount: int = Field(ge=1, le=MAX_FEN)  # and at most the app's amount_limit (checked by the service)
    currency: Literal["CNY"] = "CNY"
    subject: SafeText = Field(min_length=1, max_length=128)
    body: SafeText | None = Field(default=None, max_length=512)
    pay_method: PayMethod
    notify_url: HttpUrl | None = None
    return_url: HttpUrl | None = None
    expire_minutes: int = Field(default=30, ge=1, le=1440)
    client_ip: str | None = Field(
        default=None,
        max_length=45,
        json_schema_extra={  # an IP address (Python's parser: dotted quad or RFC 4291 text), or null
            "anyOf": [
                {"type": "string", "format": "ipv4", "maxLength": 45},
                {"type": "string", "format": "ipv6", "maxLength": 45},
                {"type": "null"},
            ]
        },
    )
    payer: Payer | None = None
    metadata: dict[SafeText, Annotated[SafeText, StringConstraints(max_length=500)]] = Field(
        default_factory=dict, json_schema_extra=_metadata_schema
    )

    @field_validator("pay_method", mode="before")
    @classmethod
    def _method(cls, value: Any) -> Any:
        return PayMethod(value) if isinstance(value, str) and value in PayMethod.__members__ else value

    @field_validator("client_ip")
    @classmethod
    def _ip(cls, value: str | None) -> str | None:
        if value is not None:
            ipaddress.ip_address(value)
        return value

    @field_validator("metadata")
    @classmethod
    def _meta(cls, value: dict[str, str]) -> dict[str, str]:
        if len(value) > 20:
            raise ValueError("at most 20 pairs")
        if any(not 1 <= len(k) <= 64 for k in value):
            raise ValueError("keys are 1-64 characters")
        return value

    @model_validator(mode="after")
    def _method_needs(self) -> PayOrderCreate:
        if self.pay_method is PayMethod.WECHAT_H5 and self.client_ip is None:
            raise field_errors("PayOrderCreate", [("client_ip", "required for WECHAT_H5")])
        if self.pay_method is PayMethod.WECHAT_JSAPI and self.payer is None:
            raise field_errors("PayOrderCreate", [("payer.openid", "required for WECHAT_JSAPI")])
        return self

    def request_hash(self) -> str:
        """Every field after defaults, canonically serialised: an omitted optional field equals its default."""
        return sha256_hex(json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":")).encode())


class PayDataView(BaseModel):
    type: str
    value: str | dict[str, str]


class PayOrderView(BaseModel):
    """The API order object, field for field."""

    order_no: str
    app_id: str
    out_trade_no: str
    status: str
    paid_after_close: bool
    amount: int
    currency: str
    subject: str
    body: str | None
    pay_method: str
    channel: str | None
    channel_trade_no: str | None
    pay_data: PayDataView | None
    refunded_amount: int
    refund_status: str
    expire_at: str
    paid_at: str | None
    created_at: str
    metadata: dict[str, str]


class CloseOrder(BaseModel):
    """`POST /v1/pay/orders/{order_no}/close` takes no fields: an empty body or `{}`."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"maxProperties": 0})


class RefundCreate(BaseModel):
    """`POST /v1/refunds`: the order by exactly one of `order_no`, `out_trade_no`."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={  # exactly one of the two is a string; the other is absent or null
            "oneOf": [
                {
                    "required": ["order_no"],
                    "properties": {"order_no": {"type": "string"}, "out_trade_no": {"type": "null"}},
                },
                {
                    "required": ["out_trade_no"],
                    "properties": {"out_trade_no": {"type": "string"}, "order_no": {"type": "null"}},
                },
            ]
        },
    )

    order_no: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9]{1,32}$")] | None = None
    out_trade_no: OutNo | None = None
    out_refund_no: OutNo
    amount: int = Field(ge=1, le=MAX_FEN)  # and at most what is left of the order (checked by the service)
    reason: SafeText | None = Field(default=None, min_length=1, max_length=80)  # WeChat's limit, the tightest
    notify_url: HttpUrl | None = None

    @model_validator(mode="after")
    def _one_order_reference(self) -> RefundCreate:
        if (self.order_no is None) == (self.out_trade_no is None):
            why = "neither was given" if self.order_no is None else "both were given"
            issue = f"give exactly one of order_no and out_trade_no; {why}"
            raise field_errors("RefundCreate", [("order_no", issue), ("out_trade_no", issue)])
        return self

    def request_hash(self) -> str:
        """Every field after defaults, canonically serialised (the same rule as pay orders)."""
        return sha256_hex(json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":")).encode())


class RefundView(BaseModel):
    """The API refund object, field for field (also the `data` of every refund.* event)."""

    refund_no: str
    order_no: str
    out_refund_no: str
    amount: int
    status: str
    channel_refund_no: str | None
    failure_reason: str | None
    created_at: str
    succeeded_at: str | None


class AnomalyView(BaseModel):
    """An anomaly pay recorded (money finance must act on), as reconciliation's workflow shows it."""

    id: str
    kind: str
    order_no: str | None
    refund_no: str | None
    mch_no: str | None
    app_id: str | None
    channel_account_id: str | None
    channel_trade_no: str | None
    amount: int | None  # fen, the channel's figure
    note: str | None
    source: str | None
    created_at: UtcDateTime


@dataclass(frozen=True)
class SucceededOrder:
    """What the ledger check needs of a SUCCEEDED order (read through PayService, never pay's tables)."""

    order_no: str
    amount: int
    paid_at: datetime | None


# --- operator reads (the console) -------------------------------------------------------------------------------


class OrderLookup(BaseModel):
    """Orders and refunds one number names: any of order_no, out_trade_no, channel_trade_no, refund_no,
    out_refund_no (a merchant-side number may be used by several apps, so lists)."""

    orders: list[PayOrderView]
    refunds: list[RefundView]


@dataclass(frozen=True)
class HourlyVolume:
    """One channel's orders created in one UTC hour: how many, how many succeeded, and their amount in fen."""

    hour: datetime
    channel: str
    orders: int
    succeeded: int
    amount: int
