"""Issue 21: merchants' identities under service-provider accounts — the admin API, routing, and the identity each
call carries (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import text

from tests.fixtures.pay_stack import PayStack
from tests.fixtures.stack import admin
from tomato.channel.reencrypt import reencrypt_secrets
from tomato.channel.sub_merchant import SubMerchantAdapter

TOKEN = "202612BB0123456789abcdefTOKEN"


async def _isv_account(pay: PayStack) -> str:
    """An Alipay service-provider account with the direct simulator account's keys (what is sent is not at stake)."""
    config = await _config_of(pay, pay.accounts["alipay"])
    r = await pay.http.post(
        "/admin/channel-accounts",
        json={"channel": "alipay", "name": "Alipay ISV", "mode": "isv", "config": config},
        headers=admin(),
    )
    assert r.status_code == 201, r.text
    assert r.json()["mode"] == "isv"
    return str(r.json()["id"])


async def _config_of(pay: PayStack, account_id: str) -> dict[str, Any]:
    async with pay.c.db.engine.connect() as conn:
        row = (
            await conn.execute(text("SELECT config_ciphertext FROM channel_accounts WHERE id = :i"), {"i": account_id})
        ).one()
    config: dict[str, Any] = json.loads(pay.c.box.decrypt(row[0], context=f"channel-account:{account_id}"))
    config.pop("mode", None)
    return config


async def _mch_no(pay: PayStack) -> str:
    return str((await pay.c.merchants.get_app(pay.client.app_id)).mch_no)


def _isv_identity(account_id: str) -> dict[str, Any]:
    return {"channel_account_id": account_id, "app_auth_token": TOKEN, "auth_app_id": "2088"}


def _attach(pay: PayStack, mch_no: str, body: dict[str, Any], role: str = "operator") -> Any:
    return pay.http.post(f"/admin/merchants/{mch_no}/channel-identities", json=body, headers=admin(role))


async def test_an_identity_is_attached_listed_and_disabled_and_its_token_never_leaves(pay: PayStack) -> None:
    account_id, mch_no = await _isv_account(pay), await _mch_no(pay)
    r = await _attach(pay, mch_no, {"channel_account_id": account_id, "app_auth_token": TOKEN, "auth_app_id": "2088"})
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["status"] == "ACTIVE" and created["mch_no"] == mch_no
    assert created["channel_account_id"] == account_id and created["id"].startswith("CI")
    assert TOKEN not in r.text

    listed = await pay.http.get(f"/admin/merchants/{mch_no}/channel-identities", headers=admin())
    assert listed.status_code == 200 and [i["id"] for i in listed.json()["data"]] == [created["id"]]
    assert TOKEN not in listed.text
    async with pay.c.db.engine.connect() as conn:
        stored = (await conn.execute(text("SELECT secret_ciphertext FROM channel_identities"))).scalar_one()
        audit = (await conn.execute(text("SELECT * FROM admin_audit"))).all()
    assert TOKEN not in stored and TOKEN not in repr(audit)  # encrypted at rest, never in the audit trail

    off = await pay.http.post(f"/admin/channel-identities/{created['id']}/disable", headers=admin())
    assert off.status_code == 200 and off.json()["status"] == "DISABLED"
    again = await _attach(
        pay, mch_no, {"channel_account_id": account_id, "app_auth_token": TOKEN, "auth_app_id": "2088"}
    )
    assert again.status_code == 201, "a disabled identity leaves room for a new one"
    missing = await pay.http.post("/admin/channel-identities/CI1/disable", headers=admin())
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "CHANNEL_IDENTITY_NOT_FOUND"


async def test_bad_identities_are_refused_naming_the_field_and_nothing_is_stored(pay: PayStack) -> None:
    account_id, mch_no = await _isv_account(pay), await _mch_no(pay)
    cases: list[tuple[dict[str, Any], int, str, str | None]] = [
        ({"channel_account_id": account_id, "auth_app_id": "2088"}, 422, "INVALID_REQUEST", "app_auth_token"),
        ({"channel_account_id": account_id, "app_auth_token": TOKEN}, 422, "INVALID_REQUEST", "auth_app_id"),
        (
            {"channel_account_id": account_id, "app_auth_token": TOKEN, "auth_app_id": "2088", "sub_mchid": "1900"},
            422,
            "INVALID_REQUEST",
            "sub_mchid",
        ),
        (
            {"channel_account_id": pay.accounts["alipay"], "sub_mchid": "1900"},
            422,
            "INVALID_REQUEST",
            "channel_account_id",
        ),
        ({"channel_account_id": "CA1", "sub_mchid": "1900"}, 404, "CHANNEL_ACCOUNT_NOT_FOUND", None),
        (
            {"channel_account_id": account_id, "app_auth_token": "a b", "auth_app_id": "2088"},
            422,
            "INVALID_REQUEST",
            None,
        ),
    ]
    for body, status, code, field in cases:
        r = await _attach(pay, mch_no, body)
        assert r.status_code == status, (body, r.text)
        assert r.json()["error"]["code"] == code
        if field is not None:
            assert [d["field"] for d in r.json()["error"]["details"]] == [field], r.text
    unknown = await _attach(pay, "M1", {"channel_account_id": account_id, "app_auth_token": TOKEN, "auth_app_id": "1"})
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "MERCHANT_NOT_FOUND"
    finance = await _attach(pay, mch_no, {"channel_account_id": account_id}, role="finance")
    assert finance.status_code == 403
    async with pay.c.db.engine.connect() as conn:
        assert (await conn.execute(text("SELECT count(*) FROM channel_identities"))).scalar_one() == 0

    ok = {"channel_account_id": account_id, "app_auth_token": TOKEN, "auth_app_id": "2088"}
    assert (await _attach(pay, mch_no, ok)).status_code == 201
    twice = await _attach(pay, mch_no, ok)
    assert twice.status_code == 409 and twice.json()["error"]["code"] == "CHANNEL_IDENTITY_CONFLICT"


