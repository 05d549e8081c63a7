"""Issue 19, operator safety: admin tokens listed and revoked through the API, a revoked token refused at once."""

from __future__ import annotations

import hashlib

from tests.fixtures.stack import ADMIN_TOKENS, admin


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_a_token_revoked_through_the_api_gets_401_on_its_next_request(stack) -> None:
    _, client = stack
    r = await client.post("/admin/tokens", json={"role": "operator", "name": "alice"}, headers=admin())
    assert r.status_code == 201, r.text
    created = r.json()
    token, token_id = created["token"], created["id"]
    assert token_id.startswith("tok_") and created["revoked_at"] is None and created["name"] == "alice"
    assert (await client.get("/admin/merchants", headers=bearer(token))).status_code == 200

    r = await client.post(f"/admin/tokens/{token_id}/revoke", headers=admin())
    assert r.status_code == 200, r.text
    assert r.json()["id"] == token_id and r.json()["revoked_at"] is not None

    r = await client.get("/admin/merchants", headers=bearer(token))
    assert r.status_code == 401 and r.json()["error"]["code"] == "UNAUTHENTICATED"
    # the list still shows it, revoked; the other tokens keep working
    listed = {t["id"]: t for t in (await client.get("/admin/tokens", headers=admin())).json()["data"]}
    assert listed[token_id]["revoked_at"] is not None
    assert sum(t["revoked_at"] is None for t in listed.values()) == 2  # the two bootstrap tokens


async def test_revoking_twice_or_an_unknown_token_is_refused(stack) -> None:
    _, client = stack
    token_id = (await client.post("/admin/tokens", json={"role": "finance", "name": "bob"}, headers=admin())).json()[
        "id"
    ]
    assert (await client.post(f"/admin/tokens/{token_id}/revoke", headers=admin())).status_code == 200
    r = await client.post(f"/admin/tokens/{token_id}/revoke", headers=admin())
    assert r.status_code == 409 and r.json()["error"]["code"] == "ORDER_STATE_CONFLICT"
    r = await client.post("/admin/tokens/tok_0000000000000000/revoke", headers=admin())
    assert r.status_code == 404 and r.json()["error"]["code"] == "TOKEN_NOT_FOUND"
    r = await client.post("/admin/tokens/nope/revoke", headers=admin())
    assert r.status_code == 422 and r.json()["error"]["details"][0]["field"] == "token_id"


async def test_a_token_may_revoke_itself(stack) -> None:
    _, client = stack
    created = (await client.post("/admin/tokens", json={"role": "operator", "name": "me"}, headers=admin())).json()
    r = await client.post(f"/admin/tokens/{created['id']}/revoke", headers=bearer(created["token"]))
    assert r.status_code == 200
    assert (await client.get("/admin/tokens", headers=bearer(created["token"]))).status_code == 401
    # the audit row still names who acted
    rows = (await client.get(f"/admin/audit?action=token.revoke&target={created['id']}", headers=admin())).json()
    assert [e["actor"] for e in rows["data"]] == ["operator:me"]


async def test_the_list_never_shows_a_secret_or_hash_and_pages(stack) -> None:
    _, client = stack
    tokens = []
    for i in range(3):
        r = await client.post("/admin/tokens", json={"role": "finance", "name": f"f{i}"}, headers=admin())
        tokens.append(r.json()["token"])
    r = await client.get("/admin/tokens?limit=2", headers=admin())
    assert r.status_code == 200
    page1 = r.json()
    assert len(page1["data"]) == 2 and page1["next_cursor"]
    seen = [t["id"] for t in page1["data"]]
    while page1["next_cursor"]:
        page1 = (await client.get(f"/admin/tokens?limit=2&cursor={page1['next_cursor']}", headers=admin())).json()
        seen += [t["id"] for t in page1["data"]]
    assert len(seen) == len(set(seen)) == 5  # two bootstrap tokens and three new ones, each once
    everything = (await client.get("/admin/tokens?limit=100", headers=admin())).text
    for token in [*tokens, *ADMIN_TOKENS.values()]:
        assert token not in everything
        assert hashlib.sha256(token.encode()).hexdigest() not in everything
    for item in (await client.get("/admin/tokens?limit=100", headers=admin())).json()["data"]:
        assert set(item) == {"id", "role", "name", "created_at", "revoked_at"}


async def test_only_operators_manage_tokens_and_bad_input_is_named(stack) -> None:
    _, client = stack
    operator_id = (await client.get("/admin/tokens", headers=admin())).json()["data"][0]["id"]
    r = await client.post(f"/admin/tokens/{operator_id}/revoke", headers=admin("finance"))
    assert r.status_code == 403 and r.json()["error"]["code"] == "FORBIDDEN"
    assert (await client.get("/admin/tokens", headers=admin("finance"))).status_code == 403
    r = await client.post("/admin/tokens", json={"role": "operator", "name": "x"}, headers=admin("finance"))
    assert r.status_code == 403
    assert (await client.get("/admin/tokens")).status_code == 401
    r = await client.post("/admin/tokens", json={"role": "root", "name": "x"}, headers=admin())
    assert r.status_code == 422 and r.json()["error"]["details"][0]["field"] == "role"
    r = await client.post("/admin/tokens", json={"role": "operator", "name": ""}, headers=admin())
    assert r.status_code == 422 and r.json()["error"]["details"][0]["field"] == "name"
    r = await client.post("/admin/tokens", json={"role": "operator"}, headers=admin())
    assert r.status_code == 422 and r.json()["error"]["details"][0]["field"] == "name"
    r = await client.get("/admin/tokens?cursor=%%%", headers=admin())
    assert r.status_code == 422 and r.json()["error"]["details"][0]["field"] == "cursor"
