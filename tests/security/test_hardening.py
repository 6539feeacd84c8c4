"""Issue 15: what a hostile caller or a misbehaving tool may cost is bounded (in process).

- item 3: inputs with too many keys are refused at once, with one short error;
- item 9: a timeout kill reaches the processes a tool started (its worker's process group);
- item 10: results over LENSFORGE_MAX_RESULT_BYTES fail with a clear plugin_error;
- item 13: a tool's exception text stays out of responses unless it raises ToolError.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from fastapi.testclient import TestClient

from lensforge.api import create_app
from lensforge.blobs import BlobStore
from lensforge.execution.tool_runner import MAX_RESULT_BYTES, ToolCall, ToolRunner
from lensforge.media import MediaLimits
from lensforge.registry import Registry
from lensforge.settings import Settings
from tests.plugins_for_tests import Shapes
from tests.security.hardened import Hardened


@pytest.fixture
def runner(tmp_path: Path) -> ToolRunner:
    registry = Registry()
    registry.register(Hardened)
    return ToolRunner(registry, BlobStore(tmp_path / "blobs"), MediaLimits())


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead too (its parent, the killed worker, is gone; init reaps it).
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split(") ", 1)[1][0] != "Z"


def test_a_tool_error_message_reaches_callers(runner: ToolRunner) -> None:
    outcome = runner.run(ToolCall("hardened", "refuse", {"reason": "No page here."}))
    assert outcome.error is not None
    error = outcome.error["error"]
    assert (error["code"], error["message"]) == ("plugin_error", "No page here.")
    assert error["details"] == {"hint": "photograph the whole sheet", "exception": "ToolError"}


def test_a_result_over_the_cap_fails_with_a_clear_error(runner: ToolRunner) -> None:
    assert MAX_RESULT_BYTES == 8 * 1024 * 1024
    outcome = runner.run(ToolCall("hardened", "big", {"megabytes": 100}))
    assert outcome.error_code == "plugin_error"
    assert outcome.error is not None
    error = outcome.error["error"]
    assert "ImageArtifact" in error["message"]
    assert error["details"]["max_result_bytes"] == MAX_RESULT_BYTES
    assert error["details"]["result_bytes"] > 100 * 1024 * 1024
    small = runner.run(ToolCall("hardened", "big", {"megabytes": 1}))
    assert small.ok, small.error
    capped = ToolRunner(runner.registry, runner.blobs, runner.limits, max_result_bytes=4096)
    assert capped.run(ToolCall("hardened", "big", {"megabytes": 1})).error_code == "plugin_error"


@pytest.fixture
def shapes_client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings, extra_plugins=[Shapes])) as client:
        yield client


def test_a_million_keys_are_refused_fast(shapes_client: TestClient) -> None:
    data = {f"k{i}": 0 for i in range(1_000_000)}
    body = orjson.dumps({"plugin": "shapes", "tool": "count", "inputs": {"data": data}})
    assert 10 * 1024 * 1024 < len(body) < 16 * 1024 * 1024
    started = time.perf_counter()
    response = shapes_client.post(
        "/v1/analyze", content=body, headers={"content-type": "application/json"}
    )
    elapsed = time.perf_counter() - started
    assert response.status_code == 422, response.text[:500]
    error = response.json()["error"]
    assert error["details"] == {"max_keys": 1_000}
    assert len(response.content) < 2_000  # one short error, not one per key
    assert elapsed < 10, elapsed  # was 72 s before the cap
    ok = shapes_client.post(
        "/v1/analyze",
        json={"plugin": "shapes", "tool": "count", "inputs": {"data": {"a": 1, "b": 2}}},
    )
    assert ok.status_code == 200, ok.text


def test_a_timeout_kill_reaches_the_tools_children(settings: Settings, tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    local = settings.model_copy(update={"executor": "local", "workers": 1})
    with TestClient(create_app(local, extra_plugins=[Hardened])) as client:
        response = client.post(
            "/v1/analyze",
            json={
                "plugin": "hardened",
                "tool": "spawn",
                "inputs": {"pid_file": str(pid_file)},
                "timeout_s": 2,
            },
        )
        assert response.json()["error"]["code"] == "timeout", response.text
        child = int(pid_file.read_text())
        deadline = time.monotonic() + 5
        while _alive(child) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(child), "the tool's child outlived the timeout kill"
        # and at shutdown: a second call's child dies with the server's workers
        pid_file.unlink()
        submitted = client.post(
            "/v1/jobs",
            json={"plugin": "hardened", "tool": "spawn", "inputs": {"pid_file": str(pid_file)}},
        )
        assert submitted.status_code in (200, 201, 202), submitted.text
        deadline = time.monotonic() + 15
        while not pid_file.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        second = int(pid_file.read_text())
        assert _alive(second)
    deadline = time.monotonic() + 5
    while _alive(second) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(second), "the tool's child outlived the server's shutdown"
