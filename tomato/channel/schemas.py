"""Commands into and read models out of the channel context."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, field_validator, model_validator

from tomato.core.clock import UtcDateTime
from tomato.core.money import MAX_FEN
from tomato.core.pay_methods import PayMethod
from tomato.core.text import SafeText

ChannelName = Literal["alipay", "wechat", "bank"]
HHMM = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"


# --- the documented shape of each channel's `config` (OpenAPI only: the adapters' parse_config validate it, and
# check more than a schema can, such as that a PEM holds an RSA key). Extra keys are ignored by the adapters.
_TEXT = r"\S"  # the adapters strip the value and refuse a blank one
_URL = r"^https?://[^/?#\s]+"  # an absolute http(s) URL


class AlipayAccountConfig(BaseModel):
    model_config = ConfigDict(title="AlipayAccountConfig")

    app_id: str = Field(pattern=_TEXT)
    private_key_pem: str = Field(pattern=_TEXT, description="the merchant's RSA private key (PEM or bare base64)")
    alipay_public_key_pem: str = Field(pattern=_TEXT)
    gateway_url: str = Field(pattern=_URL)


class WechatAccountConfig(BaseModel):
    model_config = ConfigDict(title="WechatAccountConfig")

    mchid: str = Field(pattern=r"^[0-9]{1,32}$")
    appid: str = Field(pattern=_TEXT)
    serial_no: str = Field(pattern=r"^[0-9A-Fa-f]{1,64}$", description="the merchant API certificate serial")
    private_key_pem: str = Field(pattern=_TEXT)
    api_v3_key: str = Field(pattern=r"^[ -~]{32}$", description="exactly 32 printable ASCII characters")
    platform_public_key_pem: str = Field(pattern=_TEXT)
    platform_public_key_id: str = Field(pattern=r"^(PUB_KEY_ID_[0-9A-Za-z]{1,64}|[0-9A-Fa-f]{1,64})$")
    base_url: str = Field(pattern=r"^https?://[^/?#\s]+/?$", description="an origin: requests go to base_url + /v3/…")
    platform_certificate_pem: str | None = None


class BankAccountConfig(BaseModel):
    model_config = ConfigDict(title="BankAccountConfig")

    mer_id: str = Field(pattern=r"^[A-Za-z0-9]{15}$")
    cert_id: str = Field(pattern=r"^[0-9]{1,40}$", description="decimal serial of the merchant signing certificate")
    private_key_pem: str = Field(pattern=_TEXT)
    bank_public_key_pem: str = Field(pattern=_TEXT)
    front_url: str = Field(pattern=_URL)
    back_url: str = Field(pattern=_URL)
    query_url: str = Field(pattern=_URL)
    file_url: str | None = Field(default=None, pattern=_URL)
    app_url: str | None = Field(default=None, pattern=_URL)


CONFIG_OF: dict[str, type[BaseModel]] = {
    "alipay": AlipayAccountConfig,
    "wechat": WechatAccountConfig,
    "bank": BankAccountConfig,
}


def _config_union(schema: dict[str, Any]) -> None:
    """`ChannelAccountCreate` in the document: a union discriminated by `channel`, each with its own `config`."""
    variants = []
    for channel, model in CONFIG_OF.items():
        variants.append(
            {
                "title": f"{channel} account",
                "properties": {"channel": {"const": channel}, "config": model.model_json_schema()},
            }
        )
    schema["oneOf"] = variants
    schema["discriminator"] = {"propertyName": "channel"}


class ChannelAccountCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra=_config_union)

    channel: ChannelName
    name: SafeText = Field(min_length=1, max_length=128)
    config: dict[str, Any]
    mch_no: SafeText | None = Field(default=None, max_length=32)
    daily_limit: int | None = Field(default=None, ge=1, le=MAX_FEN)
    cost_ppm: StrictInt = Field(default=0, ge=0, le=1_000_000)  # the channel's own fee, parts per million


class ChannelAccountUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: SafeText | None = Field(default=None, min_length=1, max_length=128)  # omitted: unchanged; null: refused
    daily_limit: int | None = Field(default=None, ge=1, le=MAX_FEN)  # null: no limit
    cost_ppm: StrictInt | None = Field(default=None, ge=0, le=1_000_000)  # omitted: unchanged; null: refused

    @field_validator("name", "cost_ppm")
    @classmethod
    def _not_null(cls, value: object) -> object:
        """Runs only when the field is given: an account always has a name and a cost rate, so a null is a 422."""
        if value is None:
            raise ValueError("must not be null; omit it to keep the current value")
        return value


class ChannelAccountView(BaseModel):
    """Never carries the config: secrets are write-only."""

    id: str
    channel: str
    name: str
    status: str
    mch_no: str | None = None
    daily_limit: int | None = None
    cost_ppm: int = 0
    created_at: UtcDateTime


class Candidate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    channel_account_id: SafeText = Field(min_length=1, max_length=32)
    priority: int = Field(default=1, ge=0, le=1000)
    weight: int = Field(default=100, ge=1, le=1_000_000)


class RoutingRuleCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={  # time_start and time_end go together: both strings, or both absent or null
            "anyOf": [
                {"properties": {"time_start": {"type": "null"}, "time_end": {"type": "null"}}},
                {
                    "required": ["time_start", "time_end"],
                    "properties": {"time_start": {"type": "string"}, "time_end": {"type": "string"}},
                },
            ],
            "description": "min_amount must not exceed max_amount; time_start and time_end (HH:MM, business time, "
            "start inclusive, end exclusive, may wrap past midnight) go together.",
        },
    )

    rank: int = Field(default=0, ge=-1_000_000, le=1_000_000)
    pay_methods: list[PayMethod] = Field(min_length=1)
    app_id: SafeText | None = Field(default=None, max_length=32)
    min_amount: int | None = Field(default=None, ge=0, le=MAX_FEN)
    max_amount: int | None = Field(default=None, ge=0, le=MAX_FEN)
    candidates: list[Candidate] = Field(min_length=1, max_length=50)
    time_start: str | None = Field(default=None, pattern=HHMM)
    time_end: str | None = Field(default=None, pattern=HHMM)

    @model_validator(mode="after")
    def _bounds(self) -> RoutingRuleCreate:
        if self.min_amount is not None and self.max_amount is not None and self.min_amount > self.max_amount:
            raise ValueError("min_amount must not exceed max_amount")
        if (self.time_start is None) != (self.time_end is None):
            raise ValueError("time_start and time_end go together")
        return self


class RoutingRuleView(RoutingRuleCreate):
    id: str
    created_at: UtcDateTime


class AccountHealth(BaseModel):
    """Breaker state (shared across processes) and this process's last-5-minute call statistics."""

    channel_account_id: str
    channel: str
    status: str
    breaker: str
    fail_counter: int
    opened_at: UtcDateTime | None
    calls: int
    success_rate: float | None
    p50_ms: float | None
    p99_ms: float | None
