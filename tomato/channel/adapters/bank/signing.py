"""UnionPay ACP 5.1.0 signatures, signMethod `01` (docs/channels.md3), byte for byte.

1. Signing drops blank values and trims the rest (`SDKUtil.filterBlank`), sets `certId` to the signer's decimal
   certificate serial, and never includes `signature`.
2. Content: keys sorted, `k=v` joined by `&`, raw values (no URL-encoding).
3. `h` = lowercase hex SHA-256 of the UTF-8 content: 64 ASCII characters.
4. `signature` = base64(SHA256withRSA(h)): the hex digest is hashed *again* inside the RSA signature — signing the
   content directly is the classic mistake, and does not verify.
Verification rebuilds the content from every received field except `signature` (`SDKUtil.coverMap2String`,
no blank filtering) and checks it against the configured bank public key (we pin the key instead of checking the
`signPubKeyCert` chain of §C3.5). The RSA verify in `cryptography` does the same work whatever the signature holds.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Mapping

from cryptography.hazmat.primitives.asymmetric import padding, rsa

from tomato.core.crypto import rsa_sign_b64, rsa_verify_b64

SIGNATURE = "signature"
CERT_ID = "certId"


def sign_content(fields: Mapping[str, str]) -> str:
    """Every field but `signature`, sorted by key, `k=v` joined by `&`, raw values."""
    return "&".join(f"{k}={v}" for k, v in sorted(fields.items()) if k != SIGNATURE)


def sign_digest(fields: Mapping[str, str]) -> str:
    """The 64-character lowercase hex SHA-256 of `sign_content`: the bytes the RSA step signs."""
    return hashlib.sha256(sign_content(fields).encode("utf-8")).hexdigest()


def prepare(fields: Mapping[str, str], cert_id: str) -> dict[str, str]:
    """`filterBlank` + trim, `certId` set, `signature` dropped: exactly the fields that get signed and sent."""
    prepared = {k: v.strip() for k, v in fields.items() if k != SIGNATURE and v.strip()}
    prepared[CERT_ID] = cert_id
    return prepared


def sign_fields(fields: Mapping[str, str], private_key: rsa.RSAPrivateKey, cert_id: str) -> dict[str, str]:
    """A signed copy of `fields`, ready to post (requests) or to send (responses, notifies)."""
    prepared = prepare(fields, cert_id)
    prepared[SIGNATURE] = rsa_sign_b64(private_key, sign_digest(prepared).encode("ascii"))
    return prepared


def encrypt_data(public_key: rsa.RSAPublicKey, value: str) -> str:
    """ACP `encryptData` (sensitive fields such as a payout's `accNo`): base64(RSA PKCS#1 v1.5 of the UTF-8
    bytes) under the bank's encryption key, named by `encryptCertId`."""
    return base64.b64encode(public_key.encrypt(value.encode("utf-8"), padding.PKCS1v15())).decode("ascii")


def decrypt_data(private_key: rsa.RSAPrivateKey, value: str) -> str:
    """The bank's side of `encrypt_data`; ValueError when the value does not decrypt."""
    try:
        return private_key.decrypt(base64.b64decode(value, validate=True), padding.PKCS1v15()).decode("utf-8")
    except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"does not decrypt: {type(exc).__name__}") from None


def verify_fields(fields: Mapping[str, str], public_key: rsa.RSAPublicKey) -> bool:
    """True when `signature` covers every other field as received; False when absent or wrong."""
    signature = fields.get(SIGNATURE, "")
    if not signature:
        return False
    return rsa_verify_b64(public_key, sign_digest(fields).encode("ascii"), signature)
