"""Issue 19, the cashier page: Chinese to payers by default, English by `Accept-Language`, `?lang=` over both; the
merchant's name; a link back to the order's `return_url` once paid; the simulator's helper fields only where the
simulator is (the `cashier_sandbox_hints` setting of `tomato dev`)."""

from __future__ import annotations

import asyncio
import html
import re
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.fixtures.merchant_client import MerchantClient
from tests.fixtures.pay_stack import PayStack
from tomato.gateway.cashier.texts import TEXTS
from tomato.merchant.schemas import AppCreate, MerchantCreate

PHONE_UA = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) Mobile/15E148 Safari/604.1"
ALIPAY_UA = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AlipayClient/10.5.36"
WECHAT_UA = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) MicroMessenger/8.0.47 NetType/WIFI"
ZH, EN = TEXTS["zh"], TEXTS["en"]
HOSTILE = "<script>alert(1)</script>' onmouseover='x\"&amp;"


async def _order(client: MerchantClient, **fields: Any) -> dict[str, Any]:
    r = await client.create_order(pay_method="CASHIER", **fields)
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


def _path(order: dict[str, Any]) -> str:
    return urlsplit(order["pay_data"]["value"]).path


async def _page(pay: PayStack, order: dict[str, Any], **headers: str) -> str:
    r = await pay.http.get(_path(order), headers={"User-Agent": PHONE_UA, **headers})
    assert r.status_code == 200, r.text
    return r.text


async def test_chinese_by_default(pay: PayStack) -> None:
    order = await _order(pay.client)
    for headers in ({}, {"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.8"}, {"Accept-Language": "fr-FR, de;q=0.5"}):
        r = await pay.http.get(_path(order), headers={"User-Agent": PHONE_UA, **headers})
        assert r.status_code == 200 and r.headers["content-language"] == "zh-CN", headers
        assert "<html lang='zh-CN'>" in r.text and ZH["state_waiting"] in r.text and ZH["pay_alipay"] in r.text
        assert EN["pay_alipay"] not in r.text and EN["state_waiting"] not in r.text
        assert "Accept-Language" in r.headers["vary"]
        assert "id='lang-switch' href='?lang=en'" in r.text  # the switch to English


async def test_english_when_the_browser_prefers_it(pay: PayStack) -> None:
    order = await _order(pay.client)
    for header in ("en-US,en;q=0.9", "zh;q=0.3, en;q=0.8", "zh;q=0, *", "en-GB"):
        r = await pay.http.get(_path(order), headers={"User-Agent": PHONE_UA, "Accept-Language": header})
        assert r.headers["content-language"] == "en", header
        assert "<html lang='en'>" in r.text and EN["pay_alipay"] in r.text and EN["state_waiting"] in r.text
        assert ZH["pay_alipay"] not in r.text
    labels = re.search(r"<script type='application/json' id='labels'>(.*?)</script>", r.text, re.S)
    assert labels and "Paid. Thank you!" in labels.group(1)  # what the poller shows is English too


async def test_lang_switch_overrides_the_header_and_sticks_to_the_page_links(pay: PayStack) -> None:
    order = await _order(pay.client)
    r = await pay.http.get(_path(order), params={"lang": "en"}, headers={"Accept-Language": "zh-CN,zh;q=0.9"})
    assert r.headers["content-language"] == "en" and EN["pay_alipay"] in r.text
    assert "id='pay-alipay' href='?wallet=alipay&amp;lang=en'" in r.text  # choosing a wallet keeps English
    assert "id='lang-switch' href='?lang=zh'" in r.text
    r = await pay.http.get(_path(order), params={"lang": "zh-CN"}, headers={"Accept-Language": "en-US,en;q=0.9"})
    assert r.headers["content-language"] == "zh-CN" and ZH["pay_alipay"] in r.text
    # a language we do not speak (or junk) is no switch: the header decides
    for junk in ("fr", "*", "en;q=1", "<b>"):
        r = await pay.http.get(_path(order), params={"lang": junk}, headers={"Accept-Language": "en"})
        assert r.status_code == 200 and r.headers["content-language"] == "en", junk
        assert "<b>" not in r.text


async def test_the_not_found_page_speaks_the_payers_language(pay: PayStack) -> None:
    path = "/cashier/" + "A" * 32
    zh = await pay.http.get(path)
    en = await pay.http.get(path, headers={"Accept-Language": "en-US,en;q=0.9"})
    assert zh.status_code == en.status_code == 404
    assert ZH["not_found_title"] in zh.text and EN["not_found_title"] in en.text


async def test_the_merchants_name_is_shown(pay: PayStack) -> None:
    order = await _order(pay.client, subject="Green tea")
    page = await _page(pay, order)
    assert "<span id='merchant-name'>Demo Merchant</span>" in page


async def _hostile_client(pay: PayStack) -> MerchantClient:
    merchant = await pay.c.merchants.create_merchant(MerchantCreate(name=HOSTILE))
    created = await pay.c.merchants.create_app(merchant.mch_no, AppCreate(name="hostile"))
    assert created.secret is not None
    return MerchantClient(pay.http, created.app.app_id, secret=created.secret)


