"""Issue 23, the developer's portal pages: apps, keys rotated with an overlap (the next webhook carries both
signatures), deleted down to the last one, the default notify_url under the admin API's rules, webhook deliveries
with their attempts and resend; finance and support are refused, and another merchant's ids are all 404."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pyotp
import pytest

from tests.fixtures.console_client import csrf_of
from tests.fixtures.notice_harness import Harness, notice_harness
from tests.fixtures.portal_client import Credentials, PortalUser, make_user
from tests.fixtures.stack import admin
from tests.fixtures.webhook_receiver import Received
from tomato.core.crypto import generate_rsa_key, public_key_pem
from tomato.gateway.paging import encode_cursor
from tomato.merchant.admin_schemas import AuditFilter
from tomato.merchant.schemas import AppCreate, KeyRotate, MerchantCreate
from tomato.notice.service import NoticeService

NEW_SECRET = re.compile(r'id="new-secret">([^<]+)<')


@pytest.fixture
async def hooks(db_url: str, tmp_path: Path) -> AsyncIterator[Harness]:
    async with notice_harness(db_url, tmp_path) as h:
        yield h


def _signed_with(req: Received, secret: str) -> str:
    message = f"{req.headers['tomato-timestamp']}\n{req.headers['tomato-nonce']}\n".encode() + req.body + b"\n"
    return "HMAC-SHA256 " + base64.b64encode(hmac.new(secret.encode(), message, hashlib.sha256).digest()).decode()


def _active_keys(page: httpx.Response) -> list[str]:
    return re.findall(r'data-key="([^"]+)" data-status="ACTIVE"', page.text)


async def _signed_in(h: Harness, mch_no: str, role: str, http: httpx.AsyncClient | None = None) -> PortalUser:
    """A user of `mch_no` with that role, signed in. The harness runs on the real clock: an owner's TOTP code is the
    next 30 s step's (accepted, ±1 step), never the step its invitation was accepted with (a replay)."""
    who: Credentials = await make_user(h.c, mch_no, role)
    u = PortalUser(http or h.http, h.c)
    page = await u.http.get("/portal/login")
    r = await u.http.post("/portal/login", data={"csrf_token": csrf_of(page), "email": who.email,
                                                   "password": who.password})  # fmt: skip
    if who.totp_secret is not None:
        page = await u.http.get("/portal/login/code")
        code = pyotp.TOTP(who.totp_secret).at(h.c.clock.timestamp() + 30)
        r = await u.http.post("/portal/login/code", data={"csrf_token": csrf_of(page), "code": code})
    assert r.status_code == 303 and r.headers["location"].startswith("/portal"), r.text
    return u


