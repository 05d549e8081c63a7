"""Secrets at rest (AES-256-GCM with a key ring) and the signature primitives every protocol uses.

Ciphertexts are stored as `v1:<key id>:<base64(nonce ‖ ciphertext ‖ tag)>`, so keys can rotate: the first key
in the ring encrypts, any key in the ring decrypts by its id.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_KID = re.compile(r"^[A-Za-z0-9_-]{1,32}$")


class SecretBoxError(ValueError):
    """Malformed key ring or a ciphertext that does not decrypt."""


class SecretBox:
    def __init__(self, keys: dict[str, bytes], active: str) -> None:
        if active not in keys:
            raise SecretBoxError("active key id not in ring")
        for kid, key in keys.items():
            if not _KID.match(kid) or len(key) != 32:
                raise SecretBoxError(f"key {kid!r}: ids are [A-Za-z0-9_-]{{1,32}}, keys 32 bytes")
        self._keys = {kid: AESGCM(key) for kid, key in keys.items()}
        self.active = active

    @classmethod
    def from_ring(cls, ring: str) -> SecretBox:
        """'kid:base64key,kid2:base64key2' — the first entry encrypts."""
        keys: dict[str, bytes] = {}
        order: list[str] = []
        for part in filter(None, (p.strip() for p in ring.split(","))):
            kid, sep, b64 = part.partition(":")
            if not sep:
                raise SecretBoxError("key ring entries are 'kid:base64key'")
            try:
                keys[kid] = base64.b64decode(b64, validate=True)
            except binascii.Error as exc:
                raise SecretBoxError(f"key {kid!r} is not base64") from exc
            order.append(kid)
        if not order:
            raise SecretBoxError("empty key ring")
        return cls(keys, order[0])

    @staticmethod
    def generate_ring(kid: str = "k1") -> str:
        return f"{kid}:{base64.b64encode(os.urandom(32)).decode()}"

    def encrypt(self, plaintext: str, *, context: str = "") -> str:
        """`context` is bound as associated data, so a ciphertext cannot be moved to another row's column."""
        nonce = os.urandom(12)
        sealed = self._keys[self.active].encrypt(nonce, plaintext.encode(), context.encode())
        return f"v1:{self.active}:{base64.b64encode(nonce + sealed).decode()}"

    def decrypt(self, token: str, *, context: str = "") -> str:
        try:
            version, kid, b64 = token.split(":", 2)
            if version != "v1":
                raise SecretBoxError("unknown ciphertext version")
            raw = base64.b64decode(b64, validate=True)
            return self._keys[kid].decrypt(raw[:12], raw[12:], context.encode()).decode()
        except SecretBoxError:
            raise
        except Exception as exc:
            raise SecretBoxError("ciphertext does not decrypt") from exc

    def reencrypt(self, token: str, *, context: str = "") -> str | None:
        """The token sealed again under the active key, or None when it already is (key rotation, docs/operations.md).
        Raises SecretBoxError when no key of the ring opens it."""
        if token.startswith(f"v1:{self.active}:"):
            return None
        return self.encrypt(self.decrypt(token, context=context), context=context)


# --- signatures -------------------------------------------------------------------------------------


def hmac_sha256_b64(key: bytes, message: bytes) -> str:
    return base64.b64encode(hmac.digest(key, message, "sha256")).decode()  # OpenSSL's one-shot HMAC


def hmac_sha256_verify(key: bytes, message: bytes, signature_b64: str) -> bool:
    """Constant-time comparison of the expected and presented signature."""
    expected = hmac.digest(key, message, "sha256")
    try:
        presented = base64.b64decode(signature_b64, validate=True)
    except (binascii.Error, ValueError):
        return False
    return hmac.compare_digest(expected, presented)


def rsa_sign_b64(private_key: rsa.RSAPrivateKey, message: bytes) -> str:
    """RSA PKCS#1 v1.5 over SHA-256 (Alipay RSA2, WeChat v3, our RSA apps), base64 without line breaks."""
    return base64.b64encode(private_key.sign(message, padding.PKCS1v15(), hashes.SHA256())).decode()


def rsa_verify_b64(public_key: rsa.RSAPublicKey, message: bytes, signature_b64: str) -> bool:
    try:
        signature = base64.b64decode(signature_b64, validate=True)
        public_key.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())
    except (InvalidSignature, binascii.Error, ValueError):
        return False
    return True


def generate_rsa_key(bits: int = 2048) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def private_key_pem(key: rsa.RSAPrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def public_key_pem(key: rsa.RSAPublicKey | rsa.RSAPrivateKey) -> str:
    public = key.public_key() if isinstance(key, rsa.RSAPrivateKey) else key
    return public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def load_private_key(text: str) -> rsa.RSAPrivateKey:
    """PKCS#1 or PKCS#8 PEM, or the bare base64 body the channels' consoles show."""
    data = text.strip()
    candidates = [data.encode()] if "-----BEGIN" in data else [_pem("PRIVATE KEY", data), _pem("RSA PRIVATE KEY", data)]
    for pem in candidates:
        try:
            key = serialization.load_pem_private_key(pem, password=None)
        except (ValueError, TypeError):
            continue
        if isinstance(key, rsa.RSAPrivateKey):
            return key
    raise ValueError("not an RSA private key (PKCS#1 or PKCS#8 PEM, or its base64 body)")


def load_public_key(text: str) -> rsa.RSAPublicKey:
    """SPKI PEM (or PKCS#1 `RSA PUBLIC KEY`), or the bare base64 body."""
    data = text.strip()
    candidates = [data.encode()] if "-----BEGIN" in data else [_pem("PUBLIC KEY", data), _pem("RSA PUBLIC KEY", data)]
    for pem in candidates:
        try:
            key = serialization.load_pem_public_key(pem)
        except (ValueError, TypeError):
            continue
        if isinstance(key, rsa.RSAPublicKey):
            return key
    raise ValueError("not an RSA public key (SPKI PEM or its base64 body)")


def _pem(label: str, body: str) -> bytes:
    compact = "".join(body.split())
    lines = "\n".join(compact[i : i + 64] for i in range(0, len(compact), 64))
    return f"-----BEGIN {label}-----\n{lines}\n-----END {label}-----\n".encode()


def random_token(nbytes: int = 24) -> str:
    return base64.urlsafe_b64encode(os.urandom(nbytes)).decode().rstrip("=")


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
