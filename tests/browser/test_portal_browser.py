"""Issue 23 acceptance 1 and 3: the merchant portal in headless Debian Chromium driven by Playwright.

The platform (gateway with the portal, channel simulator, and what `tomato dev` runs beside them: webhook delivery,
the outbox relay, ledger booking) serves on loopback from a background thread, seeded like `tomato dev`, which
invites the demo merchant's owner. The owner accepts the invitation with TOTP; each test signs in its own people.
TOTP codes are single-use, so a second sign-in in the same 30 s step moves the shared clock on by a step.
Screenshots go to test-artifacts/ (kept by CI) and, with `TOMATO_SCREENSHOT_DIR=docs/img`, refresh the merchant
guide's pictures. Without /usr/bin/chromium (or Playwright) the tests skip, unless `TOMATO_REQUIRE_SERVICES=1`.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pyotp
import pytest

from tests.fixtures.browser import ARTIFACTS, LiveStack, ShiftedClock, chromium, need_browser
from tests.fixtures.merchant_client import MerchantClient
from tests.fixtures.webhook_receiver import Received, Receiver, verify_webhook

pytestmark = pytest.mark.browser

DESKTOP = {"width": 1280, "height": 860}
PASSWORD = "a long portal password"
STEP = timedelta(seconds=30)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveStack]:
    need_browser()
    stack = LiveStack(tmp_path_factory.mktemp("portal-live"), "portal", clock=ShiftedClock(), background=True,
                      webhook_allowed_networks="127.0.0.0/8", webhook_time_scale=60.0)  # fmt: skip
    stack.start()
    try:
        yield stack
    finally:
        stack.stop()


def _shot(page_name: str) -> list[Path]:
    """Where a screenshot goes: test-artifacts/ always, and TOMATO_SCREENSHOT_DIR (docs/img) when set."""
    ARTIFACTS.mkdir(exist_ok=True)
    paths = [ARTIFACTS / page_name]
    if chosen := os.environ.get("TOMATO_SCREENSHOT_DIR"):
        Path(chosen).mkdir(parents=True, exist_ok=True)
        paths.append(Path(chosen) / page_name)
    return paths


async def _screenshot(page: Any, name: str) -> None:
    first, *more = _shot(name)
    await page.screenshot(path=str(first), full_page=True)
    for path in more:
        shutil.copyfile(first, path)


@pytest.fixture
async def browser(live: LiveStack) -> AsyncIterator[Any]:
    async with chromium() as launched:
        yield launched


async def _page(browser: Any) -> tuple[Any, Any, list[str]]:
    """A desktop page in a fresh context (its own cookies); the list collects script and CSP errors."""
    context = await browser.new_context(viewport=DESKTOP, locale="en-US")
    page = await context.new_page()
    problems: list[str] = []

    def console(message: Any) -> None:
        source = str(message.location.get("url", ""))
        provoked = ("status of 403", "status of 401", "status of 423", "status of 422")  # refusals on purpose
        expected = source.endswith("/favicon.ico") or any(p in message.text for p in provoked)
        if message.type == "error" and not expected:
            problems.append(f"{message.text} ({source})")

    page.on("console", console)
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    page.on("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))
    return context, page, problems


def _code(live: LiveStack, secret: str) -> str:
    return pyotp.TOTP(secret).at(live.clock.timestamp())


def _next_step(live: LiveStack) -> None:
    """A TOTP code works once: the next sign-in of the same person needs the next 30 s step."""
    live.clock.offset += STEP


async def _accept(page: Any, live: LiveStack, link: str, totp: bool, shot: str | None = None) -> str | None:
    """Opens an invitation, sets the password (and TOTP); returns the TOTP secret when turned on."""
    from playwright.async_api import expect

    await page.goto(link)
    await page.locator("#password").fill(PASSWORD)
    await page.locator("#password-again").fill(PASSWORD)
    secret = None
    if totp:
        if await page.locator("#totp-on").count():
            await page.locator("#totp-on").check()
        secret = (await page.locator("#totp-secret").text_content() or "").strip()
        await page.locator("#code").fill(_code(live, secret))
    if shot:
        await _screenshot(page, shot)
    await page.locator("#accept").click()
    await expect(page.locator("#who")).to_be_visible()
    return secret


async def _sign_in(page: Any, live: LiveStack, email: str, secret: str | None, password: str = PASSWORD) -> None:
    from playwright.async_api import expect

    await page.goto(f"{live.base_url}/portal/login")
    await page.locator("#email").fill(email)
    await page.locator("#password").fill(password)
    await page.locator("#sign-in").click()
    if secret is not None:
        _next_step(live)
        await expect(page.locator("#code")).to_be_visible()
        await page.locator("#code").fill(_code(live, secret))
        await page.locator("#verify").click()
    await expect(page.locator("#who")).to_contain_text(email)


async def _invite(page: Any, live: LiveStack, email: str, role: str) -> str:
    """As the signed-in owner, from the users page; returns the invitation link shown once."""
    await page.goto(f"{live.base_url}/portal/users")
    await page.locator("#invite-email").fill(email)
    await page.locator("#invite-role").select_option(role)
    await page.locator("#invite-submit").click()
    link = (await page.locator("#invite-link").text_content() or "").strip()
    assert link.startswith(f"{live.base_url}/portal/invite/"), link
    return link


def _only(hook: Received, signature: str) -> Received:
    """The webhook as if it carried only `signature`: each half must verify on its own."""
    return replace(hook, headers={**hook.headers, "tomato-signature": signature})


async def _until_status(client: MerchantClient, order_no: str, status: str) -> None:
    deadline = time.monotonic() + 30
    while (got := (await client.request("GET", f"/v1/pay/orders/{order_no}")).json()["status"]) != status:
        assert got in ("CREATED", "PAYING") and time.monotonic() < deadline, f"{order_no} is {got}"
        await asyncio.sleep(0.05)


async def _paid_order(live: LiveStack, secret: str, amount: int) -> str:
    """A WeChat Native order of the demo app, paid at the simulator; its order_no once SUCCEEDED."""
    async with (
        httpx.AsyncClient(base_url=live.base_url, timeout=30) as http,
        httpx.AsyncClient(base_url=live.sandbox_url, timeout=30) as sandbox,
    ):
        client = MerchantClient(http, live.creds["app_id"], secret=secret)
        r = await client.create_order(amount=amount, pay_method="WECHAT_NATIVE")
        assert r.status_code == 201, r.text
        order_no: str = r.json()["order_no"]
        scan = await sandbox.post("/sandbox/scan", json={"order_no": order_no, "result": "paid"})
        assert scan.status_code == 200, scan.text
        await _until_status(client, order_no, "SUCCEEDED")
    return order_no


@pytest.fixture(scope="module")
def owner_state() -> dict[str, Any]:
    return {}


async def _owner(browser: Any, live: LiveStack, state: dict[str, Any]) -> tuple[Any, Any, list[str]]:
    """The demo owner, signed in: accepts `tomato dev`'s invitation the first time, signs in after that."""
    ctx, page, problems = await _page(browser)
    email = live.creds["portal_owner"]["email"]
    if "secret" not in state:
        state["secret"] = await _accept(page, live, live.creds["portal_owner"]["invite_url"], True, "portal-invite.png")
    else:
        await _sign_in(page, live, email, state["secret"])
    return ctx, page, problems


