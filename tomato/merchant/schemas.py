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
    name: SafeText = Field(min_length=1, max_length=128)


class SettleCycleUpdate(_Strict):
    cycle: str = Field(pattern=SETTLE_CYCLE_PATTERN, max_length=4, examples=["T+1", "D+0", "T+3"])


class AppCreate(_Strict):
    name: SafeText = Field(default="default", min_length=1, max_length=128)
    sign_type: SignType = "HMAC-SHA256"
    public_key_pem: str | None = Field(default=None, max_length=8192)
    notify_url: SafeText | None = Field(default=None, max_length=512)
    pay_methods: list[PayMethod] = Field(default_factory=lambda: [PayMethod(m) for m in ALL_PAY_METHODS])
    amount_limit: StrictInt = Field(default=DEFAULT_AMOUNT_LIMIT, ge=1, le=DEFAULT_AMOUNT_LIMIT)

    _url = field_validator("notify_url")(_check_url)
    _key = field_validator("public_key_pem")(_check_public_key)


class AppUpdate(_Strict):
    """An omitted field keeps its value; `notify_url: null` removes the URL, any other null is refused."""

    name: SafeText | None = Field(default=None, min_length=1, max_length=128)
    notify_url: SafeText | None = Field(default=None, max_length=512)
    pay_methods: list[PayMethod] | None = None
    amount_limit: StrictInt | None = Field(default=None, ge=1, le=DEFAULT_AMOUNT_LIMIT)

    _url = field_validator("notify_url")(_check_url)

    @field_validator("name", "pay_methods", "amount_limit")
    @classmethod
    def _not_null(cls, value: object) -> object:
        """Runs only when the field is given: an app always has a name, methods and a limit (NOT NULL columns)."""
        if value is None:
            raise ValueError("must not be null; omit it to keep the current value")
        return value


class KeyRotate(_Strict):
    public_key_pem: str | None = Field(default=None, max_length=8192)

    _key = field_validator("public_key_pem")(_check_public_key)


class KeyView(BaseModel):
    key_id: str
    status: str
    created_at: UtcDateTime


class AppView(BaseModel):
    app_id: str
    mch_no: str
    name: str
    status: str  # effective: FROZEN when the app or its merchant is frozen
    sign_type: str
    notify_url: str | None
    pay_methods: list[str]
    amount_limit: int
    keys: list[KeyView]
    created_at: UtcDateTime


class MerchantView(BaseModel):
    mch_no: str
    name: str
    status: str
    settle_cycle: str = DEFAULT_SETTLE_CYCLE
    fee_plan_id: str | None = None  # null: the merchant is charged no fee
    created_at: UtcDateTime
    apps: list[AppView] = Field(default_factory=list)


class AppCreated(BaseModel):
    """Returned once at creation or rotation: the only time an HMAC secret is ever shown."""

    app: AppView
    key_id: str
    secret: str | None


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

    name: SafeText = Field(min_length=1, max_length=128)
    rates: dict[PayMethod, Ppm]
    min_fee: StrictInt = Field(default=0, ge=0, le=MAX_FEN)
    refund_fee: RefundFeeRule = "proportional"

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
    id: str
    name: str
    rates: dict[str, int]
    min_fee: int
    refund_fee: str
    created_at: UtcDateTime


class FeePlanAssign(_Strict):
    """`fee_plan_id: null` takes the merchant off its plan (charged 0 from then on)."""

    fee_plan_id: SafeText | None = Field(min_length=1, max_length=32)


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
    data: list[FeePlanView]
    next_cursor: str | None