async def test_developer_rotates_a_key_and_the_next_webhook_carries_both_signatures(hooks: Harness) -> None:
    dev = await _signed_in(hooks, hooks.mch_no, "developer")
    listed = await dev.get("/portal/apps")
    assert listed.status_code == 200 and hooks.app_id in listed.text and hooks.rsa_app_id in listed.text
    page = await dev.get(f"/portal/apps/{hooks.app_id}")
    (old_key,) = _active_keys(page)
    assert hooks.secret not in page.text  # a secret is never shown after its creation

    rotated = await dev.post(f"/portal/apps/{hooks.app_id}/keys")
    assert rotated.status_code == 201, rotated.text
    found = NEW_SECRET.search(rotated.text)
    assert found is not None and 'data-copy="new-secret"' in rotated.text
    new = found.group(1)
    assert len(_active_keys(rotated)) == 2 and old_key in _active_keys(rotated)
    again = await dev.get(f"/portal/apps/{hooks.app_id}")
    assert new not in again.text and len(_active_keys(again)) == 2  # shown once
    reposted = await dev.post(f"/portal/apps/{hooks.app_id}/keys")  # a reload of the answer cannot make a third
    assert reposted.status_code == 409 and "KEY_LIMIT_REACHED" in reposted.text

    # no webhook went out before the rotation, so the worker's key cache loads both secrets for this one
    (event_id,) = await hooks.emit()
    await hooks.receiver.wait_until(lambda: event_id in hooks.receiver.by_event())
    (req,) = hooks.receiver.by_event()[event_id]
    assert req.headers["tomato-signature"] == f"{_signed_with(req, new)},{_signed_with(req, hooks.secret)}"

    deleted = await dev.post(f"/portal/apps/{hooks.app_id}/keys/{old_key}/delete")
    assert deleted.status_code == 303 and deleted.headers["location"].endswith("ok=portal_key_deleted")
    page = await dev.get(f"/portal/apps/{hooks.app_id}")
    (left,) = _active_keys(page)
    assert left != old_key and 'data-confirm="' in page.text
    last = await dev.post(f"/portal/apps/{hooks.app_id}/keys/{left}/delete")
    assert last.status_code == 409 and "LAST_KEY" in last.text
    assert [k.key_id for k in (await hooks.c.merchants.get_app(hooks.app_id)).keys] == [left]

    # an RSA app takes the merchant's new public key; there is no secret to show
    bad_pem = await dev.post(f"/portal/apps/{hooks.rsa_app_id}/keys", {"public_key_pem": "not a key"})
    assert bad_pem.status_code == 422 and "public_key_pem" in bad_pem.text
    pem = public_key_pem(generate_rsa_key())
    rsa_key = await dev.post(f"/portal/apps/{hooks.rsa_app_id}/keys", {"public_key_pem": pem})
    assert rsa_key.status_code == 303 and rsa_key.headers["location"].endswith("ok=portal_key_added")
    assert len((await hooks.c.merchants.get_app(hooks.rsa_app_id)).keys) == 2

    trail = await hooks.c.merchants.list_admin_audit(AuditFilter(mch_no=hooks.mch_no), None, 10)
    assert [(e.action, e.target) for e in trail] == [
        ("app_key.rotate", hooks.rsa_app_id),
        ("app_key.delete", hooks.app_id),
        ("app_key.rotate", hooks.app_id),
    ]
    assert all(new not in e.model_dump_json() for e in trail)  # the audit trail never holds the secret


async def test_notify_url_deliveries_and_resend(hooks: Harness) -> None:
    dev = await _signed_in(hooks, hooks.mch_no, "developer")
    bad = "http://10.1.2.3/hooks"  # a private address outside TOMATO_WEBHOOK_ALLOWED_NETWORKS
    api = await hooks.http.patch(f"/admin/apps/{hooks.app_id}", json={"notify_url": bad}, headers=admin())
    assert api.status_code == 422
    refused = await dev.post(f"/portal/apps/{hooks.app_id}/notify-url", {"notify_url": bad})
    assert refused.status_code == 422
    assert api.json()["error"]["code"] in refused.text and api.json()["error"]["details"][0]["issue"] in refused.text
    assert (await hooks.c.merchants.get_app(hooks.app_id)).notify_url == hooks.receiver.url
    moved = hooks.receiver.url + "/v2"
    saved = await dev.post(f"/portal/apps/{hooks.app_id}/notify-url", {"notify_url": moved})
    assert saved.status_code == 303 and (await hooks.c.merchants.get_app(hooks.app_id)).notify_url == moved

    (event_id,) = await hooks.emit()
    (delivery,) = await hooks.wait_status("SUCCEEDED", 1)
    listed = await dev.get("/portal/deliveries")
    assert listed.status_code == 200 and f'data-delivery="{delivery.id}"' in listed.text
    assert delivery.id not in (await dev.get("/portal/deliveries", params={"status": "FAILED"})).text
    assert delivery.id in (await dev.get("/portal/deliveries", params={"event_type": "pay.succeeded"})).text
    assert delivery.id not in (await dev.get("/portal/deliveries", params={"event_type": "refund.failed"})).text
    detail = await dev.get(f"/portal/deliveries/{delivery.id}")
    assert detail.status_code == 200 and event_id in detail.text and "<td>200</td>" in detail.text

    resent = await dev.post(f"/portal/deliveries/{delivery.id}/resend")
    assert resent.status_code == 303 and resent.headers["location"].endswith("ok=portal_resent")
    await hooks.receiver.wait_until(lambda: len(hooks.receiver.by_event().get(event_id, [])) == 2)
    assert all(r.path == "/hooks/v2" for r in hooks.receiver.by_event()[event_id])
    trail = await hooks.c.merchants.list_admin_audit(AuditFilter(mch_no=hooks.mch_no), None, 10)
    assert [e.action for e in trail] == ["delivery.resend", "app.notify_url"]
    assert trail[1].before == {"notify_url": hooks.receiver.url} and trail[1].after == {"notify_url": moved}

    for role in ("finance", "support"):  # the developer's part of the portal is the owner's and developer's only
        async with httpx.AsyncClient(transport=hooks.http._transport, base_url=hooks.http.base_url) as http:
            other = await _signed_in(hooks, hooks.mch_no, role, http)
            for path in ("/portal/apps", f"/portal/apps/{hooks.app_id}", "/portal/deliveries",
                         f"/portal/deliveries/{delivery.id}"):  # fmt: skip
                assert (await other.get(path)).status_code == 403, (role, path)
            for path in (f"/portal/apps/{hooks.app_id}/keys", f"/portal/deliveries/{delivery.id}/resend"):
                assert (await other.post(path)).status_code == 403, (role, path)
            assert (await other.post(f"/portal/apps/{hooks.app_id}/notify-url", {"notify_url": ""})).status_code == 403
    assert len((await hooks.c.merchants.get_app(hooks.app_id)).keys) == 1
    assert (await hooks.c.merchants.get_app(hooks.app_id)).notify_url == moved
    assert len(await hooks.c.merchants.list_admin_audit(AuditFilter(mch_no=hooks.mch_no), None, 10)) == 2


