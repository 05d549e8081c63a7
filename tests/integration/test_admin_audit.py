"""Issue 19, operator safety: every admin action leaves an audit row (who, when, what, before/after) that operators
and finance can read and export, and no row ever holds a secret."""

from __future__ import annotations

import csv
import io
import json

import pytest
from sqlalchemy import text

from tests.fixtures.stack import ADMIN_TOKENS, admin
from tomato.core.crypto import generate_rsa_key, private_key_pem, public_key_pem
from tomato.gateway.audit_trail import record_admin_action
from tomato.gateway.routers.admin.audit import COLUMNS


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def _app(client, headers: dict[str, str]) -> tuple[str, dict]:  # type: ignore[no-untyped-def]
    mch_no = (await client.post("/admin/merchants", json={"name": "Coffee Ltd"}, headers=headers)).json()["mch_no"]
    r = await client.post(f"/admin/merchants/{mch_no}/apps", json={}, headers=headers)
    assert r.status_code == 201, r.text
    return mch_no, r.json()


async def _raw_rows(c) -> list[str]:  # type: ignore[no-untyped-def]
    async with c.db.engine.connect() as conn:
        rows = (await conn.execute(text("SELECT actor, target, before, after FROM admin_audit"))).all()
    return [" ".join(str(v) for v in row) for row in rows]


async def test_freezing_an_app_is_audited_with_the_operator_name_and_both_views(stack) -> None:
    c, client = stack
    alice = await c.merchants.create_admin_token("operator", name="alice")
    _, created = await _app(client, bearer(alice))
    app_id = created["app"]["app_id"]
    r = await client.post(f"/admin/apps/{app_id}/freeze", headers={**bearer(alice), "X-Request-Id": "req-freeze-1"})
    assert r.status_code == 200 and r.json()["status"] == "FROZEN"

    r = await client.get("/admin/audit?action=app.freeze", headers=admin())
    assert r.status_code == 200, r.text
    [entry] = r.json()["data"]
    alice_id = (await c.merchants.admin_identity(alice)).token_id  # type: ignore[union-attr]
    assert entry["actor"] == "operator:alice" and entry["actor_token_id"] == alice_id
    assert entry["via"] == "api" and entry["target"] == app_id and entry["request_id"] == "req-freeze-1"
    assert entry["before"]["status"] == "ACTIVE" and entry["after"]["status"] == "FROZEN"
    assert entry["id"].startswith("AU") and entry["at"].endswith("Z")
    # by actor (token id or role:name) and by target
    for query in (f"actor={alice_id}", "actor=operator:alice", f"target={app_id}"):
        items = (await client.get(f"/admin/audit?{query}", headers=admin())).json()["data"]
        assert entry["id"] in [e["id"] for e in items], query
    assert (await client.get("/admin/audit?actor=operator:bob", headers=admin())).json()["data"] == []
    # the app's creation came first; newest first
    mine = (await client.get(f"/admin/audit?actor={alice_id}", headers=admin())).json()["data"]
    actions = [e["action"] for e in mine]
    assert actions == ["app.freeze", "app.create", "merchant.create"]


async def test_no_audit_row_holds_a_secret(stack) -> None:
    c, client = stack
    _, created = await _app(client, admin())
    app_id, secret = created["app"]["app_id"], created["secret"]
    rotated = (await client.post(f"/admin/apps/{app_id}/keys", json={}, headers=admin())).json()["secret"]
    key = generate_rsa_key()
    api_v3_key = "k" * 32
    config = {
        "mchid": "1900000001",
        "appid": "wx0123456789abcdef",
        "serial_no": "ABCDEF0123456789",
        "private_key_pem": private_key_pem(key),
        "api_v3_key": api_v3_key,
        "platform_public_key_pem": public_key_pem(generate_rsa_key()),
        "platform_public_key_id": "PUB_KEY_ID_0123456789",
        "base_url": "https://api.mch.weixin.qq.com",
    }
    r = await client.post(
        "/admin/channel-accounts", json={"channel": "wechat", "name": "wx", "config": config}, headers=admin()
    )
    assert r.status_code == 201, r.text
    made = await client.post("/admin/tokens", json={"role": "finance", "name": "fin"}, headers=admin())
    new_token = made.json()["token"]

    rows = await _raw_rows(c)
    assert len(rows) == 5  # merchant.create, app.create, app.key_add, channel_account.create, token.create
    pem_body = private_key_pem(key).splitlines()[1]
    for row in rows:
        for leaked in (secret, rotated, api_v3_key, pem_body, new_token, ADMIN_TOKENS["operator"]):
            assert leaked not in row
    app_created = (await client.get("/admin/audit?action=app.create", headers=admin())).json()["data"][0]
    assert app_created["after"]["secret"] == "[redacted]" and app_created["after"]["app"]["app_id"] == app_id


