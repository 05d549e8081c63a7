"""Commands into and read models out of the merchant context."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from pydantic import BaseModel, ConfigDict, Field, StrictInt, field_validator

from tomato.core.clock import UtcDateTime
from tomato.core.crypto import load_public_key
from tomato.core.money import MAX_FEN
from tomato.core.pay_methods import ALL_PAY_METHODS, PayMethod
from tomato.core.text import SafeText
from tomato.merchant.fees import PPM, RefundFeeRule

SignType = Literal["HMAC-SHA256", "RSA-SHA256"]
DEFAULT_AMOUNT_LIMIT = 100_000_000
# A merchant's settlement cycle: "D+0" (due on the payment's business date), "T+N" (the N-th working day after it)
SETTLE_CYCLE_PATTERN = r"^(D\+0|T\+([1-9]|[12][0-9]|30))$"
DEFAULT_SETTLE_CYCLE = "T+1"


class _Strict(BaseModel):
    """Unknown fields are refused; numbers must be numbers (no "12" → 12 coercion)."""

    model_config = ConfigDict(extra="forbid")


def _check_url(value: str | None) -> str | None:
    if value is not None and not value.startswith(("http://", "https://")):
        raise ValueError("must be an http(s) URL")
    return value


def _check_public_key(value: str | None) -> str | None:
    if value is not None:
        try:
            load_public_key(value)
        except ValueError as exc:
            raise ValueError("not an RSA public key (SPKI PEM or its base64 body)") from exc
    return value


class MerchantCreate(_Strict):
    name: SafeText = Field(
        min_length=1, max_length=128, description="the merchant's display name, shown to payers on the cashier page"
    )


class SettleCycleUpdate(_Strict):
    cycle: str = Field(
        pattern=SETTLE_CYCLE_PATTERN,
        max_length=4,
        examples=["T+1", "D+0", "T+3"],
        description="settlement cycle: `D+0` (settled on the payment's business date) or `T+N` (the N-th working day "
        "after it, N 1-30)",
    )


class AppCreate(_Strict):
    name: SafeText = Field(
        default="default",
        min_length=1,
        max_length=128,
        description="a label for the app, e.g. the shop or system that uses it",
    )
    sign_type: SignType = Field(
        default="HMAC-SHA256",
        description="how the app signs requests: a shared HMAC secret (returned once) or an RSA key pair whose public "
        "half is given here",
    )
    public_key_pem: str | None = Field(
        default=None,
        max_length=8192,
        description="the app's RSA public key (SPKI PEM or its base64 body); required for `RSA-SHA256`, refused "
        "otherwise",
    )
    notify_url: SafeText | None = Field(
        default=None,
        max_length=512,
        description="default http(s) URL for this app's webhooks; an order or refund may name its own",
    )
    pay_methods: list[PayMethod] = Field(
        default_factory=lambda: [PayMethod(m) for m in ALL_PAY_METHODS],
        description="the pay methods the app may use; an order with another method is refused with "
        "`PAY_METHOD_NOT_ENABLED`",
    )
    amount_limit: StrictInt = Field(
        default=DEFAULT_AMOUNT_LIMIT,
        ge=1,
        le=DEFAULT_AMOUNT_LIMIT,
        description="largest order amount the app may create, in fen",
    )

    _url = field_validator("notify_url")(_check_url)
    _key = field_validator("public_key_pem")(_check_public_key)


class AppUpdate(_Strict):
    """An omitted field keeps its value; `notify_url: null` removes the URL, any other null is refused."""

    name: SafeText | None = Field(
        default=None, min_length=1, max_length=128, description="new label; omitted: unchanged"
    )
    notify_url: SafeText | None = Field(
        default=None, max_length=512, description="new default webhook URL; null removes it, omitted: unchanged"
    )
    pay_methods: list[PayMethod] | None = Field(
        default=None, description="the new set of enabled pay methods; omitted: unchanged"
    )
    amount_limit: StrictInt | None = Field(
        default=None, ge=1, le=DEFAULT_AMOUNT_LIMIT, description="new largest order amount in fen; omitted: unchanged"
    )

    _url = field_validator("notify_url")(_check_url)

    @field_validator("name", "pay_methods", "amount_limit")
    @classmethod
    def _not_null(cls, value: object) -> object:
        """Runs only when the field is given: an app always has a name, methods and a limit (NOT NULL columns)."""
        if value is None:
            raise ValueError("must not be null; omit it to keep the current value")
        return value


class KeyRotate(_Strict):
    public_key_pem: str | None = Field(
        default=None,
        max_length=8192,
        description="for an RSA app, the new public key (SPKI PEM); for an HMAC app omit it and a new secret is "
        "generated",
    )

    _key = field_validator("public_key_pem")(_check_public_key)


class KeyView(BaseModel):
    key_id: str = Field(description="id of the key or secret, so a rotation can be followed")
    status: str = Field(description="`ACTIVE` (accepted on requests) or `REVOKED` (removed, no longer accepted)")
    created_at: UtcDateTime = Field(description="when the key was created (RFC 3339 UTC)")


class AppView(BaseModel):
    app_id: str = Field(description="the app's id (`A…`), sent as `Tomato-App-Id`")
    mch_no: str = Field(description="the merchant the app belongs to")
    name: str = Field(description="the app's label")
    status: str = Field(
        description="`ACTIVE`, or `FROZEN` when the app or its merchant is frozen (its requests are refused)"
    )  # effective: FROZEN when the app or its merchant is frozen
    sign_type: str = Field(description="`HMAC-SHA256` or `RSA-SHA256`: how the app signs requests")
    notify_url: str | None = Field(
        description="default webhook URL of the app; null: webhooks only to order or refund URLs"
    )
    pay_methods: list[str] = Field(description="the pay methods the app may use")
    amount_limit: int = Field(description="largest order amount the app may create, in fen")
    keys: list[KeyView] = Field(
        description="the app's signing keys, current and retired (never the secrets themselves)"
    )
    created_at: UtcDateTime = Field(description="when the app was created (RFC 3339 UTC)")


class MerchantView(BaseModel):
    mch_no: str = Field(description="the merchant's number (`M…`)")
    name: str = Field(description="the merchant's display name")
    status: str = Field(description="`ACTIVE` or `FROZEN` (every app of a frozen merchant is refused)")
    settle_cycle: str = Field(
        default=DEFAULT_SETTLE_CYCLE, description="when pending money becomes available: `D+0` or `T+N` working days"
    )
    fee_plan_id: str | None = Field(
        default=None, description="the fee plan charged on the merchant's payments; null: no fee"
    )  # null: the merchant is charged no fee
    created_at: UtcDateTime = Field(description="when the merchant was created (RFC 3339 UTC)")
    apps: list[AppView] = Field(default_factory=list, description="the merchant's apps")


class AppCreated(BaseModel):
    """Returned once at creation or rotation: the only time an HMAC secret is ever shown."""

    app: AppView = Field(description="the app as created or rotated")
    key_id: str = Field(description="id of the new key or secret")
    secret: str | None = Field(description="the new HMAC secret, shown only in this answer; null for an RSA app")


@dataclass(frozen=True)
class AppAuth:
    """What the gateway needs to authenticate and authorise a request for one app."""

    app_id: str
    mch_no: str
    sign_type: str
    app_status: str
    merchant_status: str
    hmac_secrets: tuple[bytes, ...]
    rsa_public_keys: tuple[RSAPublicKey, ...]
    pay_methods: frozenset[str]
    amount_limit: int
    notify_url: str | None


# --- fee plans ---------------------------------------------------------------------------------------------------

Ppm = Annotated[StrictInt, Field(ge=0, le=PPM)]


class FeePlanCreate(_Strict):
    """`rates`: parts per million per pay method (a method absent is charged 0); `min_fee` (fen) applies to
    payments only; `refund_fee`: whether refunds give the fee back in proportion (`proportional`) or not (`none`)."""

    name: SafeText = Field(min_length=1, max_length=128, description="a label for the plan")
    rates: dict[PayMethod, Ppm] = Field(
        description="fee per pay method in parts per million of the amount (6000 = 0.6 %); a method absent is charged 0"
    )
    min_fee: StrictInt = Field(
        default=0, ge=0, le=MAX_FEN, description="smallest fee of a payment, in fen (not applied to refunds)"
    )
    refund_fee: RefundFeeRule = Field(
        default="proportional", description="on a refund, `proportional` gives back the fee pro rata, `none` keeps it"
    )

    @field_validator("rates", mode="before")
    @classmethod
    def _known_methods(cls, value: Any) -> Any:
        """Names the first unknown pay method, instead of the enum's generic complaint about a key."""
        if isinstance(value, dict):
            for key in value:
                if key not in ALL_PAY_METHODS:
                    shown = key if isinstance(key, str) and len(key) <= 64 else f"{str(key)[:64]}…"
                    raise ValueError(f"unknown pay method {shown!r} (one of {', '.join(ALL_PAY_METHODS)})")
        return value


