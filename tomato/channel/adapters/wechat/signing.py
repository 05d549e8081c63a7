"""WeChat Pay API v3 signatures and notify encryption, byte for byte (docs/channels.md2, §B3, §B5, §B7).

- Requests (merchant → WeChat): `METHOD\\nURL\\nTIMESTAMP\\nNONCE\\nBODY\\n`, URL = path plus `?query` exactly as sent,
  BODY = the exact bytes sent (empty for GET); carried in `Authorization: WECHATPAY2-SHA256-RSA2048 k="v",…`.
- Responses and notifies (WeChat → merchant): `TIMESTAMP\\nNONCE\\nBODY\\n` over the raw body (empty line for 204).
- JSAPI client `paySign`: `appId\\ntimeStamp\\nnonceStr\\npackage\\n`.
- Notify resources: AEAD_AES_256_GCM, key = the 32-byte APIv3 key, nonce and associated data as UTF-8.
- Sensitive request fields (a profit-sharing receiver's `name`): RSA-OAEP (SHA-1, MGF1 SHA-1) with the platform
  public key the request's `Wechatpay-Serial` names, base64 — as WeChat's docs and SDKs encrypt them.
Every message is built as bytes, so no re-encoding can slip between what was sent and what is signed.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import re
import secrets
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from tomato.channel.adapters.wechat import codec
from tomato.core.crypto import load_private_key, load_public_key, rsa_sign_b64, rsa_verify_b64

SCHEMA = "WECHATPAY2-SHA256-RSA2048"
SIGNATURE_TYPE = SCHEMA  # the value of `Wechatpay-Signature-Type`
AEAD_ALGORITHM = "AEAD_AES_256_GCM"
TIMESTAMP_WINDOW_S = 300  # WeChat's SDKs refuse |now − timestamp| ≥ 5 minutes, both ways
AUTH_FIELDS = ("mchid", "nonce_str", "timestamp", "serial_no", "signature")
_AUTH_ITEM = re.compile(r'\s*([a-z_]+)="([^"]*)"\s*')
_NONCE_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


class DecryptError(ValueError):
    """A notify resource that does not decrypt with this APIv3 key (wrong key, nonce, AD or a forged tag)."""


def nonce_str() -> str:
    """32 uppercase hex characters, as the SDKs send."""
    return secrets.token_hex(16).upper()


def resource_nonce() -> str:
    """The 12-character GCM nonce string WeChat puts in notify resources."""
    return "".join(secrets.choice(_NONCE_ALPHABET) for _ in range(12))


# --- keys (parsing validates RSA keys, which is slow: accounts are rebuilt often, their keys rarely change) ---


@lru_cache(maxsize=128)
def private_key(text: str) -> rsa.RSAPrivateKey:
    return load_private_key(text)


@lru_cache(maxsize=128)
def public_key(text: str) -> rsa.RSAPublicKey:
    return load_public_key(text)


@lru_cache(maxsize=32)
def certificate(pem: str) -> tuple[str, rsa.RSAPublicKey]:
    """(serial as uppercase hex, RSA public key) of a platform certificate (the older platform-certificate mode)."""
    try:
        cert = x509.load_pem_x509_certificate(pem.encode())
    except (ValueError, TypeError) as exc:
        raise ValueError("not a PEM X.509 certificate") from exc
    key = cert.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        raise ValueError("the certificate's key is not RSA")
    return format(cert.serial_number, "X"), key


# --- requests -------------------------------------------------------------------------------------------


def request_message(method: str, url: str, timestamp: str, nonce: str, body: bytes) -> bytes:
    """The five-line request message; `url` is the absolute path plus `?query` as on the wire."""
    return f"{method.upper()}\n{url}\n{timestamp}\n{nonce}\n".encode() + body + b"\n"


def authorization(
    *,
    mchid: str,
    serial_no: str,
    private_key: rsa.RSAPrivateKey,
    method: str,
    url: str,
    body: bytes,
    timestamp: str,
    nonce: str,
) -> str:
    """The `Authorization` header value for one request."""
    signature = rsa_sign_b64(private_key, request_message(method, url, timestamp, nonce, body))
    return (
        f'{SCHEMA} mchid="{mchid}",nonce_str="{nonce}",timestamp="{timestamp}",'
        f'serial_no="{serial_no}",signature="{signature}"'
    )


def parse_authorization(header: str) -> dict[str, str]:
    """The five `key="value"` items of an Authorization header, in any order; ValueError when malformed."""
    schema, _, rest = header.strip().partition(" ")
    if schema != SCHEMA:
        raise ValueError(f"authorization schema is not {SCHEMA}")
    items: dict[str, str] = {}
    for part in rest.split(","):
        match = _AUTH_ITEM.fullmatch(part)
        if match is None:
            raise ValueError('authorization items are key="value" pairs')
        key, value = match.groups()
        if key in items:
            raise ValueError(f"authorization item {key} repeated")
        items[key] = value
    missing = [name for name in AUTH_FIELDS if not items.get(name)]
    if missing:
        raise ValueError(f"authorization lacks {', '.join(missing)}")
    return items


def verify_request(public_key: rsa.RSAPublicKey, items: Mapping[str, str], method: str, url: str, body: bytes) -> bool:
    message = request_message(method, url, items["timestamp"], items["nonce_str"], body)
    return rsa_verify_b64(public_key, message, items["signature"])


# --- responses and notifies -----------------------------------------------------------------------------


def response_message(timestamp: str, nonce: str, body: bytes) -> bytes:
    return f"{timestamp}\n{nonce}\n".encode() + body + b"\n"


def sign_response(private_key: rsa.RSAPrivateKey, timestamp: str, nonce: str, body: bytes) -> str:
    return rsa_sign_b64(private_key, response_message(timestamp, nonce, body))


def verify_response(public_key: rsa.RSAPublicKey, timestamp: str, nonce: str, body: bytes, signature: str) -> bool:
    return bool(signature) and rsa_verify_b64(public_key, response_message(timestamp, nonce, body), signature)


def signed_headers(
    private_key: rsa.RSAPrivateKey, serial: str, body: bytes, timestamp: int, *, request_id: str | None = None
) -> dict[str, str]:
    """The `Wechatpay-*` headers WeChat puts on every response and notify (the simulator's side of §B3)."""
    nonce = nonce_str()
    ts = str(timestamp)
    return {
        "Wechatpay-Nonce": nonce,
        "Wechatpay-Signature": sign_response(private_key, ts, nonce, body),
        "Wechatpay-Timestamp": ts,
        "Wechatpay-Serial": serial,
        "Wechatpay-Signature-Type": SIGNATURE_TYPE,
        "Request-ID": request_id or secrets.token_hex(16).upper(),
    }


def timestamp_fresh(timestamp: str, now: float, window_s: int = TIMESTAMP_WINDOW_S) -> bool:
    """Unix seconds within ±window of `now`; anything else (garbage included) is stale."""
    if not timestamp.isascii() or not timestamp.isdigit() or len(timestamp) > 12:
        return False
    return abs(int(timestamp) - now) < window_s


def serial_matches(presented: str, configured: str) -> bool:
    """`PUB_KEY_ID_…` ids compare exactly; certificate serials as hex numbers (case and leading zeros ignored)."""
    if configured.startswith("PUB_KEY_ID_") or presented.startswith("PUB_KEY_ID_"):
        return hmac.compare_digest(presented.encode(), configured.encode())
    try:
        return int(presented, 16) == int(configured, 16)
    except ValueError:
        return False


# --- JSAPI ----------------------------------------------------------------------------------------------


def jsapi_pay_sign(private_key: rsa.RSAPrivateKey, app_id: str, timestamp: str, nonce: str, package: str) -> str:
    """The client-side `paySign` of §B5 (signType `RSA`)."""
    return rsa_sign_b64(private_key, f"{app_id}\n{timestamp}\n{nonce}\n{package}\n".encode())


# --- notify resources -----------------------------------------------------------------------------------


def _aead(api_v3_key: str) -> AESGCM:
    key = api_v3_key.encode()
    if len(key) != 32:
        raise ValueError("the APIv3 key must be 32 bytes")
    return AESGCM(key)


def encrypt_resource(api_v3_key: str, nonce: str, associated_data: str, plaintext: bytes) -> str:
    """base64(ciphertext ‖ 16-byte tag)."""
    sealed = _aead(api_v3_key).encrypt(nonce.encode(), plaintext, associated_data.encode())
    return base64.b64encode(sealed).decode()


def decrypt_resource(api_v3_key: str, nonce: str, associated_data: str, ciphertext_b64: str) -> bytes:
    try:
        sealed = base64.b64decode(ciphertext_b64, validate=True)
        return _aead(api_v3_key).decrypt(nonce.encode(), sealed, associated_data.encode())
    except (InvalidTag, binascii.Error, ValueError) as exc:
        raise DecryptError("notify resource does not decrypt") from exc


def open_notify(api_v3_key: str, body: bytes) -> tuple[dict[str, Any], dict[str, Any]]:
    """(envelope, decrypted resource) of a notify body whose signature was already checked; ValueError otherwise."""
    envelope = codec.loads_object(body)
    resource = envelope.get("resource")
    if envelope.get("resource_type") != "encrypt-resource" or not isinstance(resource, dict):
        raise ValueError("no encrypt-resource")
    if resource.get("algorithm") != AEAD_ALGORITHM:
        raise ValueError(f"resource algorithm is not {AEAD_ALGORITHM}")
    nonce, ciphertext, ad = resource.get("nonce"), resource.get("ciphertext"), resource.get("associated_data") or ""
    if not isinstance(nonce, str) or not isinstance(ciphertext, str) or not isinstance(ad, str):
        raise ValueError("resource lacks nonce or ciphertext")
    return envelope, codec.loads_object(decrypt_resource(api_v3_key, nonce, ad, ciphertext))


def seal_notify(
    api_v3_key: str,
    *,
    notify_id: str,
    create_time: str,
    event_type: str,
    summary: str,
    original_type: str,
    plaintext: bytes,
) -> bytes:
    """A notify body as WeChat sends it (§B7): the resource encrypted, AD = `original_type` (the simulator's side)."""
    nonce = resource_nonce()
    return codec.dumps(
        {
            "id": notify_id,
            "create_time": create_time,
            "resource_type": "encrypt-resource",
            "event_type": event_type,
            "summary": summary,
            "resource": {
                "original_type": original_type,
                "algorithm": AEAD_ALGORITHM,
                "ciphertext": encrypt_resource(api_v3_key, nonce, original_type, plaintext),
                "associated_data": original_type,
                "nonce": nonce,
            },
        }
    )


# --- sensitive fields ----------------------------------------------------------------------------------------


def _oaep() -> padding.OAEP:
    return padding.OAEP(mgf=padding.MGF1(algorithm=hashes.SHA1()), algorithm=hashes.SHA1(), label=None)


def encrypt_sensitive(public_key: rsa.RSAPublicKey, text: str) -> str:
    """A sensitive field for WeChat: only the platform's private key can read it (random padding: never equal twice)."""
    return base64.b64encode(public_key.encrypt(text.encode(), _oaep())).decode("ascii")


def decrypt_sensitive(private_key: rsa.RSAPrivateKey, ciphertext_b64: str) -> str:
    """The simulator's side of `encrypt_sensitive`; ValueError when it does not decrypt with this key."""
    try:
        return private_key.decrypt(base64.b64decode(ciphertext_b64, validate=True), _oaep()).decode()
    except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
        raise ValueError("sensitive field does not decrypt") from exc
