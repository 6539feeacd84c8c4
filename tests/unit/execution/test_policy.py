"""A job's time limit and retry policy are fixed at creation; run_tool runs a real tool."""

from __future__ import annotations

from pathlib import Path

import pytest

from lensforge.blobs import BlobStore
from lensforge.errors import PluginError, ValidationError
from lensforge.execution.analysis import AnalysisExecutionService, AnalysisRequest
from lensforge.execution.jobs import JobExecutionService
from lensforge.execution.plugins import PluginExecutionService
from lensforge.media import MediaLimits
from lensforge.plugin import Plugin, tool
from lensforge.registry import Registry
from lensforge.testing import InMemoryJobStore, run_tool
from tests.unit.execution.support import ScriptedExecutor


class Policy(Plugin):
    name = "policy"
    version = "1.0.0"

    @tool(timeout_s=7, retry_on=["plugin_error"], max_attempts=4)
    def declared(self, n: int) -> int:
        """Double n."""
        return n * 2

    @tool
    def plain(self, n: int) -> int:
        """Add one to n."""
        if n < 0:
            raise ValueError("negative")
        return n + 1


def analysis(tmp_path: Path) -> AnalysisExecutionService:
    registry = Registry()
    registry.register(Policy)
    plugins = PluginExecutionService(registry, ScriptedExecutor(), default_timeout_s=30)
    jobs = JobExecutionService(InMemoryJobStore(), plugins)
    return AnalysisExecutionService(
        registry,
        jobs,
        BlobStore(tmp_path),
        limits=MediaLimits(),
        max_timeout_s=60,
        sync_wait_s=1,
        default_timeout_s=30,
    )


@pytest.mark.parametrize(
    ("tool_name", "requested", "timeout_s", "retry_on", "max_attempts"),
    [
        ("declared", None, 7.0, ("plugin_error",), 4),
        ("declared", 3.0, 3.0, ("plugin_error",), 4),
        ("plain", None, 30.0, (), 1),
    ],
)
def test_prepare_fixes_the_time_limit_and_retry_policy(
    tmp_path: Path,
    tool_name: str,
    requested: float | None,
    timeout_s: float,
    retry_on: tuple[str, ...],
    max_attempts: int,
) -> None:
    request = AnalysisRequest(plugin="policy", tool=tool_name, inputs={"n": 1}, timeout_s=requested)
    new = analysis(tmp_path).prepare(request)
    assert (new.timeout_s, new.retry_on, new.max_attempts) == (timeout_s, retry_on, max_attempts)


def test_prepare_refuses_a_time_limit_beyond_the_maximum(tmp_path: Path) -> None:
    request = AnalysisRequest(plugin="policy", tool="plain", inputs={"n": 1}, timeout_s=600)
    with pytest.raises(ValidationError):
        analysis(tmp_path).prepare(request)


def test_run_tool_returns_the_stored_result() -> None:
    assert run_tool(Policy, "declared", n=21) == 42


def test_run_tool_raises_the_jobs_error() -> None:
    with pytest.raises(PluginError) as info:
        run_tool(Policy, "plain", n=-1)
    assert "ValueError" in info.value.message
    with pytest.raises(ValidationError):
        run_tool(Policy, "plain", n="not a number")
