"""The dashboard in a real browser (Debian's Chromium via Playwright) on a real server.

Screenshots of each view, at desktop and phone widths, land in each test's tmp_path.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.dashboard.conftest import PHONE, DashboardServer, Tab, assert_only, open_tab, qr_png

pytestmark = pytest.mark.slow
PAYLOAD = "LensForge dashboard test"
SCALE = 8
BORDER = 4


def known_corners() -> list[tuple[float, float]]:
    """The QR code's outer corners in image pixels, from segno's own geometry."""
    import segno

    modules, _ = segno.make_qr(PAYLOAD).symbol_size(scale=1, border=0)
    low, high = BORDER * SCALE, (BORDER + modules) * SCALE
    return [(low, low), (high, low), (high, high), (low, high)]


def test_overview_shows_jobs_workers_and_plugins(tab: Tab, server: DashboardServer) -> None:
    tab.page.goto(server.url + "/")
    tab.page.wait_for_selector("[data-plugin='codes']")
    assert tab.page.title() == "LensForge"
    assert tab.page.locator("[data-stat='workers_alive'] .value").inner_text() == "1"
    assert tab.page.locator("[data-stat='PENDING']").count() == 1
    tab.shot("overview-desktop")


def test_plugins_page_lists_tools_with_schemas(tab: Tab, server: DashboardServer) -> None:
    tab.page.goto(server.url + "/#/plugins")
    tool = tab.page.locator("[data-tool='codes.decode']")
    tool.wait_for()
    assert "Input schema" in tool.inner_text()
    tool.locator("summary", has_text="Input schema").click()
    assert '"x-lensforge-media": "image"' in tool.locator("pre").first.inner_text()
    tab.shot("plugins-desktop")


def test_try_it_decodes_a_qr_code_and_draws_its_polygon(
    tab: Tab, server: DashboardServer, tmp_path: Path
) -> None:
    image = tmp_path / "code.png"
    image.write_bytes(qr_png(PAYLOAD, scale=SCALE))
    page = tab.page
    page.goto(server.url + "/#/try/codes/decode")
    page.set_input_files("#in-image", str(image))
    page.click("#submit-job")
    page.wait_for_selector(".job-status[data-status='SUCCESS']")
    page.wait_for_selector(".texts li")
    assert page.locator(".texts li").all_inner_texts() == [PAYLOAD]
    polygon = page.locator(".job .stage polygon[data-kind='polygon']")
    polygon.wait_for()
    drawn = [
        tuple(float(v) for v in point.split(","))
        for point in polygon.get_attribute("points").split()  # type: ignore[union-attr]
    ]
    # The polygon the tool returned, in image pixels, sits on the code's known corners...
    assert len(drawn) == 4
    for kx, ky in known_corners():
        nearest = min(max(abs(x - kx), abs(y - ky)) for x, y in drawn)
        assert nearest <= 1.5 * SCALE, (drawn, known_corners())
    # ... and on screen it covers the same part of the displayed image.
    img = page.locator(".job .stage img")
    natural = img.evaluate("i => [i.naturalWidth, i.naturalHeight]")
    shown, box = img.bounding_box(), polygon.bounding_box()
    assert shown is not None and box is not None
    sx, sy = shown["width"] / natural[0], shown["height"] / natural[1]
    low, high = known_corners()[0][0], known_corners()[2][0]
    assert abs(box["x"] - (shown["x"] + low * sx)) <= 1.5 * SCALE * sx
    assert abs(box["y"] - (shown["y"] + low * sy)) <= 1.5 * SCALE * sy
    assert abs(box["width"] - (high - low) * sx) <= 3 * SCALE * sx
    tab.shot("try-codes-desktop")


def test_a_slow_job_is_cancelled_from_the_job_panel(tab: Tab, server: DashboardServer) -> None:
    page = tab.page
    page.goto(server.url + "/#/try/testing/sleep")
    page.fill("#in-seconds", "20")
    page.click("#submit-job")
    page.wait_for_selector(".job-status[data-status='RUNNING']")
    job_id = page.locator(".job").get_attribute("data-job")
    page.click("#cancel-job")
    page.wait_for_selector(".job-status[data-status='CANCELLED']", timeout=15_000)
    assert httpx.get(f"{server.url}/v1/jobs/{job_id}").json()["status"] == "CANCELLED"
    page.wait_for_selector(".timeline li:has-text('CANCELLED')")
    tab.shot("job-cancelled-desktop")


def submit_echo(server: DashboardServer, text: str, headers: dict[str, str] | None = None) -> str:
    response = httpx.post(
        f"{server.url}/v1/jobs",
        json={"plugin": "testing", "tool": "echo", "inputs": {"text": text}},
        headers=headers or {},
    )
    assert response.status_code == 202, response.text
    job_id: str = response.json()["job_id"]
    return job_id


def test_jobs_submitted_over_rest_appear_without_a_reload(
    tab: Tab, server: DashboardServer
) -> None:
    page = tab.page
    page.goto(server.url + "/#/jobs")
    page.wait_for_selector("#jobs tbody")
    page.evaluate("window.__sameDocument = true")
    ids = [submit_echo(server, f"live {n}") for n in range(3)]
    for job_id in ids:
        page.wait_for_selector(f"tr[data-job='{job_id}'][data-status='SUCCESS']")
    assert page.evaluate("window.__sameDocument") is True  # no navigation happened
    page.select_option("#filter-status", "CANCELLED")
    page.wait_for_function(
        "ids => ids.every(id => !document.querySelector(`tr[data-job='${id}']`))", arg=ids
    )
    tab.shot("jobs-desktop")
    page.click("text=Overview")
    page.wait_for_selector("[data-stat='finished']")


def test_phone_width_and_keyboard(browser: Any, server: DashboardServer, tmp_path: Path) -> None:
    submitted = httpx.post(
        server.url + "/v1/jobs", json={"plugin": "testing.echo", "inputs": {"text": "phone"}}
    )
    assert submitted.status_code in (200, 202), submitted.text
    tab = open_tab(browser, tmp_path, PHONE)
    page = tab.page
    try:
        page.goto(server.url + "/#/jobs")
        page.wait_for_selector("#jobs tbody tr")
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"], "the page scrolls sideways at phone width"
        tab.shot("jobs-phone")
        page.goto(server.url + "/")
        page.wait_for_selector("[data-plugin='codes']")
        tab.shot("overview-phone")
        # The keyboard alone reaches the sections: Tab to "Plugins", Enter.
        for _ in range(12):
            page.keyboard.press("Tab")
            if page.evaluate("document.activeElement.textContent") == "Plugins":
                break
        page.keyboard.press("Enter")
        page.wait_for_selector("[data-tool='codes.decode']")
        assert re.search(r"#/plugins$", page.url)
        tab.shot("plugins-phone")
    finally:
        page.context.close()
    assert_only(server.url, tab.requests)


def test_a_returned_image_is_shown_and_the_enum_field_is_sent(
    tab: Tab, server: DashboardServer, tmp_path: Path
) -> None:
    from PIL import Image as PILImage
    from skimage import data

    photo = tmp_path / "astronaut.jpg"
    PILImage.fromarray(data.astronaut()).save(photo, "JPEG")
    page = tab.page
    page.goto(server.url + "/#/try/faces/redact")
    page.set_input_files("#in-image", str(photo))
    page.select_option("#in-mode", '"pixelate"')
    page.click("#submit-job")
    page.wait_for_selector(".job-status[data-status='SUCCESS']")
    returned = page.locator(".outcome img[alt='image returned by the tool']")
    returned.wait_for()
    assert returned.evaluate("i => i.complete && i.naturalWidth") == 512
    assert returned.get_attribute("src", timeout=1000).startswith("blob:")  # type: ignore[union-attr]
    assert "pixelate" in (page.locator(".outcome pre").text_content() or "")
    tab.shot("try-faces-redact-desktop")
