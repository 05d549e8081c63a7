"""Issue 4, cashier: the hosted page of CASHIER orders, in-process against the Alipay simulator."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import timedelta
from urllib.parse import urlsplit

import httpx
import pytest
import qrcode
import qrcode.image.svg

from tests.fixtures.pay_stack import SANDBOX_URL
from tests.fixtures.stack import admin
from tomato.channel.sandbox import alipay_simulator
from tomato.core.errors import ChannelError
from tomato.gateway.cashier import render, states
from tomato.pay.service import CashierStart

ALIPAY_UA = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AlipayClient/10.5.36"
WECHAT_UA = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) MicroMessenger/8.0.47 NetType/WIFI"
PHONE_UA = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) Mobile/15E148 Safari/604.1"


async def _cashier_order(pay, **fields) -> dict:  # type: ignore[no-untyped-def]
    r = await pay.client.create_order(pay_method="CASHIER", **fields)
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


def _path(order: dict) -> str:  # type: ignore[type-arg]
    return urlsplit(order["pay_data"]["value"]).path


async def _order(pay, order_no: str) -> dict:  # type: ignore[no-untyped-def]
    return (await pay.client.request("GET", f"/v1/pay/orders/{order_no}")).json()  # type: ignore[no-any-return]


async def _status_when(pay, order: dict, status: str) -> dict:  # type: ignore[no-untyped-def,type-arg]
    """Polls the page's status endpoint until the order reaches `status` (the channel notify is asynchronous)."""
    async with asyncio.timeout(10):
        while True:
            r = await pay.http.get(f"{_path(order)}/status")
            assert r.status_code == 200 and r.headers["cache-control"] == "no-store", r.text
            if r.json()["status"] == status:
                return r.json()  # type: ignore[no-any-return]
            await asyncio.sleep(0.02)


