"""Issue 3 acceptance 3: every auth and validation error this issue can raise (merchant guide); none writes a row."""

from __future__ import annotations

import json
import time

import pytest
from sqlalchemy import text

from tests.fixtures.merchant_client import MerchantClient, nonce
from tests.fixtures.stack import admin

ORDER = {"out_trade_no": "A-001", "amount": 1234, "subject": "Coffee", "pay_method": "ALIPAY_QR"}


async def order_rows(pay) -> int:  # type: ignore[no-untyped-def]
    async with pay.c.db.engine.connect() as conn:
        return int((await conn.execute(text("SELECT count(*) FROM pay_orders"))).scalar_one())


def code(r) -> str:  # type: ignore[no-untyped-def]
    return str(r.json()["error"]["code"])


async def test_forged_signature(pay) -> None:
    forger = MerchantClient(pay.http, pay.client.app_id, secret="not-the-secret")
    r = await forger.request("POST", "/v1/pay/orders", ORDER, verify=False)
    assert r.status_code == 401 and code(r) == "SIGNATURE_INVALID"
    pay.client.verify(r)  # errors are signed too, with the real secret
    assert await order_rows(pay) == 0


async def test_body_changed_after_signing(pay) -> None:
    body = json.dumps(ORDER).encode()
    headers = pay.client.headers("POST", "/v1/pay/orders", body)
    r = await pay.http.post("/v1/pay/orders", content=body.replace(b"1234", b"9999"), headers=headers)
    assert r.status_code == 401 and code(r) == "SIGNATURE_INVALID"
    assert await order_rows(pay) == 0


@pytest.mark.parametrize("skew", [-301, 301])
async def test_stale_or_future_timestamp(pay, skew: int) -> None:
    # relative to the server's (frozen) clock, not to the wall clock the client reads
    pay.client.clock_offset = skew + int(pay.clock.timestamp()) - int(time.time())
    r = await pay.client.request("POST", "/v1/pay/orders", ORDER)
    assert r.status_code == 401 and code(r) == "TIMESTAMP_EXPIRED"
    assert await order_rows(pay) == 0


async def test_reused_nonce(pay) -> None:
    body = json.dumps(ORDER).encode()
    n = nonce()
    first = await pay.http.post(
        "/v1/pay/orders", content=body, headers=pay.client.headers("POST", "/v1/pay/orders", body, n=n)
    )
    assert first.status_code == 201
    body2 = json.dumps({**ORDER, "out_trade_no": "A-002"}).encode()
    again = await pay.http.post(
        "/v1/pay/orders", content=body2, headers=pay.client.headers("POST", "/v1/pay/orders", body2, n=n)
    )
    assert again.status_code == 401 and code(again) == "NONCE_REUSED"
    assert await order_rows(pay) == 1


async def test_unknown_app_is_unsigned(pay) -> None:
    stranger = MerchantClient(pay.http, "A999", secret="x")
    r = await stranger.request("POST", "/v1/pay/orders", ORDER, verify=False)
    assert r.status_code == 401 and code(r) == "APP_NOT_FOUND"
    assert "Tomato-Signature" not in r.headers
    assert await order_rows(pay) == 0


async def test_missing_app_id_is_signature_invalid_naming_the_header(pay) -> None:
    r = await pay.http.get("/v1/pay/orders/P1")
    assert r.status_code == 401 and code(r) == "SIGNATURE_INVALID"
    assert "Tomato-App-Id" in r.json()["error"]["message"]
    assert "Tomato-Signature" not in r.headers
    body = json.dumps(ORDER).encode()
    headers = pay.client.headers("POST", "/v1/pay/orders", body)
    del headers["Tomato-App-Id"]
    r = await pay.http.post("/v1/pay/orders", content=body, headers=headers)
    assert r.status_code == 401 and code(r) == "SIGNATURE_INVALID" and "Tomato-App-Id" in r.text
    assert "Tomato-Signature" not in r.headers
    assert await order_rows(pay) == 0


@pytest.mark.parametrize(
    ("header", "value"),
    [
        ("Tomato-Nonce", "short"),
        ("Tomato-Nonce", "has-dash-0123456789"),
        ("Tomato-Signature", "MD5 abc"),
        ("Tomato-Signature", "HMAC-SHA256 ***"),
        ("Tomato-Timestamp", "yesterday"),
    ],
)
async def test_malformed_auth_headers_name_the_header(pay, header: str, value: str) -> None:
    body = json.dumps(ORDER).encode()
    headers = {**pay.client.headers("POST", "/v1/pay/orders", body), header: value}
    r = await pay.http.post("/v1/pay/orders", content=body, headers=headers)
    assert r.status_code == 401 and code(r) == "SIGNATURE_INVALID"
    assert header in r.json()["error"]["message"]
    assert await order_rows(pay) == 0


