"""The plugin contract: schemas from type hints, all-or-nothing registration, lifecycle."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import BaseModel, Field

from lensforge import Image, Plugin, ToolContext, schema_tool, tool
from lensforge.api import create_app
from lensforge.blobs import BlobStore
from lensforge.errors import Cancelled, PluginUnavailable, RegistrationError, ValidationError
from lensforge.execution.tool_runner import ToolCall, ToolRunner
from lensforge.media import MediaLimits
from lensforge.metrics import Metrics
from lensforge.plugin import collect_tools
from lensforge.registry import PluginState, Registry
from lensforge.settings import Settings
from lensforge.wiring import build_registry
from tests.conftest import TEST_PLUGINS
from tests.support import Testing

MISSING_PACKAGE = "lensforge_surely_missing_package_xyz"

# -- plugins used below (module level, so worker processes can import them) -------------------


class Found(BaseModel):
    label: str
    score: float = Field(ge=0, le=1)


class Typed(Plugin):
    """A plugin whose schemas come from its hints."""

    name = "typed"
    version = "2.0.0"

    @tool(timeout_s=5)
    def detect(
        self,
        image: Image,
        threshold: float = 0.5,
        labels: list[str] | None = None,
        ctx: ToolContext | None = None,
    ) -> list[Found]:
        """Find things in an image.

        The first paragraph and the rest both belong to the description.
        """
        return []

    @tool(name="count_words", description="Count the words.")
    def words(self, text: str) -> int:
        """Ignored: the decorator's description wins."""
        return len(text.split())


class NeedsPackage(Plugin):
    """Needs a Python package that is not installed."""

    name = "needs_package"
    requires_packages = (MISSING_PACKAGE,)
    install_hint = f"pip install {MISSING_PACKAGE}"

    @tool
    def go(self) -> dict[str, bool]:
        """Never runs here."""
        return {"ran": True}


class NeedsBinary(Plugin):
    """Needs a program that is not installed."""

    name = "needs_binary"
    requires_binaries = ("lensforge-surely-missing-binary",)

    @tool
    def go(self) -> dict[str, bool]:
        """Never runs here."""
        return {"ran": True}


class BrokenSetup(Plugin):
    """setup() raises."""

    name = "broken_setup"

    def setup(self) -> None:
        raise RuntimeError("model file is corrupt")

    @tool
    def go(self) -> dict[str, bool]:
        """Never runs."""
        return {"ran": True}


class SetupImportError(Plugin):
    """setup() finds a dependency missing at run time."""

    name = "setup_import_error"

    def setup(self) -> None:
        import lensforge_surely_missing_package_xyz  # type: ignore[import-not-found]  # noqa: F401

    @tool
    def go(self) -> dict[str, bool]:
        """Never runs."""
        return {"ran": True}


# -- schemas and descriptions --------------------------------------------------------------------


def test_input_schema_comes_from_the_type_hints() -> None:
    spec = collect_tools(Typed)["detect"]
    schema = spec.input_schema
    assert schema["type"] == "object"
    assert set(schema["properties"]) == {"image", "threshold", "labels"}  # no ctx
    assert schema["required"] == ["image"]
    assert schema["properties"]["image"]["x-lensforge-media"] == "image"
    assert schema["properties"]["threshold"] == {
        "default": 0.5,
        "title": "Threshold",
        "type": "number",
    }
    assert schema["additionalProperties"] is False
    assert spec.media_fields == ("image",)
    assert spec.takes_context is True
    assert spec.timeout_s == 5


def test_output_schema_comes_from_the_return_hint() -> None:
    spec = collect_tools(Typed)["detect"]
    assert spec.output_schema["type"] == "array"
    found = spec.output_schema["$defs"]["Found"]
    assert set(found["properties"]) == {"label", "score"}
    assert found["properties"]["score"]["maximum"] == 1
    assert collect_tools(Typed)["count_words"].output_schema == {"type": "integer"}


def test_docstring_is_the_description() -> None:
    spec = collect_tools(Typed)["detect"]
    assert spec.description.startswith("Find things in an image.")
    assert "The first paragraph and the rest" in spec.description