async def test_a_hostile_merchant_name_and_subject_are_escaped(pay: PayStack) -> None:
    client = await _hostile_client(pay)
    order = await _order(client, subject=HOSTILE)
    for lang in ("zh", "en"):
        page = await _page(pay, order, **{"Accept-Language": lang})
        assert "<script>alert(1)" not in page and "onmouseover='x" not in page
        escaped = "&lt;script&gt;alert(1)&lt;/script&gt;&#39; onmouseover=&#39;x&#34;&amp;amp;"
        assert f"<span id='merchant-name'>{escaped}</span>" in page
        assert f"<h1 id='subject'>{escaped}</h1>" in page and f"<title>{escaped} · " in page
        assert html.unescape(escaped) == HOSTILE


async def _status_when(pay: PayStack, order: dict[str, Any], status: str) -> None:
    async with asyncio.timeout(10):
        while (await pay.http.get(f"{_path(order)}/status")).json()["status"] != status:
            await asyncio.sleep(0.02)


async def test_the_return_url_is_linked_once_paid(pay: PayStack) -> None:
    back = 'https://shop.example/orders/1?from=cashier&tab="x"'
    order = await _order(pay.client, return_url=back)
    waiting = await _page(pay, order)
    # in the page from the start, shown by the stylesheet only when the body's state becomes `paid`
    assert "<body data-state='waiting'>" in waiting
    assert "body:not([data-state=paid]) .return{display:none}" in waiting
    r = await pay.http.get(_path(order), headers={"User-Agent": ALIPAY_UA})  # precreated at the simulator
    assert r.status_code == 302
    assert (await pay.scan(order_no=order["order_no"], result="paid")).status_code == 200
    await _status_when(pay, order, "SUCCEEDED")
    paid = await _page(pay, order)
    link = re.search(r"<a class='btn back' id='return-link' href='([^']*)' rel='noreferrer'>([^<]*)</a>", paid)
    assert link, paid
    stored = (await pay.client.request("GET", f"/v1/pay/orders/{order['order_no']}")).json()
    assert html.unescape(link.group(1)).startswith("https://shop.example/orders/1?from=cashier&tab=")
    assert '"x"' not in link.group(1) and link.group(2) == ZH["return"], stored
    assert "<body data-state='paid'>" in paid and "data-state='paid'" in paid


async def test_no_return_link_without_a_return_url_or_when_not_paid(pay: PayStack) -> None:
    order = await _order(pay.client)
    assert "id='return-link'" not in await _page(pay, order)
    closing = await _order(pay.client, return_url="https://shop.example/back")
    closed = await pay.client.request("POST", f"/v1/pay/orders/{closing['order_no']}/close", {})
    assert closed.status_code == 200, closed.text
    page = await _page(pay, closing)
    assert "data-state='closed'" in page and "id='return-link'" not in page


async def test_production_pages_carry_no_simulator_helpers(pay: PayStack) -> None:
    """Without `cashier_sandbox_hints` (production settings) nothing of the simulator shows, in any language."""
    assert pay.c.settings.cashier_sandbox_hints is False
    order = await _order(pay.client)
    for lang in ("zh", "en"):
        page = await _page(pay, order, **{"Accept-Language": lang})
        assert "name='openid'" not in page and "id='pay-wechat'" not in page and "sandbox" not in page.lower()
        assert "id='wechat-scan'" in page  # WeChat is paid by scanning the QR in WeChat
        asks = await pay.http.get(_path(order), headers={"User-Agent": WECHAT_UA, "Accept-Language": lang})
        assert "id='need-openid'" in asks.text and "<form" not in asks.text and "?openid=" not in asks.text
        assert TEXTS[lang]["openid_missing"] in asks.text
    jsapi = await pay.http.get(_path(order), params={"openid": "oPayer-1"}, headers={"User-Agent": WECHAT_UA})
    assert jsapi.status_code == 200, jsapi.text
    assert "id='jsapi-data'" in jsapi.text and "id='wx-pay'" in jsapi.text  # what WeChat needs to pay
    assert "id='jsapi-params'" not in jsapi.text and "paySign</dt>" not in jsapi.text
    assert "/sandbox/scan" not in jsapi.text and ZH["wx_outside"] in jsapi.text


async def test_the_sandbox_shows_its_helpers(pay: PayStack, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pay.c.settings, "cashier_sandbox_hints", True)
    order = await _order(pay.client)
    page = await _page(pay, order)
    assert "name='openid'" in page and ZH["openid_sandbox_label"] in page and "id='wechat-scan'" not in page
    jsapi = await pay.http.get(_path(order), params={"openid": "oPayer-1"}, headers={"User-Agent": WECHAT_UA})
    assert "id='jsapi-params'" in jsapi.text and "<code>POST /sandbox/scan</code>" in jsapi.text
