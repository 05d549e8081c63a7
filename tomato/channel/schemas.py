"""Commands into and read models out of the channel context."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, field_validator, model_validator

from tomato.core.clock import UtcDateTime
from tomato.core.money import MAX_FEN
from tomato.core.pay_methods import PayMethod
from tomato.core.text import SafeText

ChannelName = Literal["alipay", "wechat", "bank"]
AccountMode = Literal["direct", "isv", "partner"]
# the modes each channel has: a service provider acts for sub-merchants (Alipay ISV, WeChat Pay partner)
MODES_OF: dict[str, tuple[str, ...]] = {
    "alipay": ("direct", "isv"),
    "wechat": ("direct", "partner"),
    "bank": ("direct",),
}
SERVICE_PROVIDER_MODES = frozenset({"isv", "partner"})
HHMM = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"


# --- the documented shape of each channel's `config` (OpenAPI only: the adapters' parse_config validate it, and
# check more than a schema can, such as that a PEM holds an RSA key). Extra keys are ignored by the adapters.
_TEXT = r"\S"  # the adapters strip the value and refuse a blank one
_URL = r"^https?://[^/?#\s]+"  # an absolute http(s) URL


class AlipayAccountConfig(BaseModel):
    model_config = ConfigDict(title="AlipayAccountConfig")

    app_id: str = Field(pattern=_TEXT, description="the Alipay app id the account signs as")
    private_key_pem: str = Field(pattern=_TEXT, description="the merchant's RSA private key (PEM or bare base64)")
    alipay_public_key_pem: str = Field(
        pattern=_TEXT, description="Alipay's RSA public key, to verify its answers and notifies (PEM or bare base64)"
    )
    gateway_url: str = Field(pattern=_URL, description="Alipay's gateway, e.g. https://openapi.alipay.com/gateway.do")
    mode: Literal["direct", "isv"] = Field(
        default="direct", description="`isv`: the app is a service provider's, acting for authorized sub-merchants"
    )


class WechatAccountConfig(BaseModel):
    model_config = ConfigDict(title="WechatAccountConfig")

    mchid: str = Field(pattern=r"^[0-9]{1,32}$", description="the WeChat Pay merchant id (digits)")
    appid: str = Field(pattern=_TEXT, description="the WeChat appid payments are made under")
    serial_no: str = Field(pattern=r"^[0-9A-Fa-f]{1,64}$", description="the merchant API certificate serial")
    private_key_pem: str = Field(
        pattern=_TEXT, description="the merchant API private key (RSA, PEM) that signs requests"
    )
    api_v3_key: str = Field(pattern=r"^[ -~]{32}$", description="exactly 32 printable ASCII characters")
    platform_public_key_pem: str = Field(
        pattern=_TEXT, description="WeChat Pay's platform public key, to verify its answers and notifies"
    )
    platform_public_key_id: str = Field(
        pattern=r"^(PUB_KEY_ID_[0-9A-Za-z]{1,64}|[0-9A-Fa-f]{1,64})$",
        description="id of that platform key (`PUB_KEY_ID_…`) or the serial of the platform certificate",
    )
    base_url: str = Field(pattern=r"^https?://[^/?#\s]+/?$", description="an origin: requests go to base_url + /v3/…")
    platform_certificate_pem: str | None = Field(
        default=None,
        description="the platform certificate, for accounts still on certificates; null: the public key is used",
    )
    api_v2_key: str | None = Field(
        default=None,
        pattern=r"^[ -~]{32}$",
        description="the API v2 key (32 printable ASCII) that signs payment-code pay (BARCODE); null: no BARCODE",
    )


class WechatPartnerAccountConfig(BaseModel):
    model_config = ConfigDict(title="WechatPartnerAccountConfig")

    mode: Literal["partner"] = Field(description="a service provider (服务商) paying for its sub-merchants")
    sp_mchid: str = Field(pattern=r"^[0-9]{1,32}$", description="the service provider's merchant id (digits)")
    sp_appid: str = Field(pattern=_TEXT, description="the service provider's appid")
    serial_no: str = Field(pattern=r"^[0-9A-Fa-f]{1,64}$", description="the provider's API certificate serial")
    private_key_pem: str = Field(pattern=_TEXT, description="the provider's API private key (RSA, PEM)")
    api_v3_key: str = Field(pattern=r"^[ -~]{32}$", description="exactly 32 printable ASCII characters")
    platform_public_key_pem: str = Field(pattern=_TEXT, description="WeChat Pay's platform public key")
    platform_public_key_id: str = Field(
        pattern=r"^(PUB_KEY_ID_[0-9A-Za-z]{1,64}|[0-9A-Fa-f]{1,64})$",
        description="id of that platform key (`PUB_KEY_ID_…`) or the serial of the platform certificate",
    )
    base_url: str = Field(pattern=r"^https?://[^/?#\s]+/?$", description="an origin: requests go to base_url + /v3/…")


class BankAccountConfig(BaseModel):
    model_config = ConfigDict(title="BankAccountConfig")

    mer_id: str = Field(pattern=r"^[A-Za-z0-9]{15}$", description="the bank merchant id (15 characters)")
    cert_id: str = Field(pattern=r"^[0-9]{1,40}$", description="decimal serial of the merchant signing certificate")
    private_key_pem: str = Field(pattern=_TEXT, description="the merchant signing key (RSA, PEM)")
    bank_public_key_pem: str = Field(
        pattern=_TEXT, description="the bank's public key, to verify its answers and notifies"
    )
    front_url: str = Field(
        pattern=_URL, description="the bank's front-transaction endpoint (the payer's browser posts the pay form to it)"
    )
    back_url: str = Field(
        pattern=_URL, description="the bank's back-transaction endpoint (server to server: refunds, payouts)"
    )
    query_url: str = Field(pattern=_URL, description="the bank's single-transaction query endpoint")
    file_url: str | None = Field(
        default=None,
        pattern=_URL,
        description="where daily statements are downloaded; null: derived from the front URL's host",
    )
    app_url: str | None = Field(
        default=None,
        pattern=_URL,
        description="the bank's app-transaction endpoint; null: derived from the front URL's host",
    )


CONFIG_OF: dict[str, type[BaseModel]] = {
    "alipay": AlipayAccountConfig,
    "wechat": WechatAccountConfig,
    "bank": BankAccountConfig,
}


def _config_union(schema: dict[str, Any]) -> None:
    """`ChannelAccountCreate` in the document: a union discriminated by `channel`, each with its own `config`."""
    variants = []
    for channel, model in CONFIG_OF.items():
        config = model.model_json_schema()
        if channel == "wechat":  # direct, or a service provider's (partner) keys
            config = {"oneOf": [config, WechatPartnerAccountConfig.model_json_schema()]}
        variants.append(
            {"title": f"{channel} account", "properties": {"channel": {"const": channel}, "config": config}}
        )
    schema["oneOf"] = variants
    schema["discriminator"] = {"propertyName": "channel"}


class ChannelAccountCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra=_config_union)

    channel: ChannelName = Field(description="which channel the account is at: `alipay`, `wechat` or `bank`")
    name: SafeText = Field(min_length=1, max_length=128, description="a label for operators")
    config: dict[str, Any] = Field(
        description="the account's credentials and endpoints; their keys depend on `channel` (stored encrypted, never "
        "returned)"
    )
    mch_no: SafeText | None = Field(
        default=None, max_length=32, description="reserve the account for this merchant; null: shared by every merchant"
    )
    daily_limit: int | None = Field(
        default=None, ge=1, le=MAX_FEN, description="most fen the account may collect per business day; null: no limit"
    )
    cost_ppm: StrictInt = Field(
        default=0,
        ge=0,
        le=1_000_000,
        description="what the channel charges the platform, in parts per million of the amount",
    )  # the channel's own fee, parts per million
    mode: AccountMode | None = Field(
        default=None,
        description="`direct` (default), or a service provider acting for sub-merchants: `isv` (alipay), `partner` "
        "(wechat); may also be given as `config.mode`",
    )


class ChannelAccountUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: SafeText | None = Field(
        default=None, min_length=1, max_length=128, description="new label; omitted: unchanged"
    )  # omitted: unchanged; null: refused
    daily_limit: int | None = Field(
        default=None, ge=1, le=MAX_FEN, description="new daily limit in fen; null removes the limit, omitted: unchanged"
    )  # null: no limit
    cost_ppm: StrictInt | None = Field(
        default=None, ge=0, le=1_000_000, description="new channel cost in parts per million; omitted: unchanged"
    )  # omitted: unchanged; null: refused

    @field_validator("name", "cost_ppm")
    @classmethod
    def _not_null(cls, value: object) -> object:
        """Runs only when the field is given: an account always has a name and a cost rate, so a null is a 422."""
        if value is None:
            raise ValueError("must not be null; omit it to keep the current value")
        return value


class ChannelAccountView(BaseModel):
    """Never carries the config: secrets are write-only."""

    id: str = Field(description="the channel account's id")
    channel: str = Field(description="`alipay`, `wechat` or `bank`")
    name: str = Field(description="the operators' label")
    status: str = Field(description="`ACTIVE` (routed to) or `DISABLED`")
    mch_no: str | None = Field(default=None, description="the merchant the account is reserved for; null: shared")
    daily_limit: int | None = Field(
        default=None, description="most fen the account may collect per business day; null: no limit"
    )
    cost_ppm: int = Field(default=0, description="what the channel charges the platform, in parts per million")
    mode: str = Field(
        default="direct", description="`direct`, or a service provider's: `isv` (alipay), `partner` (wechat)"
    )
    created_at: UtcDateTime = Field(description="when the account was added (RFC 3339 UTC)")


class Candidate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    channel_account_id: SafeText = Field(
        min_length=1, max_length=32, description="a channel account the rule may route to"
    )
    priority: int = Field(
        default=1, ge=0, le=1000, description="lower is tried first; candidates of equal priority share by weight"
    )
    weight: int = Field(
        default=100, ge=1, le=1_000_000, description="share of orders among candidates of the same priority"
    )


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

    rank: int = Field(
        default=0,
        ge=-1_000_000,
        le=1_000_000,
        description="rules are matched in ascending rank; the first that matches routes the order",
    )
    pay_methods: list[PayMethod] = Field(min_length=1, description="the pay methods the rule applies to")
    app_id: SafeText | None = Field(default=None, max_length=32, description="only orders of this app; null: every app")
    min_amount: int | None = Field(
        default=None, ge=0, le=MAX_FEN, description="only orders of at least this many fen; null: no lower bound"
    )
    max_amount: int | None = Field(
        default=None, ge=0, le=MAX_FEN, description="only orders of at most this many fen; null: no upper bound"
    )
    candidates: list[Candidate] = Field(
        min_length=1, max_length=50, description="the channel accounts to route to, with priority and weight"
    )
    time_start: str | None = Field(
        default=None,
        pattern=HHMM,
        description="only orders created from this business time on (HH:MM, inclusive); with `time_end`",
    )
    time_end: str | None = Field(
        default=None,
        pattern=HHMM,
        description="only orders created before this business time (HH:MM, exclusive; may wrap past midnight)",
    )

    @model_validator(mode="after")
    def _bounds(self) -> RoutingRuleCreate:
        if self.min_amount is not None and self.max_amount is not None and self.min_amount > self.max_amount:
            raise ValueError("min_amount must not exceed max_amount")
        if (self.time_start is None) != (self.time_end is None):
            raise ValueError("time_start and time_end go together")
        return self


class RoutingRuleView(RoutingRuleCreate):
    id: str = Field(description="the rule's id")
    created_at: UtcDateTime = Field(description="when the rule was created (RFC 3339 UTC)")


class AccountHealth(BaseModel):
    """Breaker state (shared across processes) and this process's last-5-minute call statistics."""

    channel_account_id: str = Field(description="the channel account")
    channel: str = Field(description="`alipay`, `wechat` or `bank`")
    status: str = Field(description="`ACTIVE` or `DISABLED`")
    breaker: str = Field(
        description="circuit breaker state shared by every process: `closed`, or `open` (one probe call is let "
        "through after the reset timeout)"
    )
    fail_counter: int = Field(description="consecutive failed calls counted by the breaker")
    opened_at: UtcDateTime | None = Field(
        description="when the breaker last opened (RFC 3339 UTC); null if it is closed"
    )
    calls: int = Field(description="channel calls this process made in the last 5 minutes")
    success_rate: float | None = Field(description="share of those calls that succeeded, 0-1; null without calls")
    p50_ms: float | None = Field(description="median latency of those calls in milliseconds; null without calls")
    p99_ms: float | None = Field(
        description="99th-percentile latency of those calls in milliseconds; null without calls"
    )