async def test_owner_invites_a_developer_who_signs_in_with_totp(
    live: LiveStack, browser: Any, owner_state: dict[str, Any]
) -> None:
    from playwright.async_api import expect

    ctx, page, problems = await _owner(browser, live, owner_state)
    link = await _invite(page, live, "dev@demo.example", "developer")
    await _screenshot(page, "portal-users.png")

    dev_ctx, dev, dev_problems = await _page(browser)
    secret = await _accept(dev, live, link, totp=True)
    assert secret is not None
    await dev.locator("header form button").click()  # sign out
    await expect(dev.locator("#login-form")).to_be_visible()
    await _sign_in(dev, live, "dev@demo.example", secret)
    await expect(dev.locator("#nav-apps")).to_be_visible()
    await expect(dev.locator("#nav-payouts")).to_have_count(0)  # a developer's menu has no money pages

    # the developer points the app's webhooks at a receiver, rotates its key and copies the new secret
    receiver = Receiver()
    await receiver.start()
    try:
        app_id, old_secret = live.creds["app_id"], live.creds["app_secret"]
        await dev.goto(f"{live.base_url}/portal/apps/{app_id}")
        await dev.locator("#notify-url").fill(receiver.url)
        await dev.locator("#notify-url-submit").click()
        await expect(dev.locator("#flash")).to_be_visible()
        await dev.locator("#rotate-submit").click()
        new_secret = (await dev.locator("#new-secret").text_content() or "").strip()
        assert new_secret and new_secret != old_secret
        await _screenshot(dev, "portal-keys.png")

        # the integration still signs with the old secret; the next webhook carries both signatures, newest first
        order_no = await _paid_order(live, old_secret, 1_234)
        await receiver.wait_until(lambda: any(order_no.encode() in r.body for r in receiver.received))
        hook = next(r for r in receiver.received if order_no.encode() in r.body)
        parts = hook.headers["tomato-signature"].split(",")
        assert len(parts) == 2 and all(p.startswith("HMAC-SHA256 ") for p in parts)
        assert verify_webhook(_only(hook, parts[0]), secret=new_secret)
        assert verify_webhook(_only(hook, parts[1]), secret=old_secret)
    finally:
        await receiver.close()
    assert problems == [] and dev_problems == []
    await dev_ctx.close()
    await ctx.close()


