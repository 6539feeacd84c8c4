"""The dashboard with auth on: it asks for a key, keeps it in sessionStorage (never in a
URL), refuses a wrong key, and shows a ``read`` key only its own tenant's jobs."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.dashboard.conftest import (
    DashboardServer,
    Keys,
    Tab,
    assert_only,
    create_keys,
    open_tab,
    qr_png,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DashboardServer, Keys]]:
    server = DashboardServer(tmp_path_factory.mktemp("secured"))
    keys = create_keys(server.database_url)
    server.start()
    try:
        yield server, keys
    finally:
        server.stop()


@pytest.fixture
def secure_tab(
    browser: Any, secured: tuple[DashboardServer, Keys], tmp_path: Path
) -> Iterator[Tab]:
    tab = open_tab(browser, tmp_path)
    try:
        yield tab
    finally:
        tab.page.context.close()
    assert_only(secured[0].url, tab.requests)
    assert not any("key" in url.lower() or "token" in url.lower() for url in tab.requests)


def sign_in(tab: Tab, secret: str) -> None:
    tab.page.wait_for_selector("#key-dialog[open]")
    tab.page.fill("#key-input", secret)
    tab.page.click("#key-form button[value='save']")


def test_a_wrong_key_is_refused_and_a_right_one_kept_for_the_session(
    secure_tab: Tab, secured: tuple[DashboardServer, Keys]
) -> None:
    server, keys = secured
    page = secure_tab.page
    page.goto(server.url + "/")
    assert "requires an API key" in page.locator("#key-reason").inner_text()
    sign_in(secure_tab, "lf_wrong_0000000000000000")
    page.wait_for_selector("#key-dialog[open]")
    page.wait_for_function("document.querySelector('#key-reason').textContent.includes('Refused')")
    assert page.evaluate("sessionStorage.getItem('lensforge.apiKey')") is None  # not kept
    secure_tab.shot("wrong-key")
    page.click("#key-cancel")
    page.click("#key-button")
    sign_in(secure_tab, keys.admin.secret)
    page.wait_for_selector("[data-plugin='codes']")
    assert page.evaluate("sessionStorage.getItem('lensforge.apiKey')") == keys.admin.secret
    page.reload()  # the key survives a reload of the tab
    page.wait_for_selector("[data-plugin='codes']")
    assert not page.locator("#key-dialog[open]").count()


def test_a_read_key_sees_only_its_own_tenants_jobs(
    secure_tab: Tab, secured: tuple[DashboardServer, Keys], tmp_path: Path
) -> None:
    server, keys = secured
    image = qr_png("alice's code")
    mine = httpx.post(
        f"{server.url}/v1/jobs",
        files={"image": ("code.png", image, "image/png")},
        data={"plugin": "codes", "tool": "decode"},
        headers=keys.alice.headers,
    ).json()["job_id"]
    theirs = httpx.post(
        f"{server.url}/v1/jobs",
        json={"plugin": "testing", "tool": "echo", "inputs": {"text": "bob's"}},
        headers=keys.bob.headers,
    ).json()["job_id"]
    page = secure_tab.page
    page.goto(server.url + "/#/jobs")
    sign_in(secure_tab, keys.alice.secret)
    page.wait_for_selector(f"tr[data-job='{mine}']")
    assert page.locator(f"tr[data-job='{theirs}']").count() == 0
    secure_tab.shot("alice-jobs")
    page.goto(server.url + f"/#/jobs/{theirs}")
    page.wait_for_selector(".error:has-text('job_not_found')")
    page.goto(server.url + "/")
    page.wait_for_selector("[data-stat='finished']")
    stats = httpx.get(f"{server.url}/v1/stats", headers=keys.alice.headers).json()
    assert sum(stats["jobs"].values()) == 1  # alice's one job, not bob's


def test_no_key_or_image_bytes_reach_the_logs(secured: tuple[DashboardServer, Keys]) -> None:
    """Over this whole module's run (after the browser tests above): every line is JSON with
    an event name, each request has its access line, and no secret or image byte is logged."""
    server, keys = secured
    response = httpx.get(
        f"{server.url}/v1/jobs/nope", headers={**keys.admin.headers, "X-Request-ID": "probe-42"}
    )
    assert response.headers["x-request-id"] == "probe-42"
    server.stop()
    text = server.log.read_text()
    lines = [json.loads(line) for line in text.splitlines() if line.strip()]
    assert all(line["event"] and line["ts"] and line["level"] for line in lines)
    access = [line for line in lines if line["event"] == "http_request"]
    probe = [line for line in access if line["request_id"] == "probe-42"]
    assert probe and probe[0]["route"] == "/v1/jobs/{job_id}" and probe[0]["status"] == 404
    assert probe[0]["key_id"] and probe[0]["duration_ms"] >= 0
    assert {line["route"] for line in access} >= {"/", "/dashboard/{name}", "/v1/stats", "/v1/jobs"}
    assert not any(secret in text for secret in keys.all)
    code = qr_png("alice's code")
    assert base64.b64encode(code)[:40].decode() not in text
    assert "PNG" not in text and "\\x89" not in text
