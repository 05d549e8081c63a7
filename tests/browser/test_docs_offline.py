"""Issue 19 acceptance 5: `/docs` works with no internet. `tomato serve` runs as a real process; headless Chromium
(Debian's, through Playwright) is cut off from every origin but the server's own, opens `/docs` and sees the
operations of the document listed, and `/redoc` renders the same way. Screenshots go to `test-artifacts/`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import free_port
from tests.fixtures.browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, need_browser

pytestmark = pytest.mark.browser

@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`tomato serve` on the embedded backends in a directory of its own; yields its base URL."""
    need_browser()
    cwd = tmp_path_factory.mktemp("docs-offline")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOMATO_")}
    log = (cwd / "serve.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "tomato.cli", "serve", "--port", str(port)], cwd=cwd, env=env,
                            stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError((cwd / "serve.log").read_text()[-3000:])
            time.sleep(0.1)
        yield base
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        finally:
            if proc.poll() is None:
                proc.kill()
            log.close()


@pytest.fixture
async def offline_page(served: str) -> AsyncIterator[tuple[Any, list[str]]]:
    """A page whose every request to another origin is aborted (as with no internet); yields it and the URLs that
    were cut off."""
    from playwright.async_api import async_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    cut: list[str] = []
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            context = await browser.new_context(viewport={"width": 1280, "height": 900})

            async def only_the_server(route: Any) -> None:
                url = route.request.url
                if url == served or url.startswith(served + "/"):
                    await route.continue_()
                else:
                    cut.append(url)
                    await route.abort("internetdisconnected")

            await context.route("**/*", only_the_server)
            yield await context.new_page(), cut
            await context.close()
        finally:
            await browser.close()


async def test_swagger_ui_lists_the_operations_offline(served: str, offline_page: tuple[Any, list[str]]) -> None:
    page, cut = offline_page
    operations = httpx.get(f"{served}/openapi.json", timeout=10).json()["paths"]
    assert "/v1/pay/orders" in operations
    loaded: list[str] = []
    page.on("requestfinished", lambda request: loaded.append(request.url))
    await page.goto(f"{served}/docs")
    create = page.locator(".opblock-summary-path[data-path='/v1/pay/orders']")
    await create.first.wait_for(state="visible", timeout=30_000)
    shown = await page.locator(".opblock").count()
    expected = sum(1 for ops in operations.values() for method in ops if method in ("get", "post", "patch", "put",
                                                                                    "delete"))  # fmt: skip
    await page.screenshot(path=str(ARTIFACTS / "docs-offline-swagger.png"))
    assert shown == expected, f"Swagger UI shows {shown} operations, the document has {expected} (cut off: {cut})"
    assert f"{served}/docs-assets/swagger-ui-bundle.js" in loaded and f"{served}/openapi.json" in loaded
    assert not [u for u in cut if u.endswith((".js", ".css"))], cut  # no script or style came from elsewhere


async def test_redoc_renders_offline(served: str, offline_page: tuple[Any, list[str]]) -> None:
    page, cut = offline_page
    await page.goto(f"{served}/redoc")
    heading = page.get_by_role("heading", name="Tomato Pay", exact=False)
    await heading.first.wait_for(state="visible", timeout=30_000)
    await page.get_by_text("/v1/pay/orders").first.wait_for(state="attached", timeout=30_000)
    await page.screenshot(path=str(ARTIFACTS / "docs-offline-redoc.png"))
    assert not [u for u in cut if u.endswith((".js", ".css"))], cut