async def test_a_form_without_its_csrf_token_is_refused(
    live: LiveStack, browser: Any, owner_state: dict[str, Any]
) -> None:
    from playwright.async_api import expect

    ctx, page, _ = await _owner(browser, live, owner_state)
    await page.goto(f"{live.base_url}/portal/users")
    await page.locator("#invite-email").fill("forged@demo.example")
    await page.evaluate("document.querySelector('#invite-form input[name=csrf_token]').remove()")
    await page.locator("#invite-submit").click()
    await expect(page.locator("#error-code")).to_have_text("FORBIDDEN")
    await page.goto(f"{live.base_url}/portal/users")
    await expect(page.locator("#users")).not_to_contain_text("forged@demo.example")
    await ctx.close()


async def test_five_wrong_passwords_lock_the_account(
    live: LiveStack, browser: Any, owner_state: dict[str, Any]
) -> None:
    from playwright.async_api import expect

    ctx, page, _ = await _owner(browser, live, owner_state)
    link = await _invite(page, live, "locked@demo.example", "support")
    await ctx.close()
    ctx, page, _ = await _page(browser)
    await _accept(page, live, link, totp=False)
    await page.locator("header form button").click()
    for attempt in range(5):
        await page.locator("#email").fill("locked@demo.example")
        await page.locator("#password").fill(f"wrong password {attempt}")
        await page.locator("#sign-in").click()
        await expect(page.locator("#login-error")).to_be_visible()
    await page.locator("#email").fill("locked@demo.example")
    await page.locator("#password").fill(PASSWORD)  # the right one, too late
    await page.locator("#sign-in").click()
    await expect(page.locator("#login-error")).to_contain_text("locked")
    await _screenshot(page, "portal-locked.png")
    await ctx.close()


async def _admin(live: LiveStack, role: str) -> httpx.AsyncClient:
    token = live.creds["admin_tokens"][role]
    return httpx.AsyncClient(base_url=live.base_url, timeout=30, headers={"Authorization": f"Bearer {token}"})


