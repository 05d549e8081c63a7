"""Signing what the platform sends a merchant: API responses and webhooks share one scheme.

`TIMESTAMP\\nNONCE\\nBODY\\n`, HMAC-SHA256 with the app secret, or RSA-SHA256 with the platform key for RSA apps.
A response is signed with the key that signed its request; a webhook answers no request, so during a key rotation
it carries one signature per active secret (newest first) and a merchant verifies with whichever key it deployed.
"""

from __future__ import annotations

from tomato.core.crypto import hmac_sha256_b64, rsa_sign_b64
from tomato.merchant.schemas import AppAuth
from tomato.merchant.service import PlatformSigner


def outbound_message(timestamp: str, nonce: str, body: bytes) -> bytes:
    return timestamp.encode() + b"\n" + nonce.encode() + b"\n" + body + b"\n"


def sign_outbound(
    app: AppAuth, platform: PlatformSigner | None, timestamp: str, nonce: str, body: bytes, key_index: int = 0
) -> str:
    """The `Tomato-Signature` value; HMAC apps use the key that signed the request (rotation-safe)."""
    message = outbound_message(timestamp, nonce, body)
    if app.sign_type == "HMAC-SHA256":
        secret = app.hmac_secrets[min(key_index, len(app.hmac_secrets) - 1)]
        return f"HMAC-SHA256 {hmac_sha256_b64(secret, message)}"
    if platform is None:
        raise ValueError("RSA apps need the platform key")
    return f"RSA-SHA256 {rsa_sign_b64(platform.private_key, message)}"


def sign_webhook(app: AppAuth, platform: PlatformSigner | None, timestamp: str, nonce: str, body: bytes) -> str:
    """The webhook `Tomato-Signature`: `HMAC-SHA256 <b64>` per active secret, newest first, joined by `,` with no
    spaces; RSA apps get the platform key's single signature."""
    if app.sign_type != "HMAC-SHA256" or len(app.hmac_secrets) <= 1:
        return sign_outbound(app, platform, timestamp, nonce, body)
    message = outbound_message(timestamp, nonce, body)
    return ",".join(f"HMAC-SHA256 {hmac_sha256_b64(secret, message)}" for secret in app.hmac_secrets)
