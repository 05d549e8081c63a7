"""A WeChat Pay channel account's config (the documented keys, plus an optional platform certificate), validated.

`platform_public_key_id` is normally the `PUB_KEY_ID_…` of the platform public key; an account set up in the older
platform-certificate mode may give that certificate's hex serial instead. During WeChat's migration both kinds
of serial arrive (§B3), so `platform_certificate_pem` may name a certificate that still signs alongside the key.

`mode` is `direct` (the default: the account is the merchant, keys `mchid`, `appid`) or `partner` (a service
provider, 服务商, acting for sub-merchants: keys `sp_mchid`, `sp_appid` in place of `mchid`, `appid`; the sub-merchant
comes with every request). In partner mode `WechatConfig.mchid`/`appid` hold the provider's `sp_mchid`/`sp_appid`:
they sign every request (the Authorization names the provider) and are what notifies must name as `sp_mchid`.

`api_v2_key` (optional, 32 printable ASCII characters, the merchant's API v2 key) signs payment-code pay (付款码),
which WeChat offers in API v2 only; without it, and in partner mode, BARCODE is refused `BARCODE_NOT_SUPPORTED`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.asymmetric import rsa

from tomato.channel.adapters.wechat import signing

_MCHID = re.compile(r"[0-9]{1,32}")
_SERIAL = re.compile(r"[0-9A-Fa-f]{1,64}")
MODES = ("direct", "partner")
_KEY_ID = re.compile(r"PUB_KEY_ID_[0-9A-Za-z]{1,64}|[0-9A-Fa-f]{1,64}")  # public-key id, or a cert serial


@dataclass(frozen=True)
class WechatConfig:
    mchid: str  # partner mode: the provider's sp_mchid
    appid: str  # partner mode: the provider's sp_appid
    serial_no: str  # the merchant API certificate serial, sent in Authorization
    private_key_pem: str  # merchant API key: PKCS#1/PKCS#8 PEM or bare base64
    api_v3_key: str  # 32 ASCII characters: decrypts notifies
    platform_public_key_pem: str
    platform_public_key_id: str  # `PUB_KEY_ID_…`, or the serial of the platform certificate it came from
    base_url: str  # origin only; requests go to base_url + /v3/…
    platform_certificate_pem: str | None = None  # optional: a platform certificate still signing (migration)
    mode: str = "direct"  # "direct" | "partner"
    api_v2_key: str | None = None  # secret: signs the v2 payment-code calls (barcode.py)

    @property
    def partner(self) -> bool:
        return self.mode == "partner"

    def __repr__(self) -> str:  # never print the private key, the APIv3 key or the v2 key
        return (
            f"WechatConfig(mode={self.mode!r}, mchid={self.mchid!r}, appid={self.appid!r}, base_url={self.base_url!r})"
        )


def parse_config(raw: Mapping[str, Any]) -> WechatConfig:
    """Validate a channel-account config dict; the ValueError names the first bad field."""
    mode = raw.get("mode", "direct")
    if mode not in MODES:
        raise ValueError(f"mode: must be one of {', '.join(MODES)}")
    partner = mode == "partner"
    if partner:
        for name in ("mchid", "appid"):
            if name in raw:  # one merchant number per account: never guess which of two is meant
                raise ValueError(f"{name}: not used in partner mode (give sp_{name})")
    values: dict[str, str] = {}
    names = (
        "sp_mchid" if partner else "mchid",
        "sp_appid" if partner else "appid",
        "serial_no",
        "private_key_pem",
        "api_v3_key",
        "platform_public_key_pem",
        "platform_public_key_id",
        "base_url",
    )
    for name in names:
        value = raw.get(name)
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"{name}: required non-empty string")
        values[name] = value if name == "api_v3_key" else value.strip()
    if partner:
        values["mchid"], values["appid"] = values.pop("sp_mchid"), values.pop("sp_appid")
    for name, pattern in (("mchid", _MCHID), ("serial_no", _SERIAL), ("platform_public_key_id", _KEY_ID)):
        shown = f"sp_{name}" if partner and name == "mchid" else name
        if not pattern.fullmatch(values[name]):
            raise ValueError(f"{shown}: malformed")
    key = values["api_v3_key"]
    if len(key) != 32 or not key.isascii() or not key.isprintable():
        raise ValueError("api_v3_key: must be exactly 32 printable ASCII characters")
    for name, loader in (("private_key_pem", signing.private_key), ("platform_public_key_pem", signing.public_key)):
        try:
            loader(values[name])
        except ValueError as exc:
            raise ValueError(f"{name}: {exc}") from None
    url = urlsplit(values["base_url"])
    try:
        url.port  # noqa: B018 - validates the port
    except ValueError:
        raise ValueError("base_url: malformed port") from None
    if url.scheme not in ("http", "https") or not url.hostname:
        raise ValueError("base_url: must be an absolute http(s) URL")
    if url.path not in ("", "/") or url.query or url.fragment or url.username or url.password:
        raise ValueError("base_url: must be an origin without a path (requests go to base_url + /v3/…)")
    values["base_url"] = f"{url.scheme}://{url.netloc}"
    cert = raw.get("platform_certificate_pem") or None
    if cert is not None:
        try:
            signing.certificate(cert.strip() if isinstance(cert, str) else "")
        except ValueError as exc:
            raise ValueError(f"platform_certificate_pem: {exc}") from None
    certificate = cert.strip() if isinstance(cert, str) else None
    v2_key = raw.get("api_v2_key") or None
    if v2_key is not None and (
        not isinstance(v2_key, str) or len(v2_key) != 32 or not v2_key.isascii() or not v2_key.isprintable()
    ):
        raise ValueError("api_v2_key: must be exactly 32 printable ASCII characters")
    return WechatConfig(**values, platform_certificate_pem=certificate, mode=str(mode), api_v2_key=v2_key)


def platform_keys(config: WechatConfig) -> tuple[tuple[str, rsa.RSAPublicKey], ...]:
    """Every (Wechatpay-Serial, key) WeChat may sign with for this account: the public key, then the certificate."""
    keys = [(config.platform_public_key_id, signing.public_key(config.platform_public_key_pem))]
    if config.platform_certificate_pem:
        keys.append(signing.certificate(config.platform_certificate_pem))
    return tuple(keys)
