"""The channel context's secrets at rest, re-encrypted under the active key (`tomato secrets re-encrypt`): each
channel account's whole config JSON and each service-provider identity's token, with the associated data they were
sealed with (`service.py`, `identities.py`)."""

from __future__ import annotations

from tomato.channel.models import ChannelAccount, ChannelIdentity
from tomato.core.crypto import SecretBox
from tomato.core.db import Database
from tomato.core.reencrypt import DEFAULT_BATCH, ReencryptCount, reencrypt_column


async def reencrypt_secrets(db: Database, box: SecretBox, *, batch: int = DEFAULT_BATCH) -> list[ReencryptCount]:
    return [
        await reencrypt_column(
            db,
            box,
            key=ChannelAccount.id,
            column=ChannelAccount.config_ciphertext,
            context=lambda k: f"channel-account:{k}",
            batch=batch,
        ),
        await reencrypt_column(
            db,
            box,
            key=ChannelIdentity.id,
            column=ChannelIdentity.secret_ciphertext,
            context=lambda k: f"channel-identity:{k}",
            batch=batch,
        ),
    ]