class ChannelIdentityCreate(BaseModel):
    """A merchant's identity under a service-provider account; which fields fit depends on the account's mode."""

    model_config = ConfigDict(extra="forbid")

    channel_account_id: SafeText = Field(min_length=1, max_length=32, description="the service-provider account")
    app_auth_token: str | None = Field(
        default=None,
        min_length=1,
        max_length=128,
        pattern=r"^[0-9A-Za-z._-]+$",
        description="alipay isv: the token the sub-merchant's authorization gave (stored encrypted, never returned)",
    )
    auth_app_id: str | None = Field(
        default=None, pattern=r"^[0-9]{1,32}$", description="alipay isv: the authorizing sub-merchant's app id"
    )
    sub_mchid: str | None = Field(
        default=None, pattern=r"^[0-9]{1,32}$", description="wechat partner: the sub-merchant's merchant id"
    )
    sub_appid: str | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        pattern=r"^[0-9A-Za-z_-]+$",
        description="wechat partner: the sub-merchant's own appid (optional)",
    )

    def __repr__(self) -> str:  # never print the token
        return f"ChannelIdentityCreate(channel_account_id={self.channel_account_id!r}, sub_mchid={self.sub_mchid!r})"


class ChannelIdentityView(BaseModel):
    """Never carries the token."""

    id: str = Field(description="the identity's id (`CI…`)")
    channel_account_id: str = Field(description="the service-provider account")
    mch_no: str = Field(description="the merchant")
    status: str = Field(description="`ACTIVE` (orders may route to the account) or `DISABLED`")
    auth_app_id: str | None = Field(default=None, description="alipay isv: the sub-merchant's app id")
    sub_mchid: str | None = Field(default=None, description="wechat partner: the sub-merchant's merchant id")
    sub_appid: str | None = Field(default=None, description="wechat partner: the sub-merchant's appid")
    created_at: UtcDateTime = Field(description="when it was attached (RFC 3339 UTC)")