class FeePlanView(BaseModel):
    id: str = Field(description="the plan's id")
    name: str = Field(description="the plan's label")
    rates: dict[str, int] = Field(description="fee per pay method in parts per million of the amount")
    min_fee: int = Field(description="smallest fee of a payment, in fen")
    refund_fee: str = Field(description="`proportional` or `none`: whether a refund gives the fee back")
    created_at: UtcDateTime = Field(description="when the plan was created (RFC 3339 UTC)")


class FeePlanAssign(_Strict):
    """`fee_plan_id: null` takes the merchant off its plan (charged 0 from then on)."""

    fee_plan_id: SafeText | None = Field(
        min_length=1,
        max_length=32,
        description="the plan to charge the merchant on from now on; null takes the merchant off any plan",
    )


@dataclass(frozen=True)
class FeeTerms:
    """A merchant's fee plan as the payment snapshot needs it."""

    fee_plan_id: str
    rates: dict[str, int]
    min_fee: int
    refund_fee: str

    def rate_of(self, pay_method: str) -> int:
        return self.rates.get(pay_method, 0)


class FeePlanList(BaseModel):
    data: list[FeePlanView] = Field(description="the fee plans of this page, oldest first")
    next_cursor: str | None = Field(description="pass as `cursor` to get the next page; null on the last page")
