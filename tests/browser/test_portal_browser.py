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
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyotp
import pytest

from tests.fixtures.browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, LiveStack, need_browser

pytestmark = pytest.mark.browser

DESKTOP = {"width": 1280, "height": 860}
PASSWORD = "a long portal password"
STEP = timedelta(seconds=30)


class ShiftedClock:
    """The system clock moved by `offset`; the platform and the simulator share one."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def timestamp(self) -> float:
        return time.time() + self.offset.total_seconds()


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
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield chromium
        finally:
            await chromium.close()


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
