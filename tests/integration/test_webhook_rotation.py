"""Issue 15 item 15: webhooks across an HMAC key rotation carry one signature per active key, newest first, and a
key added or removed reaches the worker's signing within 5 s (checked on a fake monotonic clock, no sleeps)."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.fixtures.notice_harness import Harness, notice_harness
from tests.fixtures.webhook_receiver import Received, verify_webhook
from tomato.core.crypto import generate_rsa_key, public_key_pem
from tomato.merchant.schemas import KeyRotate
from tomato.merchant.service import MerchantService
from tomato.notice.worker import AppKeyCache


@pytest.fixture
async def hooks(db_url: str, tmp_path: Path) -> AsyncIterator[Harness]:
    async with notice_harness(db_url, tmp_path) as h:
        yield h


def _signed_with(req: Received, secret: str) -> str:
    message = f"{req.headers['tomato-timestamp']}\n{req.headers['tomato-nonce']}\n".encode() + req.body + b"\n"
    return "HMAC-SHA256 " + base64.b64encode(hmac.new(secret.encode(), message, hashlib.sha256).digest()).decode()


async def test_a_webhook_carries_one_signature_per_active_key_newest_first(hooks: Harness) -> None:
    rotated = await hooks.c.merchants.rotate_key(hooks.app_id, KeyRotate())
    assert rotated.secret is not None
    new, old = rotated.secret, hooks.secret
    await hooks.c.merchants.rotate_key(hooks.rsa_app_id, KeyRotate(public_key_pem=public_key_pem(generate_rsa_key())))
    (event_id,) = await hooks.emit()
    (rsa_event_id,) = await hooks.emit(app_id=hooks.rsa_app_id)
    await hooks.receiver.wait_until(lambda: len(hooks.receiver.received) >= 2)
    got = hooks.receiver.by_event()
    (req,) = got[event_id]
    assert req.headers["tomato-signature"] == f"{_signed_with(req, new)},{_signed_with(req, old)}"
    # a merchant that has deployed either key verifies (the fixture's verifier accepts any one signature)
    assert verify_webhook(req, secret=new) and verify_webhook(req, secret=old)
    assert not verify_webhook(req, secret="not-a-key-of-this-app")
    # RSA apps sign with the platform key: one signature whatever the app's own keys
    (rsa_req,) = got[rsa_event_id]
    assert "," not in rsa_req.headers["tomato-signature"]
    assert verify_webhook(rsa_req, platform_public_key_pem=await hooks.platform_pem())


async def test_a_key_added_or_removed_reaches_the_workers_signing_within_5_s(hooks: Harness) -> None:
    # the worker runs in its own process: its merchant service shares nothing with the admin API's but the database
    worker_side = MerchantService(hooks.c.db, hooks.c.box, hooks.c.ids)
    now = [1000.0]
    cache = AppKeyCache(worker_side, monotonic=lambda: now[0])
    old = hooks.secret.encode()
    assert (await cache.get(hooks.app_id)).hmac_secrets == (old,)

    rotated = await hooks.c.merchants.rotate_key(hooks.app_id, KeyRotate())
    assert rotated.secret is not None
    new = rotated.secret.encode()
    now[0] += 5.0
    assert (await cache.get(hooks.app_id)).hmac_secrets == (new, old)

    old_key_id = next(k.key_id for k in rotated.app.keys if k.key_id != rotated.key_id)
    await hooks.c.merchants.remove_key(hooks.app_id, old_key_id)
    now[0] += 5.0
    assert (await cache.get(hooks.app_id)).hmac_secrets == (new,)
