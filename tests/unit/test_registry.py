"""The registry: lifecycle states (UNAVAILABLE, FAILED), discovery is not enablement, the
server with such plugins, and metrics."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from lensforge import Plugin, tool
from lensforge.api import create_app
from lensforge.errors import PluginUnavailable
from lensforge.metrics import Metrics
from lensforge.registry import PluginState, Registry
from lensforge.settings import Settings
from lensforge.wiring import build_registry
from tests.plugins_for_tests import (
    MISSING_BINARY,
    MISSING_PACKAGE,
    TEST_PLUGINS,
    BrokenSetup,
    NeedsBinary,
    NeedsPackage,
    Ported,
    SetupImportError,
    Testing,
    Typed,
    Unstorable,
)
from tests.support import png, wait_for_job

# -- lifecycle: UNAVAILABLE and FAILED --------------------------------------------------------


def test_missing_package_makes_the_plugin_unavailable() -> None:
    registry = Registry()
    record = registry.register(NeedsPackage)
    assert record.state is PluginState.UNAVAILABLE
    assert record.reason is not None
    assert MISSING_PACKAGE in record.reason
    assert f"pip install {MISSING_PACKAGE}" in record.reason
    with pytest.raises(PluginUnavailable) as info:
        registry.check_available("needs_package")
    assert MISSING_PACKAGE in info.value.message
    registry.initialize()  # setup is never attempted for an unavailable plugin
    assert registry.get("needs_package").state is PluginState.UNAVAILABLE


def test_missing_dotted_package_makes_the_plugin_unavailable() -> None:
    class NeedsSubmodule(Plugin):
        name = "needs_submodule"
        requires_packages = (f"{MISSING_PACKAGE}.sub",)

        @tool
        def go(self) -> dict[str, bool]:
            """Never runs here."""
            return {"ran": True}

    record = Registry().register(NeedsSubmodule)
    assert record.state is PluginState.UNAVAILABLE
    assert MISSING_PACKAGE in (record.reason or "")


def test_missing_binary_makes_the_plugin_unavailable() -> None:
    record = Registry().register(NeedsBinary)
    assert record.state is PluginState.UNAVAILABLE
    assert MISSING_BINARY in (record.reason or "")


def test_setup_raising_fails_the_plugin() -> None:
    registry = Registry()
    registry.register(BrokenSetup)
    registry.register(SetupImportError)
    registry.register(Testing)
    registry.initialize()
    broken = registry.get("broken_setup")
    assert broken.state is PluginState.FAILED
    assert "model file is corrupt" in (broken.reason or "")
    assert registry.get("setup_import_error").state is PluginState.UNAVAILABLE
    assert registry.get("testing").state is PluginState.INITIALIZED
    with pytest.raises(PluginUnavailable):
        registry.check_available("broken_setup")


LIFECYCLE_PLUGINS = [
    *TEST_PLUGINS,
    Typed,
    Ported,
    Unstorable,
    NeedsPackage,
    NeedsBinary,
    BrokenSetup,
]


@pytest.fixture(scope="module")
def lifecycle_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    root = tmp_path_factory.mktemp("lifecycle")
    settings = Settings(
        database_url=f"sqlite:///{root / 'lensforge.db'}",
        data_dir=root / "data",
        workers=1,
        poll_interval_s=0.05,
    )
    with TestClient(create_app(settings, extra_plugins=LIFECYCLE_PLUGINS)) as client:
        yield client


def test_server_starts_and_lists_unavailable_plugins(lifecycle_client: TestClient) -> None:
    plugins = {p["name"]: p for p in lifecycle_client.get("/v1/plugins").json()["plugins"]}
    assert plugins["needs_package"]["state"] == "UNAVAILABLE"
    assert MISSING_PACKAGE in plugins["needs_package"]["reason"]
    assert plugins["needs_binary"]["state"] == "UNAVAILABLE"
    assert plugins["testing"]["state"] in {"INITIALIZED", "LOADED", "RUNNING"}
    assert lifecycle_client.get("/readyz").status_code == 200


@pytest.mark.parametrize("plugin", ["needs_package", "needs_binary"])
def test_calls_to_an_unavailable_plugin_answer_503(
    lifecycle_client: TestClient, plugin: str
) -> None:
    for url in ("/v1/analyze", "/v1/jobs"):
        response = lifecycle_client.post(url, json={"plugin": plugin, "tool": "go"})
        assert response.status_code == 503, response.text
        error = response.json()["error"]
        assert error["code"] == "plugin_unavailable"
        assert error["plugin"] == plugin
    assert lifecycle_client.post(
        "/v1/analyze", json={"plugin": "single", "inputs": {"value": 2}}
    ).json()["result"] == {"value": 4}


def test_calls_to_a_plugin_whose_setup_failed_answer_503(lifecycle_client: TestClient) -> None:
    response = lifecycle_client.post("/v1/analyze", json={"plugin": "broken_setup", "tool": "go"})
    assert response.status_code == 503, response.text
    assert response.json()["error"]["code"] == "plugin_unavailable"
    assert "corrupt" in response.json()["error"]["message"]
    manifest = lifecycle_client.get("/v1/plugins/broken_setup").json()
    assert manifest["state"] == "FAILED"
    assert "model file is corrupt" in manifest["reason"]


def test_a_tool_with_a_list_result_runs_through_the_server(lifecycle_client: TestClient) -> None:
    files = {"image": ("x.png", png(), "image/png")}
    response = lifecycle_client.post("/v1/analyze", files=files, data={"plugin": "typed.detect"})
    assert response.status_code == 200, response.text
    assert response.json()["result"] == []


def test_a_schema_tool_breaking_its_output_schema_fails_in_a_worker(
    lifecycle_client: TestClient,
) -> None:
    body = {"plugin": "ported", "tool": "echo_words", "inputs": {"words": ["a", 2]}}
    response = lifecycle_client.post("/v1/analyze", json=body)
    assert response.status_code == 502, response.text
    error = response.json()["error"]
    assert error["code"] == "plugin_error"
    assert "breaks its output schema" in error["message"]
    body["inputs"] = {"words": ["a", "b"]}
    assert lifecycle_client.post("/v1/analyze", json=body).json()["result"] == {"words": ["a", "b"]}


def test_a_tool_with_a_scalar_result_runs_through_the_server(
    lifecycle_client: TestClient,
) -> None:
    submitted = lifecycle_client.post(
        "/v1/jobs", json={"plugin": "typed", "tool": "count_words", "inputs": {"text": "a b c"}}
    )
    assert submitted.status_code == 202, submitted.text
    job_id = submitted.json()["job_id"]
    job = wait_for_job(lifecycle_client, job_id, timeout_s=10)
    assert job["status"] == "SUCCESS", job
    assert lifecycle_client.get(f"/v1/jobs/{job_id}/result").json()["result"] == 3
    assert lifecycle_client.get("/v1/jobs", params={"plugin": "typed"}).status_code == 200


def test_a_result_the_store_cannot_hold_fails_the_job_at_once(
    lifecycle_client: TestClient,
) -> None:
    submitted = lifecycle_client.post("/v1/jobs", json={"plugin": "unstorable"})
    assert submitted.status_code == 202, submitted.text
    job_id = submitted.json()["job_id"]
    job = wait_for_job(lifecycle_client, job_id, timeout_s=3)  # far below its 30 s lease
    assert job["status"] == "FAILED", job
    assert job["attempts"] == 1
    assert job["error"]["code"] == "plugin_error"
    assert "cannot be stored as JSON" in job["error"]["message"]


# -- discovery is not enablement --------------------------------------------------------------


def test_builtin_plugins_come_from_entry_points(tmp_path: Path) -> None:
    registry = build_registry(Settings(data_dir=tmp_path))
    assert "image" in registry.names()
    assert registry.get("image").plugin_cls.__module__ == "lensforge.builtin.image"


def test_allow_list(tmp_path: Path) -> None:
    registry = build_registry(Settings(data_dir=tmp_path, plugins_allow=["image"]))
    assert registry.names() == ["image"]
    none = build_registry(Settings(data_dir=tmp_path, plugins_allow=["something_else"]))
    assert "image" not in none.names()


def test_block_list(tmp_path: Path) -> None:
    registry = build_registry(Settings(data_dir=tmp_path, plugins_block=["image"]))
    assert "image" not in registry.names()


def test_lists_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LENSFORGE_PLUGINS_BLOCK", "image, faces ,")
    monkeypatch.setenv("LENSFORGE_PLUGINS_ALLOW", "ocr")
    settings = Settings()
    assert settings.plugins_block == ["image", "faces"]
    assert settings.plugins_allow == ["ocr"]


def test_blocked_plugin_is_unknown_to_the_server(settings: Settings) -> None:
    blocked = settings.model_copy(update={"plugins_block": ["image"], "executor": "thread"})
    with TestClient(create_app(blocked, extra_plugins=TEST_PLUGINS)) as client:
        names = [p["name"] for p in client.get("/v1/plugins").json()["plugins"]]
        assert "image" not in names
        assert "testing" in names
        response = client.post("/v1/analyze", json={"plugin": "image", "tool": "info"})
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "plugin_not_found"


# -- metrics ----------------------------------------------------------------------------------


def test_metrics_are_exact_under_concurrent_recording() -> None:
    metrics = Metrics()
    threads, per_thread = 8, 2000
    barrier = threading.Barrier(threads)

    def record(index: int) -> None:
        barrier.wait(timeout=30)
        for i in range(per_thread):
            code = None if i % 4 else ("timeout" if index % 2 else "plugin_error")
            metrics.record("p", "a" if i % 2 else "b", 0.001 * (i % 10), code)

    workers = [threading.Thread(target=record, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    total = threads * per_thread
    a, b, whole = metrics.tool("p", "a"), metrics.tool("p", "b"), metrics.plugin("p")
    assert a["calls"] == b["calls"] == total // 2
    assert a["errors"] == {}  # odd i never fails
    assert b["errors"] == {"plugin_error": total // 8, "timeout": total // 8}
    assert b["successes"] == total // 2 - total // 4
    assert whole["calls"] == total
    assert whole["successes"] == total - total // 4
    assert sum(whole["errors"].values()) == total // 4
    assert whole["latency_ms"]["max"] == pytest.approx(9.0)
    assert metrics.tool("p", "never")["calls"] == 0
