"""/docs and /redoc render in headless Chromium with every other host cut off, and the
pages ask nothing of any other host (Debian's Chromium through Playwright, as the dashboard's
tests run it; never ``playwright install``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.api.conftest import Live
from tests.dashboard.conftest import CHROMIUM, CHROMIUM_FLAGS

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed"),
]
playwright = pytest.importorskip("playwright.sync_api")
REDOCLY_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg"


class Watched:
    """A page whose requests to any other host are aborted and recorded, as are the
    Content-Security-Policy refusals and script errors its console reports."""

    def __init__(self, context: Any, live: Live) -> None:
        self.own = urlsplit(live.url).netloc
        self.elsewhere: list[str] = []
        self.console: list[str] = []
        self.failed: list[str] = []
        context.route("**/*", self._route)
        self.page = context.new_page()
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda exc: self.console.append(f"pageerror: {exc}"))
        self.page.on("requestfailed", lambda r: self.failed.append(f"{r.url} {r.failure}"))

    def _route(self, route: Any) -> None:
        url = route.request.url
        if urlsplit(url).scheme in ("data", "blob") or urlsplit(url).netloc == self.own:
            route.continue_()
        else:
            self.elsewhere.append(url)
            route.abort("internetdisconnected")

    def _console(self, message: Any) -> None:
        if message.type == "error":
            self.console.append(message.text)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def watched(browser: Any, live: Live) -> Iterator[Watched]:
    context = browser.new_context(offline=False)
    try:
        yield Watched(context, live)
    finally:
        context.close()


def test_swagger_ui_renders_offline_from_this_server(watched: Watched, live: Live) -> None:
    page = watched.page
    response = page.goto(f"{live.url}/docs")
    assert response is not None and response.status == 200
    assert "default-src 'none'" in response.headers["content-security-policy"]
    page.wait_for_selector(".swagger-ui .info .title", timeout=20_000)
    assert "LensForge" in page.inner_text(".swagger-ui .info .title")
    page.locator("[data-path='/v1/analyze']").first.wait_for(timeout=10_000)
    assert page.locator(".opblock").count() >= 20  # every operation listed
    assert watched.elsewhere == []
    assert watched.console == []
    assert watched.failed == []


def test_redoc_renders_offline_from_this_server(watched: Watched, live: Live) -> None:
    page = watched.page
    response = page.goto(f"{live.url}/redoc")
    assert response is not None and response.status == 200
    page.wait_for_selector("h1", timeout=30_000)
    assert "LensForge" in page.inner_text("h1")
    page.get_by_text("Run a tool and wait for its result").first.wait_for(state="attached")
    assert watched.elsewhere == []
    # ReDoc's sidebar always shows Redocly's logo from its CDN (no option hides it): the
    # policy refuses it before any request is made, and the page hides the broken image.
    refused = [line for line in watched.console if REDOCLY_LOGO in line]
    assert all("Content Security Policy" in line for line in refused), refused
    assert [line for line in watched.console if line not in refused] == []
    assert all(line == f"{REDOCLY_LOGO} csp" for line in watched.failed), watched.failed