async def test_frozen_merchant_and_disabled_app(pay) -> None:
    mch_no = (await pay.c.merchants.app_auth(pay.client.app_id)).mch_no
    await pay.http.post(f"/admin/merchants/{mch_no}/freeze", headers=admin())
    r = await pay.client.request("POST", "/v1/pay/orders", ORDER)
    assert r.status_code == 403 and code(r) == "MERCHANT_FROZEN"
    await pay.http.post(f"/admin/merchants/{mch_no}/unfreeze", headers=admin())
    await pay.http.post(f"/admin/apps/{pay.client.app_id}/freeze", headers=admin())
    r = await pay.client.request("POST", "/v1/pay/orders", ORDER)
    assert r.status_code == 403 and code(r) == "APP_DISABLED"
    assert await order_rows(pay) == 0


async def test_disabled_pay_method(pay) -> None:
    r = await pay.http.patch(
        f"/admin/apps/{pay.client.app_id}", json={"pay_methods": ["WECHAT_NATIVE"]}, headers=admin()
    )
    assert r.status_code == 200
    r = await pay.client.request("POST", "/v1/pay/orders", ORDER)
    assert r.status_code == 403 and code(r) == "PAY_METHOD_NOT_ENABLED"
    assert await order_rows(pay) == 0


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("amount", 0),
        ("amount", 100_000_001),
        ("amount", "12"),
        ("amount", 12.5),
        ("amount", True),
        ("out_trade_no", "has space"),
        ("out_trade_no", "x" * 65),
        ("out_trade_no", ""),
        ("subject", ""),
        ("currency", "USD"),
        ("pay_method", "BITCOIN"),
        ("expire_minutes", 1441),
        ("notify_url", "ftp://x"),
        ("metadata", {f"k{i}": "v" for i in range(21)}),
        ("client_ip", "not-an-ip"),
    ],
)
async def test_out_of_range_fields(pay, field: str, value: object) -> None:
    r = await pay.client.request("POST", "/v1/pay/orders", {**ORDER, field: value})
    assert r.status_code == 422 and code(r) == "INVALID_REQUEST", r.text
    assert any(d["field"].startswith(field) for d in r.json()["error"]["details"]) or field == "amount"
    assert await order_rows(pay) == 0


async def test_app_amount_limit(pay) -> None:
    await pay.http.patch(f"/admin/apps/{pay.client.app_id}", json={"amount_limit": 1000}, headers=admin())
    r = await pay.client.request("POST", "/v1/pay/orders", ORDER)
    assert r.status_code == 422 and r.json()["error"]["details"][0]["field"] == "amount"
    assert await order_rows(pay) == 0


async def test_malformed_json(pay) -> None:
    r = await pay.client.request("POST", "/v1/pay/orders", raw=b'{"out_trade_no": ')
    assert r.status_code == 400 and code(r) == "INVALID_REQUEST"
    assert await order_rows(pay) == 0


async def test_oversized_body_refused_before_parsing(pay) -> None:
    body = b"{" + b" " * (64 * 1024) + b"}"
    r = await pay.client.request("POST", "/v1/pay/orders", raw=body)
    assert r.status_code == 413 and code(r) == "PAYLOAD_TOO_LARGE"
    # refused before the signature is checked: a garbage signature gets the same answer
    headers = {**pay.client.headers("POST", "/v1/pay/orders", b""), "Tomato-Signature": "HMAC-SHA256 AAAA"}
    r = await pay.http.post("/v1/pay/orders", content=body, headers=headers)
    assert r.status_code == 413
    assert await order_rows(pay) == 0


async def test_oversized_body_is_413_before_the_app_is_authenticated(pay) -> None:
    body = b"{" + b" " * (64 * 1024) + b"}"
    stranger = MerchantClient(pay.http, "A999", secret="x")
    r = await stranger.request("POST", "/v1/pay/orders", raw=body, verify=False)
    assert r.status_code == 413 and code(r) == "PAYLOAD_TOO_LARGE"
    assert "Tomato-Signature" not in r.headers  # the app is unknown: unsigned
    headers = pay.client.headers("POST", "/v1/pay/orders", body)
    del headers["Tomato-App-Id"]
    r = await pay.http.post("/v1/pay/orders", content=body, headers=headers)
    assert r.status_code == 413 and code(r) == "PAYLOAD_TOO_LARGE"
    assert "Tomato-Signature" not in r.headers
    assert await order_rows(pay) == 0


async def test_out_trade_no_is_naturally_idempotent(pay) -> None:
    first = await pay.client.request("POST", "/v1/pay/orders", ORDER)
    again = await pay.client.request("POST", "/v1/pay/orders", {**ORDER, "expire_minutes": 30, "currency": "CNY"})
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["order_no"] == first.json()["order_no"]
    other = await pay.client.request("POST", "/v1/pay/orders", {**ORDER, "amount": 1})
    assert other.status_code == 409 and code(other) == "OUT_TRADE_NO_CONFLICT"
    assert await order_rows(pay) == 1