async def test_another_merchants_apps_keys_and_deliveries_are_not_found(hooks: Harness) -> None:
    other = await hooks.c.merchants.create_merchant(MerchantCreate(name="Other Ltd"))
    theirs = await hooks.c.merchants.create_app(other.mch_no, AppCreate(name="theirs", notify_url=hooks.receiver.url))
    their_app = theirs.app.app_id
    their_key = (await hooks.c.merchants.rotate_key(their_app, KeyRotate())).key_id  # two keys: a delete could work
    await hooks.c.merchants.rotate_key(hooks.app_id, KeyRotate())  # ours too
    await hooks.emit(app_id=their_app)
    (their_delivery,) = await hooks.wait_status("SUCCEEDED", 1)
    notices = NoticeService(hooks.c.db)
    app_before = await hooks.c.merchants.get_app(their_app)
    delivery_before = await notices.get_delivery(their_delivery.id)

    owner = await _signed_in(hooks, hooks.mch_no, "owner")
    for path in (f"/portal/apps/{their_app}", f"/portal/deliveries/{their_delivery.id}",
                 "/portal/apps/A404404", "/portal/deliveries/D404404"):  # fmt: skip
        r = await owner.get(path)
        assert r.status_code == 404, (path, r.text)
    for path, form in (
        (f"/portal/apps/{their_app}/keys", {}),
        (f"/portal/apps/{their_app}/keys/{their_key}/delete", {}),
        (f"/portal/apps/{hooks.app_id}/keys/{their_key}/delete", {}),  # their key under our app id
        (f"/portal/apps/{their_app}/notify-url", {"notify_url": hooks.receiver.url + "/stolen"}),
        (f"/portal/deliveries/{their_delivery.id}/resend", {}),
    ):
        r = await owner.post(path, form)
        assert r.status_code == 404, (path, r.text)
    assert their_app not in (await owner.get("/portal/apps")).text
    assert their_delivery.id not in (await owner.get("/portal/deliveries")).text
    # a cursor naming their delivery is refused exactly like an unknown one
    theirs_cursor = await owner.get("/portal/deliveries", params={"cursor": encode_cursor(their_delivery.id[1:])})
    unknown_cursor = await owner.get("/portal/deliveries", params={"cursor": encode_cursor("1")})
    assert theirs_cursor.status_code == unknown_cursor.status_code == 422

    assert await hooks.c.merchants.get_app(their_app) == app_before
    assert len((await hooks.c.merchants.get_app(hooks.app_id)).keys) == 2
    assert await notices.get_delivery(their_delivery.id) == delivery_before
    for mch_no in (hooks.mch_no, other.mch_no):
        assert await hooks.c.merchants.list_admin_audit(AuditFilter(mch_no=mch_no), None, 10) == []
