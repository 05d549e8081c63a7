"""Issue 2 acceptance 3: encrypted secrets, roles, frozen merchants, key rotation."""

from __future__ import annotations

from sqlalchemy import text

from tests.fixtures.stack import admin


async def _merchant_with_app(client, **app) -> tuple[str, dict]:  # type: ignore[no-untyped-def]
    r = await client.post("/admin/merchants", json={"name": "Coffee Ltd"}, headers=admin())
    assert r.status_code == 201, r.text
    mch_no = r.json()["mch_no"]
    r = await client.post(f"/admin/merchants/{mch_no}/apps", json=app, headers=admin())
    assert r.status_code == 201, r.text
    return mch_no, r.json()


async def test_app_secret_is_stored_encrypted(stack) -> None:
    c, client = stack
    _, created = await _merchant_with_app(client)
    secret = created["secret"]
    assert secret and len(secret) >= 32
    async with c.db.engine.connect() as conn:
        rows = (await conn.execute(text("SELECT secret_ciphertext FROM merchant_app_keys"))).all()
    assert len(rows) == 1
    raw = rows[0][0]
    assert secret not in raw and raw.startswith("v1:t1:")
    auth = await c.merchants.app_auth(created["app"]["app_id"])
    assert auth.hmac_secrets == (secret.encode(),)
    # the secret is never shown again
    r = await client.get(f"/admin/apps/{created['app']['app_id']}", headers=admin())
    assert secret not in r.text and "secret" not in r.json()


async def test_tokens_need_the_right_role(stack) -> None:
    _, client = stack
    assert (await client.get("/admin/merchants")).status_code == 401
    r = await client.get("/admin/merchants", headers={"Authorization": "Bearer nope"})
    assert r.status_code == 401 and r.json()["error"]["code"] == "UNAUTHENTICATED"
    r = await client.get("/admin/merchants", headers=admin("finance"))
    assert r.status_code == 403 and r.json()["error"]["code"] == "FORBIDDEN"
    r = await client.post("/admin/merchants", json={"name": "x"}, headers=admin("finance"))
    assert r.status_code == 403
    assert (await client.get("/admin/merchants", headers=admin("operator"))).status_code == 200


async def test_frozen_merchant_apps_are_reported_frozen(stack) -> None:
    c, client = stack
    mch_no, created = await _merchant_with_app(client)
    app_id = created["app"]["app_id"]
    assert created["app"]["status"] == "ACTIVE"
    r = await client.post(f"/admin/merchants/{mch_no}/freeze", headers=admin())
    assert r.status_code == 200 and r.json()["status"] == "FROZEN"
    assert [a["status"] for a in r.json()["apps"]] == ["FROZEN"]
    assert (await client.get(f"/admin/apps/{app_id}", headers=admin())).json()["status"] == "FROZEN"
    auth = await c.merchants.app_auth(app_id)
    assert auth.merchant_status == "FROZEN"
    await client.post(f"/admin/merchants/{mch_no}/unfreeze", headers=admin())
    assert (await client.get(f"/admin/apps/{app_id}", headers=admin())).json()["status"] == "ACTIVE"
    r = await client.post(f"/admin/apps/{app_id}/freeze", headers=admin())
    assert r.json()["status"] == "FROZEN"


async def test_key_rotation_keeps_old_key_until_removed(stack) -> None:
    c, client = stack
    _, created = await _merchant_with_app(client)
    app_id, old_key, old_secret = created["app"]["app_id"], created["key_id"], created["secret"]
    r = await client.post(f"/admin/apps/{app_id}/keys", json={}, headers=admin())
    assert r.status_code == 201
    new_secret = r.json()["secret"]
    assert new_secret != old_secret
    assert set((await c.merchants.app_auth(app_id)).hmac_secrets) == {old_secret.encode(), new_secret.encode()}
    # a third active key is refused until one is removed
    r = await client.post(f"/admin/apps/{app_id}/keys", json={}, headers=admin())
    assert r.status_code == 409 and r.json()["error"]["code"] == "KEY_LIMIT_REACHED"
    r = await client.delete(f"/admin/apps/{app_id}/keys/{old_key}", headers=admin())
    assert r.status_code == 200 and len(r.json()["keys"]) == 1
    assert (await c.merchants.app_auth(app_id)).hmac_secrets == (new_secret.encode(),)
    # the last key cannot be removed
    last = r.json()["keys"][0]["key_id"]
    assert (await client.delete(f"/admin/apps/{app_id}/keys/{last}", headers=admin())).status_code == 409


async def test_bad_admin_input_is_rejected(stack) -> None:
    _, client = stack
    r = await client.post("/admin/merchants", json={"name": ""}, headers=admin())
    assert r.status_code == 422 and r.json()["error"]["details"][0]["field"] == "name"
    r = await client.post("/admin/merchants", content=b"{nope", headers={**admin(), "content-type": "application/json"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "INVALID_REQUEST"
    r = await client.post("/admin/merchants/M1/apps", json={}, headers=admin())
    assert r.status_code == 404
    mch = (await client.post("/admin/merchants", json={"name": "a"}, headers=admin())).json()["mch_no"]
    r = await client.post(f"/admin/merchants/{mch}/apps", json={"sign_type": "RSA-SHA256"}, headers=admin())
    assert r.status_code == 422 and r.json()["error"]["details"][0]["field"] == "public_key_pem"
    r = await client.post(f"/admin/merchants/{mch}/apps", json={"pay_methods": ["BITCOIN"]}, headers=admin())
    assert r.status_code == 422
    r = await client.get("/admin/merchants?limit=0", headers=admin())
    assert r.status_code == 422 and r.json()["error"]["details"][0]["field"] == "limit"
    r = await client.get("/admin/merchants?cursor=%%%", headers=admin())
    assert r.status_code == 422 and r.json()["error"]["details"][0]["field"] == "cursor"


async def test_merchant_list_pages(stack) -> None:
    _, client = stack
    for i in range(3):
        await client.post("/admin/merchants", json={"name": f"m{i}"}, headers=admin())
    r = await client.get("/admin/merchants?limit=2", headers=admin())
    body = r.json()
    assert len(body["data"]) == 2 and body["next_cursor"]
    r = await client.get(f"/admin/merchants?limit=2&cursor={body['next_cursor']}", headers=admin())
    assert len(r.json()["data"]) == 1 and r.json()["next_cursor"] is None