async def test_idempotency_key(pay) -> None:
    key = {"Idempotency-Key": "key-1"}
    first = await pay.client.request("POST", "/v1/pay/orders", ORDER, extra=key)
    replay = await pay.client.request("POST", "/v1/pay/orders", ORDER, extra=key)
    assert first.status_code == replay.status_code == 201
    assert replay.json() == first.json()
    assert "Idempotent-Replayed" not in first.headers and replay.headers["Idempotent-Replayed"] == "true"
    other = await pay.client.request("POST", "/v1/pay/orders", {**ORDER, "out_trade_no": "B"}, extra=key)
    assert other.status_code == 409 and code(other) == "IDEMPOTENCY_KEY_CONFLICT"
    bad = await pay.client.request("POST", "/v1/pay/orders", ORDER, extra={"Idempotency-Key": "no spaces"})
    assert bad.status_code == 422 and code(bad) == "INVALID_REQUEST"
    assert await order_rows(pay) == 1


async def test_idempotency_key_is_scoped_to_method_and_path(pay) -> None:
    create_key, close_key = {"Idempotency-Key": "create-key"}, {"Idempotency-Key": "close-key"}
    a = await pay.client.request("POST", "/v1/pay/orders", ORDER, extra=create_key)
    b = await pay.client.request("POST", "/v1/pay/orders", {**ORDER, "out_trade_no": "B-001"})
    assert (a.status_code, b.status_code) == (201, 201)
    a_no, b_no = a.json()["order_no"], b.json()["order_no"]
    closed_a = await pay.client.request("POST", f"/v1/pay/orders/{a_no}/close", {}, extra=close_key)
    assert closed_a.status_code == 200 and closed_a.json()["order_no"] == a_no, closed_a.text
    # the same key and bytes on another order's close closes that order, it does not replay the first answer
    closed_b = await pay.client.request("POST", f"/v1/pay/orders/{b_no}/close", {}, extra=close_key)
    assert closed_b.status_code == 200 and closed_b.json()["order_no"] == b_no, closed_b.text
    assert closed_b.json()["status"] == "CLOSED" and "Idempotent-Replayed" not in closed_b.headers
    async with pay.c.db.engine.connect() as conn:
        status = (await conn.execute(text("SELECT status FROM pay_orders WHERE order_no = :n"), {"n": b_no})).scalar()
    assert status == "CLOSED"
    again = await pay.client.request("POST", f"/v1/pay/orders/{a_no}/close", {}, extra=close_key)
    assert again.headers["Idempotent-Replayed"] == "true" and again.json() == closed_a.json()
    # the create's key used again on another path is another key
    reused = await pay.client.request("POST", f"/v1/pay/orders/{b_no}/close", {}, extra=create_key)
    assert reused.status_code == 200 and "Idempotent-Replayed" not in reused.headers, reused.text


async def test_rate_limited_with_retry_after(pay) -> None:
    pay.c.settings.rate_limit_rps, pay.c.settings.rate_limit_burst = 1, 2
    statuses = [(await pay.client.request("GET", "/v1/pay/orders?out_trade_no=none")).status_code for _ in range(4)]
    assert statuses[:2] == [404, 404] and 429 in statuses[2:]
    r = await pay.client.request("GET", "/v1/pay/orders?out_trade_no=none")
    assert r.status_code == 429 and code(r) == "RATE_LIMITED" and int(r.headers["Retry-After"]) >= 1


async def test_rsa_app_round_trip_and_platform_key(pay) -> None:
    r = await pay.rsa_client.request("GET", "/v1/platform-key")
    assert r.status_code == 200 and r.json()["algorithm"] == "RSA-SHA256"
    assert r.json()["public_key_pem"] == pay.rsa_client.platform_public_key_pem
    r = await pay.rsa_client.create_order()
    assert r.status_code == 201
    hmac_sig = MerchantClient(pay.http, pay.rsa_client.app_id, secret="x")
    r = await hmac_sig.request("GET", "/v1/platform-key", verify=False)
    assert r.status_code == 401 and code(r) == "SIGNATURE_INVALID"


async def test_unknown_order_is_404(pay) -> None:
    r = await pay.client.request("GET", "/v1/pay/orders/P123")
    assert r.status_code == 404 and code(r) == "ORDER_NOT_FOUND"
    r = await pay.client.request("POST", "/v1/pay/orders/P123/close", {})
    assert r.status_code == 404 and code(r) == "ORDER_NOT_FOUND"


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/hook",
        "http://10.0.0.1/hook",
        "http://[::1]/hook",
        "http://169.254.169.254/",
        "http://localhost:8080/",
    ],
)
async def test_private_notify_urls_are_refused_at_creation(pay, url: str) -> None:
    r = await pay.client.request("POST", "/v1/pay/orders", {**ORDER, "notify_url": url})
    assert r.status_code == 422 and r.json()["error"]["details"][0]["field"] == "notify_url"
    r = await pay.http.patch(f"/admin/apps/{pay.client.app_id}", json={"notify_url": url}, headers=admin())
    assert r.status_code == 422
    assert await order_rows(pay) == 0


async def test_allow_listed_networks_are_accepted(pay) -> None:
    pay.c.pay.deps.webhook_allowed_networks = "127.0.0.0/8"
    r = await pay.client.request("POST", "/v1/pay/orders", {**ORDER, "notify_url": "http://127.0.0.1:9/hook"})
    assert r.status_code == 201
