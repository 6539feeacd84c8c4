"""The dashboard's routes in process: the page and assets, and GET /v1/stats."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from lensforge.api import create_app
from lensforge.api.dashboard.routes import ASSETS
from lensforge.settings import Settings
from lensforge.store import JobStore
from tests.support import Testing


@pytest.fixture
def thread_client(tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'lensforge.db'}",
        data_dir=tmp_path / "data",
        executor="thread",
        workers=2,
        poll_interval_s=0.05,
    )
    with TestClient(create_app(settings, extra_plugins=[Testing])) as client:
        yield client


def test_the_page_and_every_asset_it_names_are_served(thread_client: TestClient) -> None:
    page = thread_client.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert "default-src 'self'" in page.headers["content-security-policy"]
    named = re.findall(r'(?:src|href)="/dashboard/([^"]+)"', page.text)
    assert {"app.js", "style.css"} <= set(named)
    for name in named:
        assert thread_client.get(f"/dashboard/{name}").status_code == 200, name
    # Every module the scripts import is an asset too, and no asset names another host.
    for name, asset in ASSETS.items():
        if name.endswith(".js"):
            for imported in re.findall(rb'from "\./([^"]+)"', asset.body):
                assert imported.decode() in ASSETS, (name, imported)
        body = asset.body.replace(b"http://www.w3.org/2000/svg", b"")  # a namespace, not a URL
        assert b"http://" not in body and b"https://" not in body, name


def test_an_unchanged_asset_answers_304_and_an_unknown_one_the_envelope(
    thread_client: TestClient,
) -> None:
    first = thread_client.get("/dashboard/app.js")
    assert first.headers["content-type"] == "text/javascript; charset=utf-8"
    again = thread_client.get("/dashboard/app.js", headers={"If-None-Match": first.headers["etag"]})
    assert again.status_code == 304 and again.content == b""
    missing = thread_client.get("/dashboard/secrets.txt")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"
    traversal = thread_client.get("/dashboard/..%2Fstats.py")
    assert traversal.status_code == 404


def test_stats_count_jobs_by_state_and_the_last_hour(thread_client: TestClient) -> None:
    for text in ("a", "b"):
        ok = thread_client.post(
            "/v1/analyze", json={"plugin": "testing", "tool": "echo", "inputs": {"text": text}}
        )
        assert ok.status_code == 200
    failed = thread_client.post("/v1/analyze", json={"plugin": "testing", "tool": "fail"})
    assert failed.status_code >= 400
    stats = thread_client.get("/v1/stats").json()
    assert stats["jobs"]["SUCCESS"] == 2 and stats["jobs"]["FAILED"] == 1
    assert stats["queue_depth"] == 0
    hour = stats["last_hour"]
    assert (hour["finished"], hour["failed"]) == (3, 1)
    assert hour["error_rate"] == pytest.approx(1 / 3, abs=1e-3)
    assert hour["throughput_per_min"] == pytest.approx(3 / 60, abs=1e-3)
    assert stats["workers_alive"] == 2 and stats["executor"] == "thread"
    assert stats["plugins"]["testing"]["state"] in {"LOADED", "INITIALIZED"}


def test_stats_leave_out_jobs_older_than_an_hour_and_other_owners(tmp_path: Path) -> None:
    from lensforge.api.dashboard.stats import job_figures

    url = f"sqlite:///{tmp_path / 'lensforge.db'}"
    settings = Settings(database_url=url, data_dir=tmp_path / "data", executor="inline")
    with TestClient(create_app(settings, extra_plugins=[Testing])) as client:
        ok = client.post("/v1/analyze", json={"plugin": "testing", "tool": "noop"})
        assert ok.status_code == 200
    store = JobStore(url)
    try:
        import time

        now = time.time()
        assert job_figures(store, None, now)["last_hour"]["finished"] == 1
        assert job_figures(store, None, now + 3601)["last_hour"]["finished"] == 0
        assert job_figures(store, "someone-else", now)["jobs"]["SUCCESS"] == 0
        assert job_figures(store, "anonymous", now)["jobs"]["SUCCESS"] == 1
    finally:
        store.close()
