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
from tomato.core.pay_methods import PayMethod, barcode_channel
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

    openid: SafeText = Field(
        min_length=1, max_length=128, description="the payer's WeChat openid under the paying app's appid"
    )


class PayOrderCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    out_trade_no: OutNo = Field(
        description="your order number, unique per app; repeating it with the same request returns the same order"
    )
    amount: int = Field(
        ge=1, le=MAX_FEN, description="amount to collect in fen (integer), at most the app's `amount_limit`"
    )  # and at most the app's amount_limit (checked by the service)
    currency: Literal["CNY"] = Field(default="CNY", description="ISO 4217 currency; only CNY")
    subject: SafeText = Field(
        min_length=1,
        max_length=128,
        description="what is bought, shown to the payer by the wallet and the cashier page",
    )
    body: SafeText | None = Field(
        default=None, max_length=512, description="a longer description of the order, passed to the channel"
    )
    pay_method: PayMethod = Field(
        description="how the payer pays; decides the channel and the kind of `pay_data` returned"
    )
    notify_url: HttpUrl | None = Field(
        default=None, description="http(s) URL for this order's webhooks; default: the app's `notify_url`"
    )
    return_url: HttpUrl | None = Field(
        default=None,
        description="where the payer's browser goes back to after paying (browser methods and the cashier page)",
    )
    expire_minutes: int = Field(
        default=30, ge=1, le=1440, description="minutes until an unpaid order is closed, 1-1440"
    )
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
        description="the payer's IP address; required for `WECHAT_H5`",
    )
    payer: Payer | None = Field(default=None, description="the payer at the channel; required for `WECHAT_JSAPI`")
    auth_code: str | None = Field(
        default=None,
        pattern=r"^[0-9]{16,24}$",
        description="`BARCODE` only, and required there: the payer's code the till scanned (digits; Alipay codes start "
        "25-30 with 16-24 digits, WeChat Pay 10-15 with 18, UnionPay 62 with 19)",
    )
    profit_sharing: bool = Field(
        default=False, description="the payment may be split between receivers once paid (see Profit sharing)"
    )
    metadata: dict[SafeText, Annotated[SafeText, StringConstraints(max_length=500)]] = Field(
        default_factory=dict,
        json_schema_extra=_metadata_schema,
        description="your own key-value pairs, returned on the order and in its webhooks (at most 20)",
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
        if self.pay_method is PayMethod.BARCODE:
            if self.auth_code is None:
                raise field_errors("PayOrderCreate", [("auth_code", "required for BARCODE")])
            if barcode_channel(self.auth_code) is None:
                raise field_errors("PayOrderCreate", [("auth_code", "not a code of any channel we serve")])
        elif self.auth_code is not None:
            raise field_errors("PayOrderCreate", [("auth_code", "applies to BARCODE only")])
        return self

    def request_hash(self) -> str:
        """Every field after defaults, canonically serialised: an omitted optional field equals its default (fields
        added later are left out while unset, so an order made before they existed hashes as it did)."""
        unset_later = ({"auth_code"} if self.auth_code is None else set()) | (
            set() if self.profit_sharing else {"profit_sharing"}
        )
        dumped = self.model_dump(mode="json", exclude=unset_later)
        return sha256_hex(json.dumps(dumped, sort_keys=True, separators=(",", ":")).encode())


class PayDataView(BaseModel):
    type: str = Field(
        description="`qr_code`, `redirect_url`, `form_html`, `jsapi` or `cashier_url`: how to hand the payment to the "
        "payer"
    )
    value: str | dict[str, str] = Field(
        description="the text, URL or HTML form to show, or the object of WeChat JSAPI parameters for `jsapi`"
    )


class PayOrderView(BaseModel):
    """The API order object, field for field."""

    order_no: str = Field(description="the platform's order number (`P…`)")
    app_id: str = Field(description="the app that created the order")
    out_trade_no: str = Field(description="the merchant's order number")
    status: str = Field(description="`CREATED`, `PAYING`, `SUCCEEDED`, `FAILED` or `CLOSED`")
    paid_after_close: bool = Field(
        description="true when the channel reported a payment after the order was closed (finance sees it as an "
        "anomaly)"
    )
    amount: int = Field(description="amount to collect, in fen")
    currency: str = Field(description="ISO 4217 currency (CNY)")
    subject: str = Field(description="what is bought")
    body: str | None = Field(description="the order's longer description, if given")
    pay_method: str = Field(description="the pay method asked for")
    channel: str | None = Field(
        description="`alipay`, `wechat` or `bank` once a channel accepted the order; null before"
    )
    channel_trade_no: str | None = Field(description="the channel's own trade number, once known")
    pay_data: PayDataView | None = Field(
        description="what to show the payer to pay (QR text, URL, form, JSAPI parameters, cashier URL); null before "
        "submission"
    )
    refunded_amount: int = Field(description="sum of the order's succeeded refunds, in fen")
    refund_status: str = Field(description="`NONE`, `PARTIAL` or `FULL`")
    expire_at: str = Field(description="when an unpaid order is closed (RFC 3339 UTC)")
    paid_at: str | None = Field(description="when the channel says it was paid (RFC 3339 UTC); null until paid")
    created_at: str = Field(description="when the order was created (RFC 3339 UTC)")
    metadata: dict[str, str] = Field(description="the merchant's key-value pairs from the create request")


class CashierOrderView(BaseModel):
    """What the cashier page shows besides the order itself: whose order it is and where the payer goes back to."""

    order: PayOrderView = Field(description="the order the cashier link is for")
    mch_no: str = Field(description="the merchant whose name the page shows")
    return_url: str | None = Field(description="where the page links the payer back to once paid; null: no link")


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

    order_no: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9]{1,32}$")] | None = Field(
        default=None, description="the order to refund by the platform's number; give this or `out_trade_no`, not both"
    )
    out_trade_no: OutNo | None = Field(
        default=None, description="the order to refund by your order number; give this or `order_no`, not both"
    )
    out_refund_no: OutNo = Field(
        description="your refund number, unique per app; repeating it with the same request returns the same refund"
    )
    amount: int = Field(
        ge=1, le=MAX_FEN, description="amount to refund in fen, at most what is left of the order"
    )  # and at most what is left of the order (checked by the service)
    reason: SafeText | None = Field(
        default=None, min_length=1, max_length=80, description="why, passed to the channel (at most 80 characters)"
    )  # WeChat's limit, the tightest
    notify_url: HttpUrl | None = Field(
        default=None, description="http(s) URL for this refund's webhooks; default: the order's, else the app's"
    )

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

    refund_no: str = Field(description="the platform's refund number (`R…`)")
    order_no: str = Field(description="the refunded order")
    out_refund_no: str = Field(description="the merchant's refund number")
    amount: int = Field(description="refunded amount, in fen")
    status: str = Field(description="`PENDING`, `SUCCEEDED` or `FAILED`")
    channel_refund_no: str | None = Field(description="the channel's refund number, once known")
    failure_reason: str | None = Field(description="why the channel refused the refund; null unless `FAILED`")
    created_at: str = Field(description="when the refund was accepted (RFC 3339 UTC)")
    succeeded_at: str | None = Field(description="when the channel completed it (RFC 3339 UTC); null until `SUCCEEDED`")


class AnomalyView(BaseModel):
    """An anomaly pay recorded (money finance must act on), as reconciliation's workflow shows it."""

    id: str = Field(description="the anomaly's id (`AN…`)")
    kind: str = Field(
        description="what happened, e.g. a payment after close or an amount the channel reported differently"
    )
    order_no: str | None = Field(description="the order concerned, if any")
    refund_no: str | None = Field(description="the refund concerned, if any")
    mch_no: str | None = Field(description="the merchant concerned, if known")
    app_id: str | None = Field(description="the app concerned, if known")
    channel_account_id: str | None = Field(description="the channel account that reported it")
    channel_trade_no: str | None = Field(description="the channel's trade number, if known")
    amount: int | None = Field(description="the channel's figure, in fen")  # fen, the channel's figure
    note: str | None = Field(description="what the platform recorded about it")
    source: str | None = Field(description="which report found it (notify, query, reconciliation, …)")
    created_at: UtcDateTime = Field(description="when it was recorded (RFC 3339 UTC)")


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


@dataclass(frozen=True)
class MethodVolume:
    """One pay method's orders of a merchant in a period: how many, how many succeeded, the succeeded fen."""

    pay_method: str
    orders: int
    succeeded: int
    amount: int
