"""The MCP Apps result view: linked from every tool, self-contained, and it draws boxes."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
from html.parser import HTMLParser
from typing import Any

import mcp_types as types
import pytest
from mcp import Client

from lensforge.api.mcp.apps import APP_MIME_TYPE, UI, VIEW_URI, ResultView
from lensforge.api.mcp.tasks import TASKS
from lensforge.settings import Settings
from lensforge.wiring import Services
from tests.mcp_server.support import MODERN, run
from tests.support import b64, png

VOID = {"meta", "img", "br", "input", "link", "hr"}


class _Balanced(HTMLParser):
    """Collects tags, fails on a closing tag that closes nothing open."""

    def __init__(self) -> None:
        super().__init__()
        self.open: list[str] = []
        self.attributes: list[tuple[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.attributes.extend(attrs)
        if tag not in VOID:
            self.open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        assert self.open and self.open[-1] == tag, f"</{tag}> closes {self.open[-1:]}"
        self.open.pop()


def test_the_view_is_valid_html_with_no_external_url() -> None:
    html = ResultView().html
    assert html.lower().startswith("<!doctype html>")
    parser = _Balanced()
    parser.feed(html)
    parser.close()
    assert parser.open == []
    assert not re.search(r"(?i)\b(?:https?|wss?|ftp):|//[a-z0-9.-]+\.[a-z]{2,}", html)
    for name, value in parser.attributes:
        if name in ("src", "href", "action"):
            assert value is None or value.startswith(("data:", "#")), (name, value)
    policy = re.search(r'Content-Security-Policy"\s+content="([^"]+)"', html)
    assert policy is not None and "default-src 'none'" in policy.group(1)
    assert "connect-src" not in policy.group(1)  # fetch/XHR/WebSocket fall back to 'none'


def test_every_tool_links_the_view_and_the_view_is_a_resource(settings: Settings) -> None:
    async def body(session: Client, services: Services) -> None:
        discovered = await session.session.send_discover(MODERN)  # server/discover
        assert set(discovered["capabilities"]["extensions"]) == {UI, TASKS}
        for tool in (await session.list_tools()).tools:
            assert (tool.meta or {})["ui"] == {"resourceUri": VIEW_URI}
        listed = (await session.list_resources()).resources
        assert [(r.uri, r.mime_type) for r in listed] == [(VIEW_URI, APP_MIME_TYPE)]
        read = (await session.read_resource(VIEW_URI)).contents[0]
        assert isinstance(read, types.TextResourceContents)
        assert read.mime_type == APP_MIME_TYPE and read.text == ResultView().html
        assert (read.meta or {})["ui"]["csp"] == {}

    run(settings, body)


KNOWN_RESULT: dict[str, Any] = {
    "detections": [
        {"label": "face", "score": 0.9, "box": {"x": 20, "y": 10, "width": 40, "height": 30}},
    ],
    "spans": [
        {"text": "HELLO", "confidence": 0.8, "box": {"x": 70, "y": 50, "width": 20, "height": 10}}
    ],
}


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian chromium is not installed")
def test_the_view_draws_a_known_results_boxes_in_chromium() -> None:
    playwright = pytest.importorskip("playwright.async_api")

    async def go() -> tuple[str | None, list[int], list[int], list[str], list[str]]:
        requests: list[str] = []
        async with playwright.async_playwright() as p:
            browser = await p.chromium.launch(
                executable_path=shutil.which("chromium"),
                args=[
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--no-first-run",
                ],
            )
            try:
                page = await browser.new_page()
                page.on("request", lambda request: requests.append(request.url))
                await page.set_content(ResultView().html)
                image = {"data": b64(png(100, 80)), "mimeType": "image/png"}
                result = {"content": [], "structuredContent": KNOWN_RESULT, "isError": False}
                for method, params in (
                    ("ui/notifications/tool-input", {"arguments": {"image": image}}),
                    ("ui/notifications/tool-result", result),
                ):
                    message = json.dumps({"jsonrpc": "2.0", "method": method, "params": params})
                    await page.evaluate(f"window.postMessage({message}, '*')")
                await page.wait_for_function("document.body.dataset.drawn === '2'", timeout=10_000)
                pixel = "([x, y]) => Array.from(document.getElementById('overlay')"
                pixel += ".getContext('2d').getImageData(x, y, 1, 1).data)"
                on_box = await page.evaluate(pixel, [20, 25])  # the face box's left edge
                inside = await page.evaluate(pixel, [40, 25])  # inside it: not drawn
                items = await page.locator("#items li").all_inner_texts()
                return await page.title(), on_box, inside, items, requests
            finally:
                await browser.close()

    title, on_box, inside, items, requests = asyncio.run(go())
    assert title == "LensForge result"
    assert on_box[0] > 200 and on_box[3] > 200  # opaque red stroke
    assert inside[3] == 0  # transparent
    assert items == ["face (0.90)", "HELLO (0.80)"]
    assert [url for url in requests if not url.startswith(("data:", "about:"))] == []
