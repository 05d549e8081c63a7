"""Issue 4 acceptance 5 and issue 19: the cashier page in headless Chromium on a phone-sized viewport, in the payer's
language (Chinese unless the browser prefers English), with the merchant's name and, once paid, the way back.

The platform (gateway with the cashier, channel simulator) serves on loopback from a background thread, seeded like
`tomato dev`; the browser is Debian's Chromium driven by Playwright. Screenshots go to `test-artifacts/`.
Without /usr/bin/chromium (or Playwright) the tests skip, unless `TOMATO_REQUIRE_SERVICES=1`, which fails them.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from tests.fixtures.browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, LiveStack, need_browser
from tests.fixtures.merchant_client import MerchantClient
from tomato.gateway.cashier.render import JSAPI_FIELDS
from tomato.gateway.cashier.texts import TEXTS

pytestmark = pytest.mark.browser

PHONE = {"width": 390, "height": 844}
SAFARI_UA = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
             "Version/17.0 Mobile/15E148 Safari/604.1")  # fmt: skip
ALIPAY_UA = SAFARI_UA + " AlipayClient/10.5.36.8000 Language/zh-Hans"
WECHAT_UA = SAFARI_UA + " MicroMessenger/8.0.47(0x18002f2c) NetType/WIFI Language/zh_CN"
PAID_WITHIN_MS = 20_000  # a ceiling for the poller to see the notify, not a timing assertion


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveStack]:
    need_browser()
    stack = LiveStack(tmp_path_factory.mktemp("cashier-live"), "cashier", cashier_sandbox_hints=True)  # as `tomato dev`
    stack.start()
    try:
        yield stack
    finally:
        stack.stop()


@pytest.fixture
async def browser(live: LiveStack) -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield chromium
        finally:
            await chromium.close()


async def _phone(browser: Any, user_agent: str, locale: str = "zh-CN") -> tuple[Any, Any, list[str]]:
    """A phone-sized page with `user_agent` and `locale` (its Accept-Language); the list collects console errors
    (CSP violations among them)."""
    context = await browser.new_context(
        viewport=PHONE, user_agent=user_agent, is_mobile=True, has_touch=True, device_scale_factor=2, locale=locale
    )
    page = await context.new_page()
    problems: list[str] = []

    def console(message: Any) -> None:
        source = str(message.location.get("url", ""))
        if message.type == "error" and not source.endswith("/favicon.ico"):  # the pages have no favicon
            problems.append(f"{message.text} ({source})")

    page.on("console", console)
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    return context, page, problems


async def _create_cashier_order(live: LiveStack, **fields: Any) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=live.base_url) as http:
        client = MerchantClient(http, live.creds["app_id"], secret=live.creds["app_secret"])
        r = await client.create_order(pay_method="CASHIER", **fields)
    assert r.status_code == 201, r.text
    order: dict[str, Any] = r.json()
    assert order["status"] == "CREATED" and order["channel"] is None
    assert order["pay_data"]["type"] == "cashier_url"
    return order


async def _merchant_view(live: LiveStack, order_no: str) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=live.base_url) as http:
        client = MerchantClient(http, live.creds["app_id"], secret=live.creds["app_secret"])
        r = await client.request("GET", f"/v1/pay/orders/{order_no}")
    assert r.status_code == 200, r.text
    view: dict[str, Any] = r.json()
    return view


async def _scan(live: LiveStack, order_no: str) -> None:
    async with httpx.AsyncClient(base_url=live.sandbox_url) as sandbox:
        r = await sandbox.post("/sandbox/scan", json={"order_no": order_no, "result": "paid"})
    assert r.status_code == 200, r.text


async def _fits_the_phone(page: Any) -> None:
    assert await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), "horizontal scroll"


async def test_cashier_renders_qr_switches_by_user_agent_and_shows_paid(live: LiveStack, browser: Any) -> None:
    from playwright.async_api import expect

    order = await _create_cashier_order(live, amount=1234, subject="Tomato soup ×2")
    url = order["pay_data"]["value"]
    assert url.startswith(f"{live.base_url}/cashier/")

    # any other browser: amount, QR of the page's own URL, both choices, status waiting
    ctx, page, problems = await _phone(browser, SAFARI_UA)
    response = await page.goto(url)
    assert response is not None and response.status == 200
    await expect(page.locator("#amount")).to_have_text("¥12.34")
    await expect(page.locator("#subject")).to_have_text("Tomato soup ×2")
    qr = page.locator("#qr svg")
    await expect(qr).to_be_visible()
    box = await qr.bounding_box()
    assert box is not None and 150 <= box["width"] <= PHONE["width"] and abs(box["width"] - box["height"]) < 2
    assert await page.locator("#qr svg path").count() == 1
    await expect(page.locator("#pay-alipay")).to_be_visible()
    await expect(page.locator("#pay-wechat button")).to_be_visible()
    await expect(page.locator("#status")).to_have_attribute("data-state", "waiting")
    await _fits_the_phone(page)
    await page.screenshot(path=str(ARTIFACTS / "cashier-default.png"), full_page=True)
    assert (await _merchant_view(live, order["order_no"]))["status"] == "CREATED"

    # inside the Alipay app: the trade is precreated at Alipay and the app is sent to its pay link (a host of
    # Alipay's, which the app opens itself as its pay sheet): the hop is checked without following it, as a
    # browser route cannot stand in for the target of a redirect
    alipay_ctx, alipay, alipay_problems = await _phone(browser, ALIPAY_UA)
    hop = await alipay_ctx.request.get(url, headers={"User-Agent": ALIPAY_UA}, max_redirects=0)
    assert hop.status == 302 and re.match(r"^https://qr\.alipay\.com/sim", hop.headers["location"]), hop.headers
    await hop.dispose()
    view = await _merchant_view(live, order["order_no"])
    assert view["status"] == "PAYING" and view["channel"] == "alipay" and view["pay_method"] == "CASHIER"

    # the payer pays; the page still open in the other browser sees it by polling
    await _scan(live, order["order_no"])
    status = page.locator("#status")
    await expect(status).to_have_attribute("data-state", "paid", timeout=PAID_WITHIN_MS)
    await expect(status).to_have_text(TEXTS["zh"]["state_paid"])
    await expect(page.locator("#qr")).to_be_hidden()
    await expect(page.locator("#pay-alipay")).to_be_hidden()
    await page.screenshot(path=str(ARTIFACTS / "cashier-paid.png"), full_page=True)

    # re-opened in Alipay after payment: no redirect, the page says paid
    response = await alipay.goto(url)
    assert response is not None and response.status == 200 and alipay.url == url
    await expect(alipay.locator("#status")).to_have_attribute("data-state", "paid")
    await alipay.screenshot(path=str(ARTIFACTS / "cashier-paid-reopened-in-alipay.png"), full_page=True)
    assert (await _merchant_view(live, order["order_no"]))["status"] == "SUCCEEDED"
    assert problems == [] and alipay_problems == []  # no CSP violation, no script error
    await ctx.close()
    await alipay_ctx.close()


async def test_choosing_alipay_in_a_plain_browser_leads_to_alipay(live: LiveStack, browser: Any) -> None:
    from playwright.async_api import expect

    order = await _create_cashier_order(live)
    ctx, page, problems = await _phone(browser, SAFARI_UA)
    await page.goto(order["pay_data"]["value"])
    await page.locator("#pay-alipay").click()
    await expect(page).to_have_url(re.compile(re.escape(f"{live.sandbox_url}/alipay/gateway.do?")))
    await expect(page).to_have_title("Alipay sandbox cashier")
    assert (await _merchant_view(live, order["order_no"]))["channel"] == "alipay"
    assert problems == []
    await ctx.close()


async def test_unknown_link_is_a_not_found_page(live: LiveStack, browser: Any) -> None:
    from playwright.async_api import expect

    ctx, page, _ = await _phone(browser, ALIPAY_UA)
    response = await page.goto(f"{live.base_url}/cashier/{'A' * 32}")
    assert response is not None and response.status == 404
    await expect(page.locator("h1")).to_have_text(TEXTS["zh"]["not_found_title"])
    await ctx.close()


async def test_wechat_shows_jsapi_parameters_and_then_paid(live: LiveStack, browser: Any) -> None:
    from playwright.async_api import expect

    order = await _create_cashier_order(live, amount=880, subject="Noodles")
    url = order["pay_data"]["value"]
    ctx, page, problems = await _phone(browser, WECHAT_UA)

    # without an openid the page asks for one and starts nothing
    await page.goto(url)
    await expect(page.locator("#need-openid")).to_be_visible()
    assert (await _merchant_view(live, order["order_no"]))["status"] == "CREATED"

    await page.goto(f"{url}?openid=oSandboxPayer0001")
    await expect(page.locator("#jsapi-params")).to_be_visible()
    for field in JSAPI_FIELDS:
        await expect(page.locator(f"#jsapi-params dd[data-field='{field}']")).not_to_be_empty()
    await page.locator("#wx-pay").click()
    await expect(page.locator("#wx-note")).to_be_visible()
    await expect(page.locator("#status")).to_have_attribute("data-state", "waiting")
    await _fits_the_phone(page)
    await page.screenshot(path=str(ARTIFACTS / "cashier-wechat-jsapi.png"), full_page=True)
    view = await _merchant_view(live, order["order_no"])
    assert view["status"] == "PAYING" and view["channel"] == "wechat" and view["pay_method"] == "CASHIER"

    await _scan(live, order["order_no"])
    await expect(page.locator("#status")).to_have_attribute("data-state", "paid", timeout=PAID_WITHIN_MS)
    await expect(page.locator("#jsapi")).to_be_hidden()
    await page.screenshot(path=str(ARTIFACTS / "cashier-wechat-paid.png"), full_page=True)
    assert problems == []
    await ctx.close()


async def _precreate_in_alipay(browser: Any, url: str) -> None:
    """Opens the page as the Alipay app would, so the trade exists at the simulator (the hop is not followed)."""
    ctx, _, _ = await _phone(browser, ALIPAY_UA)
    hop = await ctx.request.get(url, headers={"User-Agent": ALIPAY_UA}, max_redirects=0)
    assert hop.status == 302, await hop.text()
    await hop.dispose()
    await ctx.close()


async def test_chinese_by_default_english_by_the_browser_and_the_switch(live: LiveStack, browser: Any) -> None:
    from playwright.async_api import expect

    zh, en = TEXTS["zh"], TEXTS["en"]
    order = await _create_cashier_order(live, amount=2500, subject="番茄炒蛋")
    url = order["pay_data"]["value"]

    ctx, page, problems = await _phone(browser, SAFARI_UA, locale="zh-CN")
    await page.goto(url)
    await expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
    await expect(page.locator("#merchant-name")).to_have_text("Demo Merchant")
    await expect(page.locator("#pay-alipay")).to_have_text(zh["pay_alipay"])
    await expect(page.locator("#status")).to_have_text(zh["state_waiting"])
    await _fits_the_phone(page)
    await page.screenshot(path=str(ARTIFACTS / "cashier-zh.png"), full_page=True)
    # the switch: English from now on, also for the wallet links
    await page.locator("#lang-switch").click()
    await expect(page.locator("html")).to_have_attribute("lang", "en")
    await expect(page.locator("#pay-alipay")).to_have_text(en["pay_alipay"])
    await expect(page.locator("#pay-alipay")).to_have_attribute("href", "?wallet=alipay&lang=en")
    await expect(page.locator("#lang-switch")).to_have_text(en["other_language"])
    await ctx.close()

    en_ctx, en_page, en_problems = await _phone(browser, SAFARI_UA, locale="en-US")  # en-US,en;q=0.9
    await en_page.goto(url)
    await expect(en_page.locator("html")).to_have_attribute("lang", "en")
    await expect(en_page.locator("#status")).to_have_text(en["state_waiting"])
    await en_page.screenshot(path=str(ARTIFACTS / "cashier-en.png"), full_page=True)
    assert problems == [] and en_problems == []
    await en_ctx.close()


async def test_once_paid_the_page_links_back_to_the_merchant(live: LiveStack, browser: Any) -> None:
    from playwright.async_api import expect

    back = f"{live.base_url}/healthz?from=cashier"
    order = await _create_cashier_order(live, amount=990, subject="Dumplings", return_url=back)
    url = order["pay_data"]["value"]
    ctx, page, problems = await _phone(browser, SAFARI_UA, locale="en-US")
    await page.goto(url)
    link = page.locator("#return-link")
    await expect(link).to_be_hidden()  # not before payment
    await _precreate_in_alipay(browser, url)
    await _scan(live, order["order_no"])
    await expect(page.locator("#status")).to_have_attribute("data-state", "paid", timeout=PAID_WITHIN_MS)
    await expect(link).to_be_visible()
    await expect(link).to_have_text(TEXTS["en"]["return"])
    await expect(link).to_have_attribute("href", back)
    await page.screenshot(path=str(ARTIFACTS / "cashier-paid-return-link.png"), full_page=True)
    await link.click()
    await expect(page).to_have_url(back)
    assert problems == []
    await ctx.close()


async def test_production_settings_show_no_simulator_helpers(live: LiveStack, browser: Any) -> None:
    from playwright.async_api import expect

    order = await _create_cashier_order(live)
    url = order["pay_data"]["value"]
    live.c.settings.cashier_sandbox_hints = False
    try:
        ctx, page, problems = await _phone(browser, SAFARI_UA)
        await page.goto(url)
        await expect(page.locator("#pay-alipay")).to_be_visible()
        await expect(page.locator("#wechat-scan")).to_be_visible()
        assert await page.locator("input[name=openid]").count() == 0
        assert "sandbox" not in (await page.content()).lower()
        wx_ctx, wx, wx_problems = await _phone(browser, WECHAT_UA)
        await wx.goto(url)
        await expect(wx.locator("#need-openid")).to_have_text(TEXTS["zh"]["openid_missing"])
        assert await wx.locator("form").count() == 0
        await wx.goto(f"{url}?openid=oSandboxPayer0002")
        assert await wx.locator("#jsapi-params").count() == 0
        await wx.locator("#wx-pay").click()
        await expect(wx.locator("#wx-note")).to_have_text(TEXTS["zh"]["wx_outside"])
        await wx.screenshot(path=str(ARTIFACTS / "cashier-wechat-production.png"), full_page=True)
        assert problems == [] and wx_problems == []
        await ctx.close()
        await wx_ctx.close()
    finally:
        live.c.settings.cashier_sandbox_hints = True