async def test_the_console_api_resolves_the_token_and_redacts(stack) -> None:
    c, client = stack
    bob = await c.merchants.create_admin_token("operator", name="bob")
    await record_admin_action(
        c,
        actor_token=bob,
        via="console",
        action="app.freeze",
        target="A1",
        before={"status": "ACTIVE", "nested": [{"private_key_pem": "PEM", "api_v3_key": "K" * 32}]},
        after={"status": "FROZEN", "secret": "s3cret", "note": f"typed {bob} by mistake"},
        request_id="rid-1",
    )
    [entry] = (await client.get("/admin/audit?target=A1", headers=admin("finance"))).json()["data"]
    assert entry["actor"] == "operator:bob" and entry["via"] == "console" and entry["request_id"] == "rid-1"
    assert entry["before"] == {
        "status": "ACTIVE",
        "nested": [{"private_key_pem": "[redacted]", "api_v3_key": "[redacted]"}],
    }
    assert entry["after"] == {"status": "FROZEN", "secret": "[redacted]", "note": "typed [redacted] by mistake"}
    with pytest.raises(ValueError, match="via"):
        await record_admin_action(c, actor_token=bob, via="email", action="x", target="y", before=None, after=None)


async def test_finance_reads_and_exports_the_trail_but_cannot_revoke(stack) -> None:
    _, client = stack
    await _app(client, admin())
    r = await client.get("/admin/audit", headers=admin("finance"))
    assert r.status_code == 200 and len(r.json()["data"]) == 2
    assert (await client.get("/admin/audit.csv", headers=admin("finance"))).status_code == 200
    token_id = (await client.get("/admin/tokens", headers=admin())).json()["data"][0]["id"]
    r = await client.post(f"/admin/tokens/{token_id}/revoke", headers=admin("finance"))
    assert r.status_code == 403 and r.json()["error"]["code"] == "FORBIDDEN"
    assert (await client.get("/admin/audit")).status_code == 401


async def test_csv_export_has_a_header_and_every_matching_row(stack) -> None:
    _, client = stack
    for _ in range(3):
        await _app(client, admin())
    r = await client.get("/admin/audit.csv?action=merchant.create", headers=admin())
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert "attachment" in r.headers["content-disposition"]
    body = r.content.decode("utf-8")
    assert body.startswith("\ufeff")
    rows = list(csv.reader(io.StringIO(body[1:])))
    assert rows[0] == list(COLUMNS)
    assert len(rows) == 4 and {row[5] for row in rows[1:]} == {"merchant.create"}
    listed = (await client.get("/admin/audit?action=merchant.create", headers=admin())).json()["data"]
    assert [row[0] for row in rows[1:]] == [e["id"] for e in listed]
    assert json.loads(rows[1][8])["mch_no"] == listed[0]["target"]  # `after` as JSON
    all_rows = list(csv.reader(io.StringIO((await client.get("/admin/audit.csv", headers=admin())).text[1:])))
    assert len(all_rows) == 1 + 6  # header, then three merchants and three apps


async def test_the_list_pages_and_time_filters_bound_it(stack) -> None:
    _, client = stack
    for _ in range(3):
        await client.post("/admin/merchants", json={"name": "m"}, headers=admin())
    page = (await client.get("/admin/audit?limit=2", headers=admin())).json()
    assert len(page["data"]) == 2 and page["next_cursor"]
    rest = (await client.get(f"/admin/audit?limit=2&cursor={page['next_cursor']}", headers=admin())).json()
    assert len(rest["data"]) == 1 and rest["next_cursor"] is None
    first_at = rest["data"][0]["at"]
    assert len((await client.get(f"/admin/audit?since={first_at}", headers=admin())).json()["data"]) == 3
    r = await client.get("/admin/audit?until=2000-01-01T00:00:00%2B08:00", headers=admin())
    assert r.status_code == 200 and r.json()["data"] == []
    r = await client.get("/admin/audit?since=2000-01-01T00:00:00Z&until=2999-01-01T00:00:00Z", headers=admin())
    assert len(r.json()["data"]) == 3


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("action=App.Freeze!", "action"),
        ("since=yesterday", "since"),
        ("since=2026-12-01T00:00:00", "since"),  # no time zone
        ("until=2026-02-30T00:00:00Z", "until"),  # no such day
        ("since=2026-12-02T00:00:00Z&until=2026-12-01T00:00:00Z", "until"),
        ("acton=app.freeze", "acton"),  # a misspelt filter is not silently ignored
        ("target=" + "x" * 129, "target"),
        ("limit=0", "limit"),
        ("cursor=%%%", "cursor"),
    ],
)
async def test_bad_filters_are_named(stack, query: str, field: str) -> None:
    _, client = stack
    r = await client.get(f"/admin/audit?{query}", headers=admin())
    assert r.status_code == 422, r.text
    assert r.json()["error"]["details"][0]["field"] == field
    if field not in ("limit", "cursor"):
        r = await client.get(f"/admin/audit.csv?{query}", headers=admin())
        assert r.status_code == 422 and r.json()["error"]["details"][0]["field"] == field