@pytest.fixture
def sandbox_hints(pay, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    """The page as `tomato dev` serves it: with the simulator's helper fields."""
    monkeypatch.setattr(pay.c.settings, "cashier_sandbox_hints", True)


def _assert_headers(r: httpx.Response) -> str:
    """The security headers of every cashier page; returns the script nonce."""
    csp = r.headers["content-security-policy"]
    nonce = re.search(r"script-src 'nonce-([A-Za-z0-9_-]+)'", csp)
    assert nonce, csp
    assert "default-src 'none'" in csp and "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
    assert r.headers["x-frame-options"] == "DENY"
    assert r.headers["referrer-policy"] == "no-referrer"
    assert r.headers["cache-control"] == "no-store"
    scripts = re.findall(r"<script([^>]*)>", r.text)
    executable = [s for s in scripts if "application/json" not in s]
    assert executable and all(f"nonce='{nonce.group(1)}'" in s for s in executable)
    return nonce.group(1)


async def test_cashier_order_starts_created_with_a_cashier_url(pay) -> None:
    order = await _cashier_order(pay, amount=123456)
    assert order["status"] == "CREATED" and order["channel"] is None and order["pay_method"] == "CASHIER"
    assert order["pay_data"]["type"] == "cashier_url"
    url = order["pay_data"]["value"]
    assert re.fullmatch(r"http://tomato\.test/cashier/[A-Za-z0-9_-]{32,}", url), url
    other = await _cashier_order(pay)
    assert other["pay_data"]["value"] != url


async def test_default_browser_sees_amount_qr_and_both_choices(pay, sandbox_hints: None) -> None:
    order = await _cashier_order(pay, amount=123456, subject="Green tea")
    r = await pay.http.get(_path(order), headers={"User-Agent": PHONE_UA})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    nonce = _assert_headers(r)
    assert "¥</span>1,234.56" in r.text and "Green tea" in r.text and order["order_no"] in r.text
    assert "name='viewport'" in r.text
    assert "id='pay-alipay' href='?wallet=alipay'" in r.text and "id='pay-wechat'" in r.text
    assert "name='wallet' value='wechat'" in r.text and "name='openid'" in r.text
    assert "data-state='waiting'" in r.text and f"data-url='{_path(order)}/status'" in r.text
    # the QR encodes the page's own URL: the same matrix as a QR made here from the cashier_url
    expected = qrcode.make(order["pay_data"]["value"], image_factory=qrcode.image.svg.SvgPathImage, border=2)
    d = re.search(r'<path d="([^"]+)"', expected.to_string(encoding="unicode")).group(1)  # type: ignore[union-attr]
    svg = re.search(r"<div id='qr'[^>]*>(<svg.*?</svg>)</div>", r.text, re.S)
    assert svg and f'd="{d}"' in svg.group(1)
    # opening the page starts nothing
    assert (await _order(pay, order["order_no"]))["status"] == "CREATED"
    second = await pay.http.get(_path(order))
    assert _assert_headers(second) != nonce


async def test_alipay_app_redirects_to_alipay_and_the_order_is_paid(pay) -> None:
    order = await _cashier_order(pay, amount=990)
    r = await pay.http.get(_path(order), headers={"User-Agent": ALIPAY_UA})
    assert r.status_code == 302, r.text
    location = r.headers["location"]
    # inside the Alipay app: the trade is precreated at Alipay and the app is sent to its pay link
    trade = alipay_simulator(pay.sandbox).book.find_by_order_no(order["order_no"])
    assert trade is not None and trade.amount == 990 and location == trade.extra["qr_code"]
    _assert_headers(r)
    got = await _order(pay, order["order_no"])
    assert got["status"] == "PAYING" and got["channel"] == "alipay"
    assert got["pay_method"] == "CASHIER" and got["pay_data"] == order["pay_data"]
    # opening the page again in Alipay reuses the attempt
    again = await pay.http.get(_path(order), headers={"User-Agent": ALIPAY_UA})
    assert again.status_code == 302 and again.headers["location"] == location

    status = await pay.http.get(f"{_path(order)}/status")
    assert status.json() == {"status": "PAYING", "state": "waiting", "paid_at": None}
    scan = await pay.scan(order_no=order["order_no"], result="paid")
    assert scan.status_code == 200, scan.text
    body = await _status_when(pay, order, "SUCCEEDED")
    assert body["state"] == "paid" and body["paid_at"]
    # a paid order: the page says so, in any browser, and no longer offers to pay
    for ua in (ALIPAY_UA, PHONE_UA):
        page = await pay.http.get(_path(order), headers={"User-Agent": ua})
        assert page.status_code == 200 and "data-state='paid'" in page.text
        assert "id='pay-alipay'" not in page.text and "id='qr'" not in page.text


async def test_desktop_wallet_choice_redirects_too(pay) -> None:
    order = await _cashier_order(pay)
    r = await pay.http.get(_path(order), params={"wallet": "alipay"})
    assert r.status_code == 302 and r.headers["location"].startswith(f"{SANDBOX_URL}/alipay/gateway.do?")


async def test_wechat_without_openid_asks_for_it(pay, sandbox_hints: None) -> None:
    order = await _cashier_order(pay)
    r = await pay.http.get(_path(order), headers={"User-Agent": WECHAT_UA})
    assert r.status_code == 200 and "id='need-openid'" in r.text and "?openid=" in r.text
    _assert_headers(r)
    assert (await _order(pay, order["order_no"]))["status"] == "CREATED"


async def test_wechat_without_a_channel_is_a_friendly_error(pay) -> None:
    await pay.http.post(f"/admin/channel-accounts/{pay.accounts['wechat']}/disable", headers=admin())
    order = await _cashier_order(pay)
    r = await pay.http.get(_path(order), params={"openid": "oSandboxPayer1"}, headers={"User-Agent": WECHAT_UA})
    assert r.status_code == 503 and r.headers["content-type"].startswith("text/html")
    assert "data-code='NO_CHANNEL_AVAILABLE'" in r.text and "Traceback" not in r.text
    _assert_headers(r)


async def test_wechat_renders_the_jsapi_parameters(pay, sandbox_hints: None) -> None:
    order = await _cashier_order(pay)
    r = await pay.http.get(_path(order), params={"openid": "oSandboxPayer1"}, headers={"User-Agent": WECHAT_UA})
    assert r.status_code == 200, r.text
    for field in render.JSAPI_FIELDS:
        assert f"<dt>{field}</dt>" in r.text
    assert "id='wx-pay'" in r.text and "id='jsapi-data'" in r.text
    got = await _order(pay, order["order_no"])
    assert got["status"] == "PAYING" and got["channel"] == "wechat"
    assert (await pay.scan(order_no=order["order_no"], result="paid")).status_code == 200
    assert (await _status_when(pay, order, "SUCCEEDED"))["state"] == "paid"


async def test_wechat_page_shows_the_jsapi_parameters_escaped(
    pay, monkeypatch: pytest.MonkeyPatch, sandbox_hints: None
) -> None:
    """The page side of JSAPI, whatever the WeChat channel answers (here: a stand-in for start_cashier)."""
    order = await _cashier_order(pay)
    token = _path(order).rsplit("/", 1)[1]
    view = await pay.c.pay.cashier_order(token)
    params = {"appId": "wx<b>", "timeStamp": "1700000000", "nonceStr": "</script><script>alert(1)</script>",
              "package": "prepay_id=wx1&x=<y>", "signType": "RSA", "paySign": "c2ln'\""}  # fmt: skip
    calls: list[tuple[str, str, str | None]] = []

    async def fake_start(token_: str, wallet: str, openid: str | None, *, in_app: bool = False) -> CashierStart:
        calls.append((token_, wallet, openid))
        assert in_app  # opened inside WeChat
        return CashierStart(view.model_copy(update={"status": "PAYING", "channel": "wechat"}),
                            {"type": "jsapi", "value": params})  # fmt: skip

    monkeypatch.setattr(pay.c.pay, "start_cashier", fake_start)
    r = await pay.http.get(_path(order), params={"openid": "oPayer-1"}, headers={"User-Agent": WECHAT_UA})
    assert r.status_code == 200 and calls == [(token, "wechat", "oPayer-1")]
    _assert_headers(r)
    assert "<dd data-field='appId'>wx&lt;b&gt;</dd>" in r.text and "id='wx-pay'" in r.text
    data = re.search(r"<script type='application/json' id='jsapi-data'>(.*?)</script>", r.text, re.S)
    assert data and json.loads(data.group(1)) == params
    assert "</script><script>alert(1)" not in r.text
    assert "data-state='waiting'" in r.text


async def test_no_channel_is_a_friendly_error_page(pay) -> None:
    order = await _cashier_order(pay)
    await pay.c.channels.set_status(pay.accounts["alipay"], "DISABLED")
    r = await pay.http.get(_path(order), headers={"User-Agent": ALIPAY_UA})
    assert r.status_code == 503 and r.headers["content-type"].startswith("text/html")
    assert "data-code='NO_CHANNEL_AVAILABLE'" in r.text and "Traceback" not in r.text
    _assert_headers(r)
    assert (await _order(pay, order["order_no"]))["status"] == "CREATED"


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [(ChannelError("the channel did not accept the order (TIMEOUT: secret detail)"), 502, "CHANNEL_ERROR"),
     (RuntimeError("secret detail"), 500, "INTERNAL_ERROR")],
)  # fmt: skip
async def test_start_failures_are_friendly_error_pages(
    pay, monkeypatch: pytest.MonkeyPatch, error: Exception, status: int, code: str
) -> None:
    order = await _cashier_order(pay)

    async def failing(*_args: object, **_kwargs: object) -> None:
        raise error

    monkeypatch.setattr(pay.c.pay, "start_cashier", failing)
    r = await pay.http.get(_path(order), headers={"User-Agent": ALIPAY_UA})
    assert r.status_code == status and f"data-code='{code}'" in r.text
    assert "Traceback" not in r.text and "secret detail" not in r.text
    assert r.headers["x-request-id"] in r.text
    _assert_headers(r)


