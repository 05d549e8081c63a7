"""Issue 19 acceptance 2 and 4 (console half), in headless Debian Chromium driven by Playwright.

The platform (gateway with the console, channel simulator) serves on loopback from a background thread, seeded like
`tomato dev`. Its clock (shared with the simulator) first runs a day behind, so the payments made then belong to
yesterday's business date; set back to the present, finance reconciles yesterday. Screenshots go to
`TOMATO_SCREENSHOT_DIR` (docs/img when refreshing the guide's pictures) or the test's temporary directory.
Without /usr/bin/chromium (or Playwright) the tests skip, unless `TOMATO_REQUIRE_SERVICES=1`, which fails them.
"""

from __future__ import annotations

import asyncio
import os
import re
import time
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from tests.fixtures.browser import LiveStack, ShiftedClock, chromium, need_browser
from tests.fixtures.merchant_client import MerchantClient
from tomato.bootstrap import Container

pytestmark = pytest.mark.browser

DAY = timedelta(days=1)
DESKTOP = {"width": 1280, "height": 860}
TZ = ZoneInfo("Asia/Shanghai")


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveStack]:
    need_browser()

    def prepare(c: Container) -> None:
        c.reconciliation.deps.suspense_minutes = 0  # the day's payments are all well inside it

    stack = LiveStack(tmp_path_factory.mktemp("console-live"), "console", clock=ShiftedClock(), prepare=prepare)
    stack.start()
    try:
        yield stack
    finally:
        stack.stop()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    chosen = os.environ.get("TOMATO_SCREENSHOT_DIR")
    path = Path(chosen) if chosen else tmp_path_factory.mktemp("console-screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture
async def browser(live: LiveStack) -> AsyncIterator[Any]:
    async with chromium() as launched:
        yield launched


async def _page(browser: Any, lang: str = "en-US") -> tuple[Any, Any, list[str]]:
    """A desktop page; the list collects console errors (CSP violations among them). Confirm dialogs are accepted."""
    context = await browser.new_context(viewport=DESKTOP, locale=lang)
    page = await context.new_page()
    problems: list[str] = []

    def console(message: Any) -> None:
        source = str(message.location.get("url", ""))
        provoked = ("status of 403", "status of 410")  # the refusal and the reload of a shown secret, on purpose
        expected = source.endswith("/favicon.ico") or any(p in message.text for p in provoked)
        if message.type == "error" and not expected:
            problems.append(f"{message.text} ({source})")

    page.on("console", console)
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    page.on("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))
    return context, page, problems


async def _sign_in(page: Any, live: LiveStack, role: str) -> None:
    from playwright.async_api import expect

    await page.goto(f"{live.base_url}/console/login")
    await page.locator("#token").fill(live.creds["admin_tokens"][role])
    await page.locator("#sign-in").click()
    await expect(page.locator("#who")).to_have_text(f"{role}:dev-{role}")


async def _until_status(client: MerchantClient, path: str, status: str) -> None:
    deadline = time.monotonic() + 20
    while (got := (await client.request("GET", path)).json()["status"]) != status:
        assert got in ("CREATED", "PAYING", status) and time.monotonic() < deadline, f"{path} is {got}"
        await asyncio.sleep(0.05)


async def _yesterdays_payments(live: LiveStack, amounts: list[int]) -> tuple[str, list[str]]:
    """Pays WeChat orders with the clock a day behind; returns yesterday's business date and the order numbers."""
    live.clock.offset = -DAY
    try:
        async with (
            httpx.AsyncClient(base_url=live.base_url, timeout=30) as http,
            httpx.AsyncClient(base_url=live.sandbox_url, timeout=30) as sandbox,
        ):
            client = MerchantClient(http, live.creds["app_id"], secret=live.creds["app_secret"], clock_offset=-86_400)
            orders = []
            for amount in amounts:
                r = await client.create_order(amount=amount, pay_method="WECHAT_NATIVE")
                assert r.status_code == 201, r.text
                order_no = r.json()["order_no"]
                scan = await sandbox.post("/sandbox/scan", json={"order_no": order_no, "result": "paid"})
                assert scan.status_code == 200, scan.text
                await _until_status(client, f"/v1/pay/orders/{order_no}", "SUCCEEDED")
                orders.append(order_no)
            day = live.clock.now().astimezone(TZ).date().isoformat()
            faults = [{"type": "AMOUNT_MISMATCH", "order_no": orders[0]}]
            body = {"channel": "wechat", "date": day, "faults": faults}
            r = await sandbox.post("/sandbox/statement-faults", json=body)
            assert r.status_code == 200, r.text
    finally:
        live.clock.offset = timedelta(0)
    return day, orders


async def _todays_payments(live: LiveStack, orders: list[tuple[str, int, str]]) -> None:
    async with (
        httpx.AsyncClient(base_url=live.base_url, timeout=30) as http,
        httpx.AsyncClient(base_url=live.sandbox_url, timeout=30) as sandbox,
    ):
        client = MerchantClient(http, live.creds["app_id"], secret=live.creds["app_secret"])
        for method, amount, result in orders:
            r = await client.create_order(amount=amount, pay_method=method)
            assert r.status_code == 201, r.text
            order_no = r.json()["order_no"]
            scan = await sandbox.post("/sandbox/scan", json={"order_no": order_no, "result": result})
            assert scan.status_code == 200, scan.text
            if result == "paid":  # a refusal sends no notify: the order stays PAYING until queried
                await _until_status(client, f"/v1/pay/orders/{order_no}", "SUCCEEDED")


async def test_finance_reconciles_yesterday_resolves_a_discrepancy_and_sees_it_audited(
    live: LiveStack, browser: Any, shots: Path
) -> None:
    from playwright.async_api import expect

    day, orders = await _yesterdays_payments(live, [1_280, 2_560, 990])
    assert day == (datetime.now(TZ).date() - DAY).isoformat()
    ctx, page, problems = await _page(browser)
    await _sign_in(page, live, "finance")

    # yesterday is the reconciliation page's default date; run the WeChat account's batch from its form
    await page.locator("nav a[href='/console/reconciliation']").click()
    await expect(page.locator("#batch-date input[name=date]")).to_have_value(day)
    form = page.locator("#run-recon")
    options = await form.locator("select[name=channel_account_id] option").all_text_contents()
    choice = next(o for o in options if "· wechat ·" in o)
    await form.locator("select[name=channel_account_id]").select_option(label=choice)
    await form.locator("button[type=submit]").click()
    await expect(page.locator("h1 .status")).to_have_text("discrepancies")
    await expect(page.locator("#summary")).to_contain_text("Amount differs")
    rows = page.locator("#discrepancies tbody tr[data-discrepancy]")
    await expect(rows).to_have_count(1)
    await expect(rows.first).to_contain_text(orders[0])
    await page.screenshot(path=str(shots / "console-batch.png"), full_page=True)
    await page.goto(f"{live.base_url}/console/reconciliation?date={day}")
    await expect(page.locator("#batches tbody tr[data-batch]")).to_have_count(1)
    await page.screenshot(path=str(shots / "console-reconciliation.png"), full_page=True)

    # the discrepancy list, filtered, then the resolution form with a note
    await page.goto(f"{live.base_url}/console/discrepancies?type=AMOUNT_MISMATCH&status=OPEN")
    await page.locator("#discrepancies tbody tr[data-discrepancy] a").first.click()
    await page.locator("input[name=action][value=ACCEPT_CHANNEL]").check()
    note = "WeChat statement confirmed: +1 fen, booked as adjustment"
    await page.locator("#note").fill(note)
    await page.screenshot(path=str(shots / "console-resolve.png"), full_page=True)
    await page.locator("#resolve-submit").click()
    await expect(page.locator("#flash")).to_be_visible()
    await expect(page.locator("#discrepancy-status")).to_have_text("resolved")
    await expect(page.locator("#resolution-note")).to_have_text(note)
    discrepancy_id = page.url.split("/console/discrepancies/")[1].split("?")[0]

    # the audit list shows it, done by the finance token, via the console
    await page.goto(f"{live.base_url}/console/audit?action=reconciliation.resolve")
    row = page.locator(f"#audit tbody tr[data-target='{discrepancy_id}']")
    await expect(row).to_have_count(1)
    await expect(row.locator(".actor")).to_have_text("finance:dev-finance")
    await expect(row).to_contain_text("console")
    await expect(row.locator(".changes")).to_contain_text("status: OPEN → RESOLVED")
    await page.screenshot(path=str(shots / "console-audit-resolve.png"), full_page=True)
    await _todays_payments(live, [("ALIPAY_QR", 12_800, "paid"), ("WECHAT_NATIVE", 8_800, "paid")])
    await page.goto(f"{live.base_url}/console")
    await expect(page.locator("#chart-discrepancies rect.bar")).to_have_count(1)  # yesterday's, resolved
    await page.screenshot(path=str(shots / "console-dashboard-finance.png"), full_page=True)

    # a finance session cannot open an operator page
    response = await page.goto(f"{live.base_url}/console/merchants")
    assert response is not None and response.status == 403
    await expect(page.locator("#error-code")).to_have_text("FORBIDDEN")
    assert problems == []
    await ctx.close()


async def test_operator_freezes_an_app_and_its_next_order_is_refused(
    live: LiveStack, browser: Any, shots: Path
) -> None:
    from playwright.async_api import expect

    ctx, page, problems = await _page(browser)
    await _sign_in(page, live, "operator")
    await page.goto(f"{live.base_url}/console/merchants")
    await page.locator("#create-merchant input[name=name]").fill("Lotus Tea House")
    await page.locator("#create-merchant button").click()
    await expect(page.locator("#flash")).to_be_visible()
    await page.locator("#app-name").fill("lotus-shop")
    await page.locator("#create-app-submit").click()
    secret = (await page.locator("#new-secret").text_content() or "").strip()
    app_id = (await page.locator("#new-app-id").text_content() or "").strip()
    assert len(secret) >= 32 and app_id
    await page.reload()  # the form is not posted again: the page now says the secret is gone
    await expect(page.locator("#already-shown")).to_be_visible()
    await page.goto(f"{live.base_url}/console/apps/{app_id}")
    assert secret not in await page.content()  # shown once, never again

    async with httpx.AsyncClient(base_url=live.base_url, timeout=30) as http:
        client = MerchantClient(http, app_id, secret=secret)
        before = await client.create_order(amount=1_000, pay_method="ALIPAY_QR")
        assert before.status_code == 201, before.text
        await page.locator("form[action$='/freeze'] button").click()  # confirms the dialog
        await expect(page.locator("#app-status .status")).to_have_text("frozen")
        await page.screenshot(path=str(shots / "console-app-frozen.png"), full_page=True)
        refused = await client.create_order(amount=1_000, pay_method="ALIPAY_QR")
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "APP_DISABLED", refused.text

    await page.goto(f"{live.base_url}/console/audit?action=app.freeze")
    row = page.locator(f"#audit tbody tr[data-target='{app_id}']")
    await expect(row).to_have_count(1)
    await expect(row.locator(".actor")).to_have_text("operator:dev-operator")
    await expect(row.locator(".changes")).to_contain_text("status: ACTIVE → FROZEN")
    await page.screenshot(path=str(shots / "console-audit-freeze.png"), full_page=True)

    # today's payments (one refused by the payer) show on the dashboard's charts
    await _todays_payments(live, [("ALIPAY_QR", 12_800, "paid"), ("ALIPAY_QR", 5_600, "paid"),
                                  ("WECHAT_NATIVE", 8_800, "paid"), ("WECHAT_NATIVE", 3_300, "failed")])  # fmt: skip
    await page.goto(f"{live.base_url}/console")
    await expect(page.locator("#chart-volume rect.bar").first).to_be_visible()
    assert await page.locator("#chart-volume rect.bar").count() >= 2  # alipay and wechat (maybe in two hours)
    assert await page.locator("#chart-success rect.dot, #chart-success polyline.line").count() >= 2
    await expect(page.locator("#chart-backlog figcaption")).to_be_visible()
    await page.screenshot(path=str(shots / "console-dashboard.png"), full_page=True)
    assert problems == []
    await ctx.close()


async def test_a_form_posted_without_its_csrf_token_is_refused(live: LiveStack, browser: Any) -> None:
    from playwright.async_api import expect

    ctx, page, _ = await _page(browser, lang="zh-CN")
    await _sign_in(page, live, "operator")
    await page.goto(f"{live.base_url}/console/merchants")
    await expect(page.locator("h1")).to_have_text("商户")  # the browser's language picks Chinese
    await page.locator("#create-merchant input[name=csrf_token]").evaluate("field => field.remove()")
    await page.locator("#create-merchant input[name=name]").fill("Forged Ltd")
    async with page.expect_response(re.compile(r"/console/merchants$")) as answer:
        await page.locator("#create-merchant button").click()
    assert (await answer.value).status == 403
    await expect(page.locator("#error-code")).to_have_text("FORBIDDEN")
    await page.goto(f"{live.base_url}/console/merchants")
    await expect(page.locator("#merchants")).not_to_contain_text("Forged Ltd")
    await ctx.close()
