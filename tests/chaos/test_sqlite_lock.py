"""Issue 15, item 7: a process frozen while holding a SQLite file's write lock costs the other
servers on the file a bounded wait and a 503 with Retry-After, not an endless stall."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import httpx
import pytest

from tests.chaos.support import Server

pytestmark = [pytest.mark.chaos, pytest.mark.slow, pytest.mark.timeout(120)]
NOOP = {"plugin": "testing", "tool": "noop", "inputs": {}}


def test_a_held_write_lock_answers_503_within_the_busy_timeout(tmp_path: Path) -> None:
    path = tmp_path / "lensforge.db"
    server = Server(tmp_path, f"sqlite:///{path}")
    server.start()
    try:
        with httpx.Client(base_url=server.url, timeout=60) as client:
            assert client.post("/v1/analyze", json=NOOP).status_code == 200
            holder = sqlite3.connect(path, isolation_level=None)  # "a frozen server"
            holder.execute("BEGIN IMMEDIATE")
            started = time.perf_counter()
            response = client.post("/v1/analyze", json=NOOP)
            waited = time.perf_counter() - started
            assert response.status_code == 503, response.text
            assert response.json()["error"]["code"] == "store_unavailable"
            assert int(response.headers["Retry-After"]) >= 1
            assert waited < 10, waited  # the busy timeout (5 s), not a stall (was > 12 s)
            assert client.get("/healthz").status_code == 200
            holder.rollback()
            holder.close()
            assert client.post("/v1/analyze", json=NOOP).status_code == 200
    finally:
        server.kill()