async def test_an_account_mode_must_fit_its_channel(pay: PayStack) -> None:
    config = await _config_of(pay, pay.accounts["alipay"])
    cases = [
        ({"mode": "partner"}, "mode"),
        ({"config": {**config, "mode": "partner"}}, "config.mode"),
        ({"mode": "isv", "config": {**config, "mode": "direct"}}, "mode"),
    ]
    for extra, field in cases:
        body = {"channel": "alipay", "name": "bad", "config": config, **extra}
        r = await pay.http.post("/admin/channel-accounts", json=body, headers=admin())
        assert r.status_code == 422, r.text
        assert [d["field"] for d in r.json()["error"]["details"]] == [field]
    listed = (await pay.http.get("/admin/channel-accounts", headers=admin())).json()["data"]
    assert {a["mode"] for a in listed} == {"direct"}
    inner = await pay.http.post(
        "/admin/channel-accounts",
        json={"channel": "alipay", "name": "via config", "config": {**config, "mode": "isv"}},
        headers=admin(),
    )
    assert inner.status_code == 201 and inner.json()["mode"] == "isv"


async def test_routing_skips_a_provider_for_a_merchant_without_an_active_identity(pay: PayStack) -> None:
    account_id, mch_no = await _isv_account(pay), await _mch_no(pay)
    rule = {
        "rank": 10,
        "pay_methods": ["ALIPAY_QR"],
        "app_id": pay.client.app_id,
        "candidates": [{"channel_account_id": account_id, "priority": 1}],
    }
    assert (await pay.http.post("/admin/routing-rules", json=rule, headers=admin())).status_code == 201
    refused = await pay.client.create_order(pay_method="ALIPAY_QR")
    assert refused.status_code == 503 and refused.json()["error"]["code"] == "NO_CHANNEL_AVAILABLE"
    async with pay.c.db.engine.connect() as conn:
        assert (await conn.execute(text("SELECT count(*) FROM pay_orders"))).scalar_one() == 0

    body = {"channel_account_id": account_id, "app_auth_token": TOKEN, "auth_app_id": "2088"}
    identity = (await _attach(pay, mch_no, body)).json()
    routes = await pay.c.channels.route(pay.client.app_id, "ALIPAY_QR", 100, mch_no)
    assert [r.channel_account_id for r in routes] == [account_id]
    assert await pay.c.channels.route(pay.client.app_id, "ALIPAY_QR", 100, "M0") == []  # another merchant

    bound = await pay.c.channels.adapter_for(account_id, mch_no)
    assert isinstance(bound, SubMerchantAdapter)
    await pay.http.post(f"/admin/channel-identities/{identity['id']}/disable", headers=admin())
    assert await pay.c.channels.route(pay.client.app_id, "ALIPAY_QR", 100, mch_no) == []
    # its orders are still followed up with the identity they were made under
    after = await pay.c.channels.adapter_for(account_id, mch_no)
    assert isinstance(after, SubMerchantAdapter) and after._sub.auth_app_id == "2088"
    assert after._sub.app_auth_token == TOKEN
    direct = await pay.c.channels.adapter_for(pay.accounts["alipay"], mch_no)
    assert not isinstance(direct, SubMerchantAdapter)


async def test_identities_are_reencrypted_with_the_secrets(pay: PayStack) -> None:
    account_id, mch_no = await _isv_account(pay), await _mch_no(pay)
    body = {"channel_account_id": account_id, "app_auth_token": TOKEN, "auth_app_id": "2088"}
    assert (await _attach(pay, mch_no, body)).status_code == 201
    counts = await reencrypt_secrets(pay.c.db, pay.c.box)
    assert len(counts) == 2
    sub = await pay.c.channels.identities.sub_merchant(account_id, mch_no)
    assert sub is not None and sub.app_auth_token == TOKEN
    assert "****" in repr(sub) and TOKEN not in repr(sub)