async def _settled_today(live: LiveStack, mch_no: str, at_least: int) -> None:
    """The merchant on D+0, its booked payments settled now: `available` holds at least `at_least` fen."""
    async with await _admin(live, "operator") as operator, await _admin(live, "finance") as finance:
        r = await operator.post(f"/admin/merchants/{mch_no}/settlement-cycle", json={"cycle": "D+0"})
        assert r.status_code == 200, r.text
        client = MerchantClient(operator, live.creds["app_id"], secret=live.creds["app_secret"])
        deadline = time.monotonic() + 30
        while (await client.request("GET", "/v1/balance")).json()["pending"] < at_least:  # booked asynchronously
            assert time.monotonic() < deadline, "the payment was not booked"
            await asyncio.sleep(0.05)
        day = live.clock.now().astimezone(ZoneInfo("Asia/Shanghai")).date().isoformat()
        r = await finance.post("/admin/settlements/run", json={"date": day})
        assert r.status_code == 200 and r.json()["settled_amount"] >= at_least, r.text


async def test_support_refunds_part_of_an_order_and_finance_requests_a_payout(
    live: LiveStack, browser: Any, owner_state: dict[str, Any]
) -> None:
    from playwright.async_api import expect

    ctx, owner, problems = await _owner(browser, live, owner_state)
    support_link = await _invite(owner, live, "cs@demo.example", "support")
    finance_link = await _invite(owner, live, "money@demo.example", "finance")
    order_no = await _paid_order(live, live.creds["app_secret"], 10_000)

    # support finds the order by its number and refunds ¥25.00 of it, through the confirmation step
    cs_ctx, cs, cs_problems = await _page(browser)
    await _accept(cs, live, support_link, totp=False)
    await cs.goto(f"{live.base_url}/portal/orders")
    await cs.locator("#order-q").fill(order_no)
    await cs.locator("#order-search").click()
    await cs.locator(f"#orders a:has-text('{order_no}')").first.click()
    await cs.locator("#refund-link").click()
    await cs.locator("#refund-amount").fill("25.00")
    await cs.locator("#refund-reason").fill("one cup was cold")
    await cs.locator("#refund-next").click()
    await expect(cs.locator("#confirm-amount")).to_contain_text("25.00")
    await _screenshot(cs, "portal-refund-confirm.png")
    await cs.locator("#refund-confirm-submit").click()
    await expect(cs.locator("#refund")).to_be_visible()
    refund_no = cs.url.split("?")[0].rsplit("/", 1)[1]
    async with httpx.AsyncClient(base_url=live.base_url, timeout=30) as http:
        client = MerchantClient(http, live.creds["app_id"], secret=live.creds["app_secret"])
        api = await client.request("GET", f"/v1/refunds/{refund_no}")
    assert api.status_code == 200 and (api.json()["order_no"], api.json()["amount"]) == (order_no, 2_500)

    # support may not reach payouts
    refused = await cs.goto(f"{live.base_url}/portal/payouts")
    assert refused is not None and refused.status == 403
    await expect(cs.locator("#error-code")).to_have_text("FORBIDDEN")
    await cs_ctx.close()

    # finance requests a payout from the settled balance
    await _settled_today(live, live.creds["mch_no"], 7_000)  # ¥99.40 less the ¥25 refund (its fee share returned)
    fin_ctx, fin, fin_problems = await _page(browser)
    await _accept(fin, live, finance_link, totp=False)
    await fin.goto(f"{live.base_url}/portal")
    await _screenshot(fin, "portal-dashboard.png")
    await fin.goto(f"{live.base_url}/portal/payouts/new")
    await fin.locator("#payout-amount").fill("50.00")
    await fin.locator("#payout-name").fill("Demo Merchant Ltd")
    await fin.locator("#payout-number").fill("6222020202020202")
    await fin.locator("#payout-bank").fill("Demo Bank")
    await _screenshot(fin, "portal-payout.png")
    await fin.locator("#payout-next").click()
    await expect(fin.locator("#confirm-amount")).to_contain_text("50.00")
    await fin.locator("#payout-confirm-submit").click()
    await expect(fin.locator("#payout-amount")).to_contain_text("50.00")
    payout_no = fin.url.split("?")[0].rsplit("/", 1)[1]
    await fin.goto(f"{live.base_url}/portal/payouts")
    await expect(fin.locator("#payouts")).to_contain_text(payout_no)
    assert problems == [] and cs_problems == [] and fin_problems == []
    await fin_ctx.close()
    await ctx.close()
