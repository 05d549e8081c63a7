"""Issue 19, the console: sign-in into a sealed cookie, CSRF on every form, role limits, revocation at once, the
operator's app forms (a secret shown once, freeze audited), bad input, and the language switch."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from tests.fixtures.console_client import ConsoleUser
from tests.fixtures.stack import ADMIN_TOKENS
from tomato.core.crypto import SecretBox
from tomato.gateway.console import session


def user(client: httpx.AsyncClient, **headers: str) -> ConsoleUser:
    return ConsoleUser(client, headers=headers)


async def test_sign_in_sets_a_sealed_http_only_cookie_and_sign_out_ends_it(stack) -> None:
    _, client = stack
    u = user(client)
    bad = await u.sign_in(token="not-a-token")
    assert bad.status_code == 401 and 'id="login-error"' in bad.text
    r = await u.sign_in("operator")
    assert r.status_code == 303 and r.headers["location"] == "/console"
    cookie = r.headers["set-cookie"]
    assert cookie.startswith(f"{session.COOKIE}=") and "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert "Path=/console" in cookie and "Secure" not in cookie  # plain http here; https adds Secure
    assert ADMIN_TOKENS["operator"] not in cookie  # never the raw token in a readable cookie
    home = await u.get("/console")
    assert home.status_code == 200 and "<svg" in home.text
    signed_in = await client.get("/console/login?next=/console/merchants")
    assert signed_in.status_code == 303 and signed_in.headers["location"] == "/console/merchants"
    csp = home.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
    assert home.headers["x-frame-options"] == "DENY" and home.headers["cache-control"] == "no-store"
    out = await u.post("/console/logout")
    assert out.status_code == 303 and out.headers["location"] == "/console/login"
    again = await client.get("/console/merchants")
    assert again.status_code == 303 and again.headers["location"].startswith("/console/login?next=")


async def test_a_tampered_or_foreign_cookie_is_no_session(stack) -> None:
    c, client = stack
    u = user(client)
    await u.sign_in("operator")
    sealed = client.cookies.get(session.COOKIE)
    assert sealed
    flipped = sealed[:20] + ("A" if sealed[20] != "A" else "B") + sealed[21:]
    for value in (flipped, sealed[:-4], "garbage", session.seal(SecretBox.from_ring(SecretBox.generate_ring("x")),
                  session.Session(ADMIN_TOKENS["operator"], "c" * 43, int(c.clock.timestamp())))):  # fmt: skip
        client.cookies.set(session.COOKIE, value, path="/console")
        r = await client.get("/console/merchants")
        assert r.status_code == 303 and r.headers["location"].startswith("/console/login"), value
    expired = session.Session(ADMIN_TOKENS["operator"], "c" * 43, int(c.clock.timestamp()) - session.MAX_AGE_S - 1)
    client.cookies.set(session.COOKIE, session.seal(c.box, expired), path="/console")
    assert (await client.get("/console/merchants")).status_code == 303


async def test_a_form_without_its_csrf_token_is_refused(stack) -> None:
    c, client = stack
    u = user(client)
    await u.sign_in("operator")
    await u.get("/console/merchants")
    for csrf in ("", "x" * 43):
        r = await u.post("/console/merchants", {"name": "Forged Ltd"}, csrf=csrf)
        assert r.status_code == 403 and 'id="error-code">FORBIDDEN' in r.text
    assert [m.name for m in await c.merchants.list_merchants(None, 100)] == []
    ok = await u.post("/console/merchants", {"name": "Real Ltd"})
    assert ok.status_code == 303 and ok.headers["location"].endswith("?ok=merchant_created")
    assert [m.name for m in await c.merchants.list_merchants(None, 100)] == ["Real Ltd"]
    # signing in needs the sign-in page's own token too
    bare = await client.post("/console/login", data={"token": ADMIN_TOKENS["operator"]})
    assert bare.status_code == 403


async def test_roles_are_enforced_on_the_server(stack) -> None:
    c, client = stack
    finance = user(client)
    await finance.sign_in("finance")
    operator_pages = ("/console/merchants", "/console/channels", "/console/routing", "/console/deliveries")
    for path in (*operator_pages, "/console/orders", "/console/fee-plans"):
        r = await finance.get(path)
        assert r.status_code == 403 and 'id="error-code">FORBIDDEN' in r.text, path
    assert (await finance.get("/console/reconciliation")).status_code == 200
    r = await finance.post("/console/merchants", {"name": "Not yours"})
    assert r.status_code == 403 and await c.merchants.list_merchants(None, 10) == []
    assert (await finance.get("/console/audit")).status_code == 200  # both roles read the trail

    client.cookies.clear()
    operator = user(client)
    await operator.sign_in("operator")
    for path in ("/console/reconciliation", "/console/discrepancies", "/console/ledger", "/console/settlements",
                 "/console/discrepancies.csv"):  # fmt: skip
        assert (await operator.get(path)).status_code == 403, path


async def test_a_revoked_token_is_signed_out_on_its_next_request(stack) -> None:
    c, client = stack
    u = user(client)
    token = await c.merchants.create_admin_token("operator", name="night-shift")
    await u.sign_in(token=token)
    assert (await u.get("/console/merchants")).status_code == 200
    (mine,) = [t for t in await c.merchants.list_admin_tokens() if t.name == "night-shift"]
    await c.merchants.revoke_admin_token(mine.id)
    r = await u.get("/console/merchants")
    assert r.status_code == 303 and r.headers["location"] == "/console/login?reason=revoked"


async def test_operator_creates_an_app_sees_its_secret_once_and_freezing_it_is_audited(stack) -> None:
    c, client = stack
    u = user(client)
    await u.sign_in("operator")
    await u.post("/console/merchants", {"name": "Tea House"})
    (merchant,) = await c.merchants.list_merchants(None, 10)
    await u.get(f"/console/merchants/{merchant.mch_no}")
    made = await u.post(f"/console/merchants/{merchant.mch_no}/apps", {"name": "shop", "pay_methods": ["ALIPAY_QR"]})
    assert made.status_code == 303 and made.headers["location"] == "/console/reveal"  # a reload never posts again
    shown = await u.get("/console/reveal")
    assert shown.status_code == 200 and shown.headers["cache-control"] == "no-store"
    secret = re.search(r'id="new-secret">([^<]+)<', shown.text)
    app_id = re.search(r'id="new-app-id">([^<]+)<', shown.text)
    assert secret and app_id
    assert secret.group(1) not in made.headers["set-cookie"]  # sealed on its way to the page
    again = await u.get("/console/reveal")
    assert again.status_code == 410 and secret.group(1) not in again.text and 'id="already-shown"' in again.text
    auth = await c.merchants.app_auth(app_id.group(1))
    assert auth.hmac_secrets == (secret.group(1).encode(),) and auth.pay_methods == {"ALIPAY_QR"}
    page = await u.get(f"/console/apps/{app_id.group(1)}")
    assert page.status_code == 200 and secret.group(1) not in page.text  # never shown again

    frozen = await u.post(f"/console/apps/{app_id.group(1)}/freeze")
    assert frozen.status_code == 303 and frozen.headers["location"].endswith("?ok=app_freeze")
    assert (await c.merchants.get_app(app_id.group(1))).status == "FROZEN"
    from tomato.merchant.admin_schemas import AuditFilter

    (entry,) = await c.merchants.list_admin_audit(AuditFilter(action="app.freeze"), None, 10)
    assert (entry.via, entry.target, entry.actor) == ("console", app_id.group(1), "operator:bootstrap-operator")
    assert entry.before is not None and entry.after is not None
    assert (entry.before["status"], entry.after["status"]) == ("ACTIVE", "FROZEN")
    created = await c.merchants.list_admin_audit(AuditFilter(action="app.create"), None, 10)
    assert len(created) == 1 and secret.group(1) not in str(created[0].model_dump())
    listed = await u.get("/console/audit?action=app.freeze")
    assert "operator:bootstrap-operator" in listed.text and app_id.group(1) in listed.text
    csv = await u.get("/console/audit.csv?action=app.freeze")
    assert csv.status_code == 200 and csv.headers["content-type"].startswith("text/csv")
    lines = csv.content.decode("utf-8-sig").splitlines()
    assert lines[0].startswith("id,at,actor") and len(lines) == 2 and app_id.group(1) in lines[1]


@pytest.mark.parametrize(
    ("path", "form", "field"),
    [
        ("/console/merchants", {"name": ""}, "name"),
        ("/console/fee-plans", {"name": "p", "rate_ALIPAY_QR": "abc"}, "rate_ALIPAY_QR"),
        ("/console/fee-plans", {"name": "p", "rate_ALIPAY_QR": "2000000"}, "rates.ALIPAY_QR"),
        ("/console/routing", {"pay_methods": ["ALIPAY_QR"], "candidates": "CA1 x"}, "candidates"),
        ("/console/routing", {"candidates": "CA1"}, "pay_methods"),
    ],
)
async def test_bad_form_input_is_a_422_page_naming_the_field(stack, path: str, form: dict, field: str) -> None:
    _, client = stack
    u = user(client)
    await u.sign_in("operator")
    r = await u.post(path, form)
    assert r.status_code == 422, r.text
    assert 'id="error-code">INVALID_REQUEST' in r.text and field in r.text


async def test_language_follows_accept_language_and_the_switch_overrides(stack, tmp_path: Path) -> None:
    _, client = stack
    zh = await client.get("/console/login", headers={"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.8"})
    assert '<html lang="zh-CN">' in zh.text and "管理令牌" in zh.text
    en = await client.get("/console/login", headers={"Accept-Language": "en-US,en;q=0.9"})
    assert '<html lang="en">' in en.text and "Admin token" in en.text
    switched = await client.get("/console/lang/en?next=/console/login")
    assert switched.status_code == 303 and switched.headers["location"] == "/console/login"
    again = await client.get("/console/login", headers={"Accept-Language": "zh-CN"})
    assert "Admin token" in again.text  # the switch's cookie wins over the header
    outside = await client.get("/console/lang/zh?next=https://evil.example/")
    assert outside.headers["location"] == "/console"  # never an open redirect


async def test_operator_creates_and_revokes_a_token_and_its_session_ends(stack) -> None:
    c, client = stack
    admin = user(client)
    await admin.sign_in("operator")
    await admin.get("/console/tokens")
    posted = await admin.post("/console/tokens", {"role": "finance", "name": "auditor"})
    assert posted.status_code == 303 and posted.headers["location"] == "/console/reveal"
    made = await admin.get("/console/reveal")
    assert made.status_code == 200 and made.headers["cache-control"] == "no-store"
    token = re.search(r'id="new-token">([^<]+)<', made.text)
    token_id = re.search(r'id="new-token-id">([^<]+)<', made.text)
    assert token and token_id and await c.merchants.admin_role(token.group(1)) == "finance"
    listed = await admin.get("/console/tokens")
    assert token_id.group(1) in listed.text and token.group(1) not in listed.text  # the plaintext only once
    assert token.group(1) not in (await admin.get("/console/reveal")).text
    bad = await admin.post("/console/tokens", {"role": "root", "name": "x"})
    assert bad.status_code == 422 and "role" in bad.text

    async with httpx.AsyncClient(transport=client._transport, base_url=str(client.base_url)) as other:
        holder = user(other)
        await holder.sign_in(token=token.group(1))
        assert (await holder.get("/console/ledger")).status_code == 200
        revoked = await admin.post(f"/console/tokens/{token_id.group(1)}/revoke")
        assert revoked.status_code == 303 and revoked.headers["location"].endswith("?ok=token_revoked")
        ended = await holder.get("/console/ledger")
        assert ended.status_code == 303 and ended.headers["location"] == "/console/login?reason=revoked"
    from tomato.merchant.admin_schemas import AuditFilter

    (entry,) = await c.merchants.list_admin_audit(AuditFilter(action="token.create"), None, 10)
    assert entry.via == "console" and token.group(1) not in str(entry.model_dump())


async def test_an_unknown_console_path_is_a_404_page(stack) -> None:
    _, client = stack
    r = await client.get("/console/no-such-page", headers={"Accept-Language": "zh-CN"})
    assert r.status_code == 404 and r.headers["content-type"].startswith("text/html") and "页面不存在" in r.text
    slash = await client.get("/console/")
    assert slash.status_code == 303 and slash.headers["location"] == "/console"


async def test_operator_reads_a_failed_delivery_with_its_attempts_and_resends_it(stack) -> None:
    from datetime import UTC, datetime

    from tomato.core.outbox import OutboxEvent
    from tomato.merchant.admin_schemas import AuditFilter
    from tomato.notice.models import Delivery, DeliveryAttempt

    c, client = stack
    at = datetime(2026, 12, 5, 1, 2, 3, tzinfo=UTC)
    async with c.db.uow() as uow:
        uow.session.add(OutboxEvent(id="E42", seq=42, event_type="pay.succeeded", aggregate_type="order",  # its event
                                    aggregate_id="P42", app_id="A1", payload="{}", created_at=at,
                                    published_at=at))  # fmt: skip
        uow.session.add(Delivery(id="D42", seq=42, event_id="E42", event_type="pay.succeeded", app_id="A1", mch_no="M1",
                                 url="https://shop.example/hook", status="FAILED", attempts=1, round_start=0,
                                 last_status=500, last_error="HTTP_500", event_created_at=at, created_at=at,
                                 updated_at=at, finished_at=at))  # fmt: skip
        uow.session.add(DeliveryAttempt(id=1, delivery_id="D42", attempt_no=1, started_at=at, latency_ms=35,
                                        http_status=500, response_body="<oops>", error_class="HTTP_500",
                                        error_message=None, succeeded=False))  # fmt: skip
        await uow.commit()
    u = user(client)
    await u.sign_in("operator")
    listed = await u.get("/console/deliveries?status=FAILED&mch_no=M1")
    assert 'href="/console/deliveries/D42"' in listed.text
    assert 'href="/console/deliveries/D42"' not in (await u.get("/console/deliveries?status=SUCCEEDED")).text
    assert (await u.get("/console/deliveries?status=BOGUS")).status_code == 422
    detail = await u.get("/console/deliveries/D42")
    assert "&lt;oops&gt;" in detail.text and "35 ms" in detail.text  # the merchant's answer, escaped
    resent = await u.post("/console/deliveries/D42/resend")
    assert resent.status_code == 303 and resent.headers["location"] == "/console/deliveries/D42?ok=resent"
    assert (await c.merchants.list_admin_audit(AuditFilter(action="delivery.resend"), None, 5))[0].target == "D42"
    missing = await u.get("/console/deliveries/D404")
    assert missing.status_code == 404 and "DELIVERY_NOT_FOUND" in missing.text


async def test_a_revealed_secret_belongs_to_its_session(stack) -> None:
    _, client = stack
    u = user(client)
    await u.sign_in("operator")
    await u.get("/console/tokens")
    posted = await u.post("/console/tokens", {"role": "operator", "name": "night"})
    sealed = client.cookies.get("tomato_console_reveal", path="/console/reveal")
    assert posted.status_code == 303 and sealed
    client.cookies.delete("tomato_console_reveal", path="/console/reveal")

    async with httpx.AsyncClient(transport=client._transport, base_url=str(client.base_url)) as other:
        thief = user(other)
        await thief.sign_in("operator")
        other.cookies.set("tomato_console_reveal", sealed, path="/console/reveal")
        stolen = await thief.get("/console/reveal")
        assert stolen.status_code == 410 and 'id="new-token"' not in stolen.text  # sealed for the other session
    client.cookies.set("tomato_console_reveal", sealed, path="/console/reveal")
    mine = await u.get("/console/reveal")
    assert mine.status_code == 200 and 'id="new-token"' in mine.text