async def test_expired_order_shows_expired_and_starts_nothing(pay) -> None:
    order = await _cashier_order(pay, expire_minutes=5)
    pay.clock.advance(timedelta(minutes=6))
    r = await pay.http.get(_path(order), headers={"User-Agent": ALIPAY_UA})
    assert r.status_code == 200 and "data-state='expired'" in r.text and "id='qr'" not in r.text
    assert (await pay.c.pay.cashier_order(_path(order).rsplit("/", 1)[1])).status == "CREATED"
    await pay.c.pay.close_expired_orders()
    status = (await pay.http.get(f"{_path(order)}/status")).json()
    assert status == {"status": "CLOSED", "state": "expired", "paid_at": None}


async def test_closed_before_expiry_shows_closed(pay) -> None:
    order = await _cashier_order(pay)
    closed = await pay.client.request("POST", f"/v1/pay/orders/{order['order_no']}/close", {})
    assert closed.status_code == 200 and closed.json()["status"] == "CLOSED", closed.text
    assert (await pay.http.get(f"{_path(order)}/status")).json()["state"] == "closed"
    page = await pay.http.get(_path(order))
    assert "data-state='closed'" in page.text and "id='choices'" not in page.text


async def test_unknown_token_is_a_404_page(pay) -> None:
    for path in ("/cashier/" + "A" * 32, "/cashier/bad%20token", "/cashier/short"):
        r = await pay.http.get(path, headers={"User-Agent": ALIPAY_UA})
        assert r.status_code == 404 and r.headers["content-type"].startswith("text/html"), path
        assert "支付链接不存在" in r.text  # Chinese by default
        _assert_headers(r)
    status = await pay.http.get("/cashier/" + "A" * 32 + "/status")
    assert status.status_code == 404 and status.json()["error"]["code"] == "ORDER_NOT_FOUND"


async def test_subject_is_escaped(pay) -> None:
    evil = "<script>alert(1)</script>' onload='x\"&amp;"
    order = await _cashier_order(pay, subject=evil)
    r = await pay.http.get(_path(order))
    assert r.status_code == 200
    assert "<script>alert(1)" not in r.text and "onload='x" not in r.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;&#39; onload=&#39;x&#34;&amp;amp;" in r.text


def test_amounts_are_formatted_from_fen_without_floats() -> None:
    assert [render.format_yuan(f) for f in (1, 10, 100, 123456, 100000000)] == [
        "0.01", "0.10", "1.00", "1,234.56", "1,000,000.00",
    ]  # fmt: skip
    assert render.format_yuan(2**60 + 1) == f"{(2**60 + 1) // 100:,}.{(2**60 + 1) % 100:02d}"


def test_wallet_detection() -> None:
    assert states.detect_wallet(ALIPAY_UA) == "alipay"
    assert states.detect_wallet(WECHAT_UA) == "wechat"
    assert states.detect_wallet(PHONE_UA) is None
    assert states.detect_wallet("") is None
