"""The merchant context's secrets at rest, re-encrypted under the active key (`tomato secrets re-encrypt`):
HMAC app secrets, the platform's RSA private key and portal users' TOTP secrets, with the associated data their
services seal them with."""

from __future__ import annotations

from tomato.core.crypto import SecretBox
from tomato.core.db import Database
from tomato.core.reencrypt import DEFAULT_BATCH, ReencryptCount, reencrypt_column
from tomato.merchant.models import AppKey, PlatformKey
from tomato.merchant.portal_users import TOTP_CONTEXT
from tomato.merchant.user_models import MerchantUser


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
        await reencrypt_column(
            db,
            box,
            key=MerchantUser.user_id,
            column=MerchantUser.totp_secret_ciphertext,
            context=lambda _: TOTP_CONTEXT,
            batch=batch,
        ),
    ]
