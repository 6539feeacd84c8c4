"""ToolRunner: validate, decode media, call, check the output, record metrics; every
failure an envelope."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from lensforge import Plugin, ToolContext, ToolError, tool
from lensforge.blobs import BlobStore
from lensforge.execution.tool_runner import ToolCall, ToolRunner
from lensforge.media import MediaLimits
from lensforge.registry import Registry
from tests.plugins_for_tests import TEST_PLUGINS, Ported, Unstorable
from tests.support import png


@pytest.fixture
def runner(tmp_path: Path) -> ToolRunner:
    registry = Registry()
    for plugin_cls in [*TEST_PLUGINS, Ported, Unstorable]:
        registry.register(plugin_cls)
    return ToolRunner(registry, BlobStore(tmp_path / "blobs"), MediaLimits())


def test_a_call_builds_the_context_of_its_tool() -> None:
    event = threading.Event()
    seen: list[float] = []
    call = ToolCall("testing", "sleep", {}, job_id="j7", attempt=2)
    ctx = call.context(on_progress=lambda f, m: seen.append(f), cancel_event=event)
    assert (ctx.job_id, ctx.plugin, ctx.tool, ctx.attempt) == ("j7", "testing", "sleep", 2)
    ctx.progress(0.25)
    assert seen == [0.25]
    assert not ctx.cancelled
    event.set()
    assert ctx.cancelled
    bare = ToolCall("single", "only", {}).context()
    assert (bare.job_id, bare.attempt, bare.cancelled) == (None, 1, False)


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


def test_a_schema_tool_gets_decoded_images(runner: ToolRunner) -> None:
    blob = runner.blobs.put(png(7, 5))
    outcome = runner.run(ToolCall("ported", "run", {"picture": {"blob": blob}, "k": 3}))
    assert outcome.ok, outcome.error
    assert outcome.result == {"width": 7, "k": 3}


def test_a_schema_tool_output_breaking_its_schema_is_a_plugin_error(runner: ToolRunner) -> None:
    good = runner.run(ToolCall("ported", "echo_words", {"words": ["a"]}))
    assert good.ok, good.error
    assert good.result == {"words": ["a"]}
    for words in ([1, 2], "a b", None):
        outcome = runner.run(ToolCall("ported", "echo_words", {"words": words}, job_id="j1"))
        assert outcome.result is None
        assert outcome.error_code == "plugin_error", outcome.error
        assert outcome.error is not None
        error = outcome.error["error"]
        assert "breaks its output schema" in error["message"]
        assert (error["plugin"], error["tool"], error["job_id"]) == ("ported", "echo_words", "j1")
    metrics = runner.registry.metrics.tool("ported", "echo_words")
    assert metrics["errors"] == {"plugin_error": 3}


def test_a_result_json_cannot_carry_is_a_plugin_error(runner: ToolRunner) -> None:
    outcome = runner.run(ToolCall("unstorable", "huge", {}))
    assert outcome.error_code == "plugin_error"
    assert outcome.error is not None
    assert "cannot be stored as JSON" in outcome.error["error"]["message"]
    assert outcome.traceback is not None


def test_a_tool_that_raises_gives_callers_its_type_only_and_the_log_its_text(
    runner: ToolRunner, caplog: pytest.LogCaptureFixture
) -> None:
    call = ToolCall("testing", "fail", {"message": "cannot open /srv/secret.key"}, job_id="j9")
    with caplog.at_level("WARNING", logger="lensforge"):
        outcome = runner.run(call, call.context())
    assert outcome.error is not None
    error = outcome.error["error"]
    assert error["code"] == "plugin_error"
    assert error["message"] == (
        "The tool raised RuntimeError; the job's record and the server log have the "
        "details (raise lensforge.ToolError to give callers a message)."
    )
    assert error["details"] == {"exception": "RuntimeError"}
    assert (error["plugin"], error["tool"], error["job_id"]) == ("testing", "fail", "j9")
    assert "secret.key" not in str(outcome.error)
    assert outcome.traceback is not None and "secret.key" in outcome.traceback
    (record,) = [r for r in caplog.records if getattr(r, "event", None) == "tool_raised"]
    assert record.job_id == "j9"  # type: ignore[attr-defined]
    assert "cannot open /srv/secret.key" in record.getMessage()


def test_a_tool_error_reaches_callers_in_the_tools_own_words(tmp_path: Path) -> None:
    class Sheets(Plugin):
        """A plugin whose tool refuses with a message written for callers."""

        name = "sheets"
        version = "1.0.0"

        @tool
        def read(self, pages: int = 0) -> dict[str, int]:
            """Refuse an empty sheet."""
            raise ToolError("The image holds no page.", details={"pages": pages})

    registry = Registry()
    registry.register(Sheets)
    runner = ToolRunner(registry, BlobStore(tmp_path / "blobs"), MediaLimits())
    call = ToolCall("sheets", "read", {"pages": 0}, job_id="j4")
    outcome = runner.run(call, call.context())
    assert outcome.error is not None
    error = outcome.error["error"]
    assert (error["code"], error["message"]) == ("plugin_error", "The image holds no page.")
    assert error["details"] == {"pages": 0, "exception": "ToolError"}
    assert (error["plugin"], error["tool"], error["job_id"]) == ("sheets", "read", "j4")
    assert outcome.traceback is not None
