"""The merchant context's secrets at rest, re-encrypted under the active key (`tomato secrets re-encrypt`):
HMAC app secrets and the platform's RSA private key, with the associated data `service.py` seals them with."""

from __future__ import annotations

from tomato.core.crypto import SecretBox
from tomato.core.db import Database
from tomato.core.reencrypt import DEFAULT_BATCH, ReencryptCount, reencrypt_column
from tomato.merchant.models import AppKey, PlatformKey


async def reencrypt_secrets(db: Database, box: SecretBox, *, batch: int = DEFAULT_BATCH) -> list[ReencryptCount]:
    return [
        await reencrypt_column(
            db, box, key=AppKey.key_id, column=AppKey.secret_ciphertext, context=lambda k: f"app-key:{k}", batch=batch
        ),
        await reencrypt_column(
            db,
            box,
            key=PlatformKey.key_id,
            column=PlatformKey.private_key_ciphertext,
            context=lambda k: f"platform-key:{k}",
            batch=batch,
        ),
    ]
