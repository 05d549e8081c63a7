"""The platform key is created by the first process that needs it: two processes asking at once (two containers on
one database) must end up signing with the same key, not each with its own (a merchant pins one public key)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy import func, select

from tests.conftest import truncate_all
from tests.fixtures.stack import test_settings as settings_for
from tomato.bootstrap import bootstrap
from tomato.core.crypto import SecretBox
from tomato.merchant.models import PlatformKey


async def test_two_processes_creating_the_platform_key_at_once_share_one(db_url: str, tmp_path: Path) -> None:
    ring = SecretBox.generate_ring("race")
    first = await bootstrap(settings_for(db_url, tmp_path / "one", secret_keys=ring))
    second = await bootstrap(settings_for(db_url, tmp_path / "two", secret_keys=ring))
    try:
        signers = await asyncio.gather(first.merchants.platform_signer(), second.merchants.platform_signer())
        assert signers[0].key_id == signers[1].key_id
        assert signers[0].public_key_pem == signers[1].public_key_pem
        async with first.db.uow() as uow:
            assert await uow.session.scalar(select(func.count()).select_from(PlatformKey)) == 1
    finally:
        if first.db.dialect == "postgresql":
            await truncate_all(first.db)  # the database is the session's: the next test starts without this key
        await first.aclose()
        await second.aclose()