def test_decorator_name_and_description_win() -> None:
    tools = collect_tools(Typed)
    assert set(tools) == {"detect", "count_words"}
    assert tools["count_words"].description == "Count the words."
    assert tools["count_words"].qualified_name == "typed.count_words"


def test_tools_keep_declaration_order() -> None:
    assert list(collect_tools(Testing))[:3] == ["noop", "echo", "size"]


def test_validate_inputs_lists_every_bad_field() -> None:
    spec = collect_tools(Typed)["detect"]
    with pytest.raises(ValidationError) as info:
        spec.validate_inputs({"threshold": "high", "labels": [1, 2], "extra": True})
    fields = {problem["field"] for problem in info.value.details["errors"]}
    assert {"image", "threshold", "extra"} <= fields
    assert all(field.split(".")[0] in {"image", "threshold", "extra", "labels"} for field in fields)


def test_schema_tool_keeps_its_schema_and_marks_media() -> None:
    class Ported(Plugin):
        name = "ported"

        @schema_tool(
            input_schema={
                "type": "object",
                "properties": {
                    "picture": {"type": "string", "contentMediaType": "image/png"},
                    "k": {"type": "integer", "minimum": 1},
                },
                "required": ["picture"],
            },
            output_schema={"type": "object"},
            description="Ported from a JSON Schema system.",
        )
        def run(self, inputs: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
            return {}

    spec = collect_tools(Ported)["run"]
    assert spec.media_fields == ("picture",)
    assert spec.input_schema["properties"]["picture"]["x-lensforge-media"] == "image"
    assert spec.input_schema["properties"]["k"] == {"type": "integer", "minimum": 1}
    assert spec.description == "Ported from a JSON Schema system."


class Unstorable(Plugin):
    """Returns a valid result that the job store cannot serialize."""

    name = "unstorable"

    @tool
    def huge(self) -> int:
        """An integer past 64 bits."""
        return 2**70


# -- registration is validated and all-or-nothing ---------------------------------------------


def _no_hint() -> type[Plugin]:
    class NoHint(Plugin):
        name = "no_hint"

        @tool
        def ok(self) -> dict[str, int]:
            """Fine."""
            return {}

        @tool
        def broken(self, value) -> dict[str, int]:  # type: ignore[no-untyped-def]
            """The parameter has no hint."""
            return {}

    return NoHint


def _no_docstring() -> type[Plugin]:
    class NoDoc(Plugin):
        name = "no_doc"

        @tool
        def silent(self) -> dict[str, int]:
            return {}

    return NoDoc


def _duplicate() -> type[Plugin]:
    class Duplicate(Plugin):
        name = "duplicate"

        @tool(name="same")
        def first(self) -> dict[str, int]:
            """One."""
            return {}

        @tool(name="same")
        def second(self) -> dict[str, int]:
            """Two."""
            return {}

    return Duplicate


def _bad_plugin_name() -> type[Plugin]:
    class BadName(Plugin):
        name = "Bad-Name"

        @tool
        def ok(self) -> dict[str, int]:
            """Fine."""
            return {}

    return BadName


def _bad_tool_name() -> type[Plugin]:
    class BadToolName(Plugin):
        name = "bad_tool_name"

        @tool(name="Not A Name")
        def ok(self) -> dict[str, int]:
            """Fine."""
            return {}

    return BadToolName


def _invalid_schema() -> type[Plugin]:
    class InvalidSchema(Plugin):
        name = "invalid_schema"

        @schema_tool(input_schema={"type": "object", "properties": {"x": {"type": "nonsense"}}})
        def ported(self, inputs: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
            """Its schema is broken."""
            return {}

    return InvalidSchema


def _non_object_schema() -> type[Plugin]:
    class ArraySchema(Plugin):
        name = "array_schema"

        @schema_tool(input_schema={"type": "array"})
        def ported(self, inputs: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
            """Inputs must be an object."""
            return {}

    return ArraySchema


def _no_tools() -> type[Plugin]:
    class Empty(Plugin):
        name = "empty"

        def helper(self) -> None:
            """Not a tool."""

    return Empty


def _var_args() -> type[Plugin]:
    class VarArgs(Plugin):
        name = "var_args"

        @tool
        def spread(self, *values: int) -> dict[str, int]:
            """Cannot be described."""
            return {}

    return VarArgs


def _bad_timeout() -> type[Plugin]:
    class BadTimeout(Plugin):
        name = "bad_timeout"

        @tool(timeout_s=0)
        def quick(self) -> dict[str, int]:
            """Zero seconds is not a limit."""
            return {}

    return BadTimeout


def _unschemable() -> type[Plugin]:
    class Unschemable(Plugin):
        name = "unschemable"

        @tool
        def take(self, lock: threading.Lock) -> dict[str, int]:  # type: ignore[valid-type]
            """A lock cannot be JSON."""
            return {}

    return Unschemable


@pytest.mark.parametrize(
    ("make", "plugin", "tool_name", "words"),
    [
        (_no_hint, "no_hint", "broken", "value"),
        (_no_docstring, "no_doc", "silent", "description"),
        (_duplicate, "duplicate", "same", "share"),
        (_bad_plugin_name, None, None, "Bad-Name"),
        (_bad_tool_name, "bad_tool_name", "Not A Name", "names must match"),
        (_invalid_schema, "invalid_schema", "ported", "input schema is invalid"),
        (_non_object_schema, "array_schema", "ported", "object"),
        (_no_tools, None, None, "no tools"),
        (_var_args, "var_args", "spread", "values"),
        (_bad_timeout, "bad_timeout", "quick", "timeout_s"),
        (_unschemable, "unschemable", "take", "JSON Schema"),
    ],
    ids=[
        "missing-hint",
        "missing-docstring",
        "duplicate-names",
        "bad-plugin-name",
        "bad-tool-name",
        "invalid-json-schema",
        "non-object-schema",
        "no-tools",
        "var-args",
        "zero-timeout",
        "unschemable-type",
    ],
)
def test_registration_errors_name_the_plugin_tool_and_problem(
    make: Any, plugin: str | None, tool_name: str | None, words: str
) -> None:
    plugin_cls = make()
    registry = Registry()
    with pytest.raises(RegistrationError) as info:
        registry.register(plugin_cls)
    error = info.value
    assert words in error.message
    if plugin is not None:
        assert f"'{plugin}'" in error.message
        assert error.plugin == plugin
    if tool_name is not None:
        assert f"'{tool_name}'" in error.message
        assert error.tool == tool_name
    assert registry.names() == []  # all or nothing: not even the good tools


def test_register_refuses_what_is_not_a_plugin() -> None:
    class NotAPlugin:
        name = "nope"

    with pytest.raises(RegistrationError):
        Registry().register(NotAPlugin)  # type: ignore[arg-type]


def test_two_classes_cannot_share_a_plugin_name() -> None:
    class Other(Plugin):
        name = "testing"

        @tool
        def x(self) -> dict[str, int]:
            """X."""
            return {}

    registry = Registry()
    registry.register(Testing)
    with pytest.raises(RegistrationError, match="already registered"):
        registry.register(Other)
    assert registry.get("testing").plugin_cls is Testing


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
    assert "lensforge-surely-missing-binary" in (record.reason or "")


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


LIFECYCLE_PLUGINS = [*TEST_PLUGINS, Typed, Unstorable, NeedsPackage, NeedsBinary, BrokenSetup]


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
    from tests.support import png

    files = {"image": ("x.png", png(), "image/png")}
    response = lifecycle_client.post("/v1/analyze", files=files, data={"plugin": "typed.detect"})
    assert response.status_code == 200, response.text
    assert response.json()["result"] == []


def test_a_tool_with_a_scalar_result_runs_through_the_server(
    lifecycle_client: TestClient,
) -> None:
    submitted = lifecycle_client.post(
        "/v1/jobs", json={"plugin": "typed", "tool": "count_words", "inputs": {"text": "a b c"}}
    )
    assert submitted.status_code == 202, submitted.text
    job_id = submitted.json()["job_id"]
    deadline = time.monotonic() + 10
    job: dict[str, Any] = {}
    while time.monotonic() < deadline:
        job = lifecycle_client.get(f"/v1/jobs/{job_id}").json()
        if job["status"] in {"SUCCESS", "FAILED", "CANCELLED"}:
            break
        time.sleep(0.05)
    assert job["status"] == "SUCCESS", job
    assert lifecycle_client.get(f"/v1/jobs/{job_id}/result").json()["result"] == 3
    assert lifecycle_client.get("/v1/jobs", params={"plugin": "typed"}).status_code == 200


def test_a_result_the_store_cannot_hold_fails_the_job_at_once(
    lifecycle_client: TestClient,
) -> None:
    submitted = lifecycle_client.post("/v1/jobs", json={"plugin": "unstorable"})
    assert submitted.status_code == 202, submitted.text
    job_id = submitted.json()["job_id"]
    deadline = time.monotonic() + 3  # its lease (30 s) must not be what ends it
    job: dict[str, Any] = {}
    while time.monotonic() < deadline:
        job = lifecycle_client.get(f"/v1/jobs/{job_id}").json()
        if job["status"] in {"SUCCESS", "FAILED", "CANCELLED"}:
            break
        time.sleep(0.05)
    assert job["status"] in {"SUCCESS", "FAILED"}, job
    assert job["attempts"] == 1


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


# -- ToolContext --------------------------------------------------------------------------------


def test_tool_context_progress_is_clamped_and_forwarded() -> None:
    seen: list[tuple[float, str | None]] = []
    ctx = ToolContext(plugin="p", tool="t", on_progress=lambda f, m: seen.append((f, m)))
    ctx.progress(0.5, "half")
    ctx.progress(-1)
    ctx.progress(7, "over")
    assert seen == [(0.5, "half"), (0.0, None), (1.0, "over")]
    ToolContext().progress(0.5)  # no listener: nothing happens


def test_tool_context_cancellation() -> None:
    event = threading.Event()
    ctx = ToolContext(job_id="j1", plugin="p", tool="t", cancel_event=event)
    assert ctx.cancelled is False
    ctx.check_cancelled()
    event.set()
    assert ctx.cancelled is True
    with pytest.raises(Cancelled) as info:
        ctx.check_cancelled()
    assert (info.value.job_id, info.value.plugin, info.value.tool) == ("j1", "p", "t")


@pytest.fixture
def runner(tmp_path: Path) -> ToolRunner:
    registry = Registry()
    for plugin_cls in TEST_PLUGINS:
        registry.register(plugin_cls)
    return ToolRunner(registry, BlobStore(tmp_path / "blobs"), MediaLimits())


def test_the_runner_passes_progress_to_the_context(runner: ToolRunner) -> None:
    seen: list[float] = []
    ctx = ToolContext(plugin="testing", tool="sleep", on_progress=lambda f, m: seen.append(f))
    outcome = runner.run(ToolCall("testing", "sleep", {"seconds": 0.2}), ctx)
    assert outcome.ok, outcome.error
    assert outcome.result == {"slept": 0.2}
    assert len(seen) >= 2
    assert seen == sorted(seen)
    assert all(0.0 <= f <= 1.0 for f in seen)


def test_the_runner_reports_a_cancelled_tool(runner: ToolRunner) -> None:
    event = threading.Event()
    event.set()
    ctx = ToolContext(job_id="j", plugin="testing", tool="sleep", cancel_event=event)
    outcome = runner.run(ToolCall("testing", "sleep", {"seconds": 5}, job_id="j"), ctx)
    assert outcome.error_code == "cancelled"
    assert outcome.duration_s < 2
    assert runner.registry.metrics.tool("testing", "sleep")["errors"] == {"cancelled": 1}


def test_the_runner_records_metrics_in_every_outcome(runner: ToolRunner) -> None:
    assert runner.run(ToolCall("testing", "noop", {})).ok
    assert runner.run(ToolCall("testing", "fail", {})).error_code == "plugin_error"
    assert runner.run(ToolCall("testing", "echo", {"text": 1})).error_code == "validation_error"
    assert runner.run(ToolCall("testing", "nope", {})).error_code == "tool_not_found"
    metrics = runner.registry.metrics
    assert metrics.tool("testing", "noop")["successes"] == 1
    assert metrics.tool("testing", "fail")["errors"] == {"plugin_error": 1}
    assert metrics.tool("testing", "echo")["errors"] == {"validation_error": 1}
