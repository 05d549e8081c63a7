"""Merchant request authentication (docs/api.md): header syntax, timestamp window, signature, nonce.

Signatures are checked over the raw bytes as sent: `METHOD\\nPATH_AND_QUERY\\nTIMESTAMP\\nNONCE\\nBODY\\n`.
Every comparison is constant-time (hmac.compare_digest / RSA verify).
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass

from tomato.core.cache import NonceStore
from tomato.core.crypto import hmac_sha256_verify, rsa_verify_b64
from tomato.core.errors import AuthError
from tomato.merchant.schemas import AppAuth

NONCE_RE = re.compile(r"[A-Za-z0-9]{16,64}", re.ASCII)
TIMESTAMP_RE = re.compile(r"[0-9]{1,12}", re.ASCII)  # `str.isdigit()` would pass `²`, which `int()` refuses
ALGORITHMS = ("HMAC-SHA256", "RSA-SHA256")


class TimestampExpired(AuthError):
    code = "TIMESTAMP_EXPIRED"


class NonceReused(AuthError):
    code = "NONCE_REUSED"


@dataclass(frozen=True)
class SignatureHeader:
    algorithm: str
    signature_b64: str


@dataclass(frozen=True)
class AuthHeaders:
    """The parsed headers; `timestamp_text` is the header as sent, the bytes the signature covers."""

    timestamp: int
    timestamp_text: str
    nonce: str
    signature: SignatureHeader


def parse_headers(timestamp: str | None, nonce: str | None, signature: str | None) -> AuthHeaders:
    """Rejects a missing or malformed auth header with a message naming it."""
    if not timestamp or TIMESTAMP_RE.fullmatch(timestamp) is None:
        raise AuthError("Tomato-Timestamp: missing or not Unix seconds")
    if not nonce or NONCE_RE.fullmatch(nonce) is None:
        raise AuthError("Tomato-Nonce: missing or not 16-64 characters of [A-Za-z0-9]")
    if not signature:
        raise AuthError("Tomato-Signature: missing")
    algorithm, _, b64 = signature.partition(" ")
    if algorithm not in ALGORITHMS or not b64:
        raise AuthError("Tomato-Signature: expected '<HMAC-SHA256|RSA-SHA256> <base64 signature>'")
    try:
        base64.b64decode(b64, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise AuthError("Tomato-Signature: signature is not base64") from exc
    return AuthHeaders(int(timestamp), timestamp, nonce, SignatureHeader(algorithm, b64))


def signed_message(method: str, path_and_query: str, timestamp: str, nonce: str, body: bytes) -> bytes:
    return (
        b"\n".join([method.encode(), path_and_query.encode("latin-1"), timestamp.encode(), nonce.encode(), body])
        + b"\n"
    )


def verify_signature(app: AppAuth, header: SignatureHeader, message: bytes) -> int:
    """Returns the index of the key that verified (responses are signed with the same one)."""
    if header.algorithm != app.sign_type:
        raise AuthError(f"Tomato-Signature: this app signs with {app.sign_type}")
    if app.sign_type == "HMAC-SHA256":
        matches = [hmac_sha256_verify(secret, message, header.signature_b64) for secret in app.hmac_secrets]
    else:
        matches = [rsa_verify_b64(key, message, header.signature_b64) for key in app.rsa_public_keys]
    if True not in matches:
        raise AuthError("signature does not verify")
    return matches.index(True)


def check_timestamp(timestamp: int, now: float, window_s: int) -> None:
    if abs(now - timestamp) > window_s:
        raise TimestampExpired(f"Tomato-Timestamp is more than {window_s} s away from the server clock")


async def consume_nonce(nonces: NonceStore, app_id: str, nonce: str) -> None:
    if not await nonces.use(app_id, nonce):
        raise NonceReused("Tomato-Nonce was already used")
