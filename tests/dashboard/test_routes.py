"""The dashboard's routes in process: the page and assets, and GET /v1/stats."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from lensforge.api import create_app
from lensforge.api.dashboard.routes import ASSETS
from lensforge.api.dashboard.stats import last_hour
from lensforge.settings import Settings
from lensforge.store import JobRecord, Status
from tests.plugins_for_tests import Testing


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
    for name, asset in ASSETS.files.items():
        if name.endswith(".js"):
            for imported in re.findall(rb'from "\./([^"]+)"', asset.body):
                assert imported.decode() in ASSETS.files, (name, imported)
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


def record(n: int, status: Status, created: float, finished: float | None) -> JobRecord:
    return JobRecord(
        id=f"job-{n:04d}",
        plugin="testing",
        tool="echo",
        status=status,
        inputs={},
        result=None,
        error=None,
        traceback=None,
        attempts=1,
        max_attempts=1,
        progress=1.0,
        progress_message=None,
        owner="anonymous",
        idempotency_key=None,
        request_hash=None,
        timeout_s=None,
        retry_on=(),
        cancel_requested=False,
        lease_owner=None,
        lease_expires_at=None,
        not_before=None,
        created_at=created,
        updated_at=created,
        started_at=created,
        finished_at=finished,
    )


def test_the_last_hour_counts_jobs_finished_inside_it_and_says_what_it_covered() -> None:
    now = 100_000.0
    sample = [
        record(1, Status.SUCCESS, now - 10, now - 9),
        record(2, Status.FAILED, now - 20, now - 19),
        record(3, Status.RUNNING, now - 30, None),
        record(4, Status.SUCCESS, now - 4000, now - 3700),  # finished before the hour
        record(5, Status.SUCCESS, now - 4000, now - 3500),  # created before, finished inside
    ]
    hour = last_hour(sample, now, complete=True)
    assert (hour["finished"], hour["failed"]) == (3, 1)
    assert hour["error_rate"] == pytest.approx(1 / 3, abs=1e-3)
    assert hour["throughput_per_min"] == pytest.approx(3 / 60, abs=1e-3)
    assert hour["complete"] is True and hour["covered_s"] == 3600
    # A full sample whose oldest job is 100 s old: the rate is over those 100 s.
    partial = last_hour(sample[:3], now, complete=False)
    assert partial["complete"] is False and partial["covered_s"] == 30
    assert partial["throughput_per_min"] == pytest.approx(2 / 0.5, abs=1e-3)


def test_a_non_admin_key_counts_only_its_own_jobs(tmp_path: Path) -> None:
    from tests.security.conftest import make_settings, open_secure

    with contextmanager(open_secure)(make_settings(tmp_path), [Testing]) as secure:
        alice, bob, admin = secure.alice, secure.bob, secure.admin
        for tenant, n in ((alice, 2), (bob, 1)):
            for _ in range(n):
                done = secure.client.post(
                    "/v1/analyze",
                    json={"plugin": "testing", "tool": "noop"},
                    headers=tenant.headers,
                )
                assert done.status_code == 200, done.text
        mine = secure.client.get("/v1/stats", headers=alice.headers).json()
        assert mine["jobs"]["SUCCESS"] == 2 and mine["last_hour"]["finished"] == 2
        everyone = secure.client.get("/v1/stats", headers=admin.headers).json()
        assert everyone["jobs"]["SUCCESS"] == 3 and everyone["jobs_complete"] is True
        assert secure.client.get("/v1/stats").status_code == 401
