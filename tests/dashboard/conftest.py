"""A real server (``python -m tests.dashboard.launch``) and Debian's Chromium via Playwright.

Every page records the requests it makes; a test fails if any went to another host. The
browser is launched with flags that keep Chromium itself off the network.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.support import free_port, wait_until_serving

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-dev-shm-usage",
]
START_TIMEOUT_S = 60.0
DESKTOP = {"width": 1280, "height": 860}
PHONE = {"width": 390, "height": 844}


class DashboardServer:
    """One server process on a free loopback port; its JSON log lines land in ``log``."""

    def __init__(self, root: Path, **env: str) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.root = root
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.database_url = f"sqlite:///{root / 'server.db'}"
        self.log = root / "server.log"
        self.env = {
            **os.environ,
            "LENSFORGE_HOST": "127.0.0.1",
            "LENSFORGE_PORT": str(self.port),
            "LENSFORGE_DATABASE_URL": self.database_url,
            "LENSFORGE_DATA_DIR": str(root / "data"),
            "LENSFORGE_WORKERS": "1",
            "LENSFORGE_LOG_LEVEL": "info",
            "LENSFORGE_LOG_FORMAT": "json",
            **env,
        }
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> DashboardServer:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "tests.dashboard.launch"],
                cwd=Path(__file__).parents[2],
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_until_serving(self.process, self.url, timeout_s=START_TIMEOUT_S, log=self.log)
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


@dataclass
class Tenant:
    name: str
    secret: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.secret}"}


@dataclass
class Keys:
    admin: Tenant
    alice: Tenant
    bob: Tenant
    all: list[str] = field(default_factory=list)


def create_keys(database_url: str) -> Keys:
    """Keys made in the store before the server starts (as ``lensforge keys create`` does)."""
    from lensforge.security.keys import KeyStore
    from lensforge.store import JobStore

    store = JobStore(database_url)
    store.migrate()
    keys = KeyStore(store.engine)
    made = {}
    for name, scopes in (
        ("admin", ("admin",)),
        ("alice", ("read", "analyze")),
        ("bob", ("read", "analyze")),
    ):
        _, secret = keys.create(name, scopes)
        made[name] = Tenant(name, secret)
    store.close()
    return Keys(**made, all=[t.secret for t in made.values()])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DashboardServer]:
    """A server with auth off."""
    running = DashboardServer(tmp_path_factory.mktemp("open")).start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed (scripts/system-deps.sh installs it)")
    playwright_api = pytest.importorskip("playwright.sync_api")
    with playwright_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        try:
            yield chromium
        finally:
            chromium.close()


@dataclass
class Tab:
    """A browser page and every URL it requested."""

    page: Any
    requests: list[str]
    shots: Path

    def shot(self, name: str) -> Path:
        path = self.shots / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path


def open_tab(browser: Any, shots: Path, viewport: dict[str, int] = DESKTOP) -> Tab:
    context = browser.new_context(viewport=viewport)
    page = context.new_page()
    page.set_default_timeout(20_000)
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    return Tab(page, requests, shots)


def assert_only(origin: str, requests: list[str]) -> None:
    """Every request went to the server itself (blob: URLs are the page's own memory)."""
    expected = urlsplit(origin).netloc
    foreign = [u for u in requests if not u.startswith("blob:") and urlsplit(u).netloc != expected]
    assert requests, "the page made no requests at all"
    assert foreign == [], f"requests to other hosts: {foreign}"


@pytest.fixture
def tab(browser: Any, server: DashboardServer, tmp_path: Path) -> Iterator[Tab]:
    opened = open_tab(browser, tmp_path)
    try:
        yield opened
    finally:
        opened.page.context.close()
    assert_only(server.url, opened.requests)


def qr_png(payload: str, scale: int = 8) -> bytes:
    import segno

    buffer = io.BytesIO()
    segno.make_qr(payload).save(buffer, kind="png", scale=scale, border=4)
    return buffer.getvalue()
