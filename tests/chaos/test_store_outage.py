"""Issue 15, items 1 and 2: a sick PostgreSQL costs callers a 503, never a frozen API or a 500.

A real server on a PostgreSQL cluster of the test's own, with auth on: the cluster is
stopped (connections refused) and, separately, frozen with SIGSTOP (connections accepted
by the kernel, never answered: only client-side time limits help). ``/healthz`` answers
throughout; requests that need the store answer 503 ``store_unavailable`` with Retry-After.
"""

from __future__ import annotations

import asyncio
import signal
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from lensforge.security.keys import KeyStore
from lensforge.store import JobStore
from tests.chaos.support import Postgres, Server, probe

pytestmark = [pytest.mark.chaos, pytest.mark.slow, pytest.mark.timeout(240)]
NOOP = {"plugin": "testing", "tool": "noop", "inputs": {}}


def _server_with_key(tmp_path: Path, postgres: Postgres) -> tuple[Server, dict[str, str]]:
    store = JobStore(postgres.url)
    store.migrate()
    _, secret = KeyStore(store.engine).create("chaos", ("analyze", "read"))
    store.close()
    server = Server(tmp_path, postgres.url)
    server.start()
    return server, {"Authorization": f"Bearer {secret}"}


def _wait_for(url: str, path: str, status: int, headers: dict[str, str], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    seen = None
    while time.monotonic() < deadline:
        try:
            seen = httpx.get(url + path, headers=headers, timeout=5).status_code
        except httpx.HTTPError as exc:
            seen = repr(exc)
        if seen == status:
            return
        time.sleep(0.2)
    raise AssertionError(f"{path} never answered {status} (last: {seen})")


def test_a_stopped_database_answers_503_and_liveness_stays_200(
    tmp_path: Path, postgres: Postgres
) -> None:
    server, auth = _server_with_key(tmp_path, postgres)
    try:
        with httpx.Client(base_url=server.url, headers=auth, timeout=30) as client:
            job_id = client.post("/v1/analyze", json=NOOP).json()["job_id"]
            postgres.stop()
            time.sleep(2.5)  # past the key cache: key checks need the database again
            answers = {
                "get": client.get(f"/v1/jobs/{job_id}"),
                "submit": client.post("/v1/jobs", json=NOOP),
                "analyze": client.post("/v1/analyze", json=NOOP),
                "ready": client.get("/readyz"),
            }
            for name, response in answers.items():
                assert response.status_code == 503, (name, response.text)
                assert response.json()["error"]["code"] == "store_unavailable", name
                assert int(response.headers["Retry-After"]) >= 1, name
            assert client.get("/healthz").status_code == 200
            postgres.start()
            _wait_for(server.url, f"/v1/jobs/{job_id}", 200, auth, timeout_s=30)
            assert client.post("/v1/analyze", json=NOOP).status_code == 200
    finally:
        server.kill()


def test_a_frozen_database_never_freezes_the_api(tmp_path: Path, postgres: Postgres) -> None:
    server, auth = _server_with_key(tmp_path, postgres)
    statuses: Counter[int] = Counter()
    stop = threading.Event()

    def keyed_load() -> None:  # requests whose key checks need the frozen database
        with httpx.Client(base_url=server.url, headers=auth, timeout=30) as client:
            while not stop.is_set():
                try:
                    statuses[client.get("/v1/jobs?limit=1").status_code] += 1
                except httpx.HTTPError:
                    statuses[0] += 1

    try:
        assert httpx.get(server.url + "/v1/jobs", headers=auth).status_code == 200
        postgres.signal(signal.SIGSTOP)
        time.sleep(2.5)  # past the key cache
        threads = [threading.Thread(target=keyed_load, daemon=True) for _ in range(4)]
        for thread in threads:
            thread.start()
        slowest = 0.0
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            status, took = probe(server.url)
            assert status == 200, "liveness stopped answering while the database hung"
            slowest = max(slowest, took)
            time.sleep(0.2)
        assert slowest < 1.0, slowest
        postgres.signal(signal.SIGCONT)
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
        assert statuses[500] == 0, statuses
        assert statuses[503] > 0, statuses  # a hung key lookup gives up: 503
        _wait_for(server.url, "/v1/jobs", 200, auth, timeout_s=60)
    finally:
        stop.set()
        postgres.signal(signal.SIGCONT)
        server.kill()


def test_the_job_store_survives_a_stopped_database_unchanged(postgres: Postgres) -> None:
    """Reads through the raw DB-API connection (a job by id) map to StoreError too."""
    from lensforge.errors import StoreError

    store = JobStore(postgres.url)
    store.migrate()
    try:
        postgres.stop()
        with pytest.raises(StoreError):
            asyncio.run(store.get("no-such-job"))
        with pytest.raises(StoreError):
            asyncio.run(store.counts())
    finally:
        store.close()
        postgres.start()
