"""A bank channel account's config (the documented keys, plus optional `file_url` and `app_url`), validated.

`app_url` is where create pre-orders the trade server to server (ACP `appTransReq.do`, see `adapter.py`). It is
optional so that accounts configured with the documented keys alone keep working: without it the URL is derived as
the origin of `front_url` + `APP_PATH`, the layout of our simulator. An account at a real UnionPay host (whose
paths start `/gateway/api/…`) must set `app_url` explicitly.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.asymmetric import rsa

from tomato.core.crypto import load_private_key, load_public_key

APP_PATH = "/bank/gateway/api/appTransReq.do"  # appended to front_url's origin when `app_url` is not given
_URLS = ("front_url", "back_url", "query_url")
_OPTIONAL_URLS = ("file_url", "app_url")
_REQUIRED = ("mer_id", "cert_id", "private_key_pem", "bank_public_key_pem", *_URLS)


@dataclass(frozen=True)
class BankConfig:
    mer_id: str  # 15 characters (§C2)
    cert_id: str  # decimal serial of the merchant signing certificate
    private_key_pem: str  # PKCS#1/PKCS#8 PEM or bare base64
    bank_public_key_pem: str
    front_url: str  # frontTransReq.do: the payer's browser posts the form here
    back_url: str  # backTransReq.do: refunds
    query_url: str  # queryTrans.do
    file_url: str | None = None  # file-transfer host (optional: statements need it)
    app_url: str | None = None  # appTransReq.do, the pre-order at create (optional: derived from front_url)
    # the bank's encryption certificate serial: when set, a payout's accNo is sent encrypted (ACP `encryptData`)
    # under `bank_public_key_pem` with this `encryptCertId`; when not, in the clear (the older ACP form)
    encrypt_cert_id: str | None = None

    @property
    def pre_order_url(self) -> str:
        """`app_url`, or front_url's origin + `APP_PATH`."""
        if self.app_url:
            return self.app_url
        parts = urlsplit(self.front_url)
        return f"{parts.scheme}://{parts.netloc}{APP_PATH}"

    def __repr__(self) -> str:  # never print the private key
        return f"BankConfig(mer_id={self.mer_id!r}, cert_id={self.cert_id!r}, front_url={self.front_url!r})"


def parse_config(raw: Mapping[str, Any]) -> BankConfig:
    """Validate a channel-account config dict; the ValueError names the first bad field."""
    values: dict[str, str] = {}
    for name in _REQUIRED:
        value = raw.get(name)
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"{name}: required non-empty string")
        values[name] = value.strip()
    if len(values["mer_id"]) != 15 or not values["mer_id"].isalnum() or not values["mer_id"].isascii():
        raise ValueError("mer_id: must be 15 letters or digits")
    if not values["cert_id"].isdigit() or not values["cert_id"].isascii() or len(values["cert_id"]) > 40:
        raise ValueError("cert_id: must be the decimal certificate serial number")
    for name, load in (("private_key_pem", private_key), ("bank_public_key_pem", public_key)):
        try:
            load(values[name])
        except ValueError as exc:
            raise ValueError(f"{name}: {exc}") from None
    optional: dict[str, str] = {}
    for name in _OPTIONAL_URLS:
        value = raw.get(name)
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise ValueError(f"{name}: must be a non-empty string when given")
        if value is not None:
            optional[name] = value.strip()
    encrypt_cert_id = raw.get("encrypt_cert_id")
    if encrypt_cert_id is not None and (
        not isinstance(encrypt_cert_id, str) or not re.fullmatch(r"[0-9]{1,40}", encrypt_cert_id)
    ):
        raise ValueError("encrypt_cert_id: must be the decimal certificate serial number")
    for name, url in ({n: values[n] for n in _URLS} | optional).items():
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"{name}: must be an absolute http(s) URL")
    return BankConfig(
        mer_id=values["mer_id"],
        cert_id=values["cert_id"],
        private_key_pem=values["private_key_pem"],
        bank_public_key_pem=values["bank_public_key_pem"],
        front_url=values["front_url"],
        back_url=values["back_url"],
        query_url=values["query_url"],
        file_url=optional.get("file_url"),
        app_url=optional.get("app_url"),
        encrypt_cert_id=encrypt_cert_id,
    )


@lru_cache(maxsize=128)
def private_key(text: str) -> rsa.RSAPrivateKey:
    """Parsing validates the RSA key (slow); accounts are rebuilt often, their keys rarely change."""
    return load_private_key(text)


@lru_cache(maxsize=128)
def public_key(text: str) -> rsa.RSAPublicKey:
    return load_public_key(text)
