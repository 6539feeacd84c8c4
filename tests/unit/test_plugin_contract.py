"""The plugin contract as an author meets it: the decorators, ToolContext, and the module
docstring's example, which must run as written."""

from __future__ import annotations

import re
import textwrap
import threading
from pathlib import Path
from typing import Any

import pytest

import lensforge.plugin
from lensforge import Image, Plugin, ToolContext, schema_tool, tool
from lensforge.blobs import BlobStore
from lensforge.errors import Cancelled
from lensforge.execution.tool_runner import ToolCall, ToolRunner
from lensforge.media import MediaLimits
from lensforge.plugin import SchemaToolOptions, ToolOptions, declared_options
from lensforge.registry import Registry
from tests.support import png


def test_the_docstring_example_runs(tmp_path: Path) -> None:
    doc = lensforge.plugin.__doc__ or ""
    example = re.search(r"tools::\n\n(.*?)\n\S", doc, re.S)
    assert example is not None
    namespace: dict[str, Any] = {"__name__": "example"}
    exec(compile(textwrap.dedent(example.group(1)), "plugin-docstring", "exec"), namespace)
    registry = Registry()
    registry.register(namespace["Measure"])
    runner = ToolRunner(registry, BlobStore(tmp_path / "blobs"), MediaLimits())
    blob = runner.blobs.put(png(9, 4))
    outcome = runner.run(ToolCall("measure", "size", {"image": {"blob": blob}}))
    assert outcome.ok, outcome.error
    assert outcome.result == {"width": 9, "height": 4}
    assert registry.manifest("measure")["tools"][0]["timeout_s"] == 5


def test_the_decorators_record_their_options() -> None:
    class Declared(Plugin):
        name = "declared"

        @tool
        def bare(self) -> int:
            """Bare."""
            return 1

        @tool(name="named", timeout_s=3, retry_on=["timeout"], max_attempts=2)
        def configured(self, image: Image) -> int:
            """Configured."""
            return 1

        @schema_tool(input_schema={"type": "object"}, timeout_s=4)
        def ported(self, inputs: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
            """Ported."""
            return {}

        def helper(self) -> None:
            """Not a tool."""

    assert declared_options(Declared.bare) == ToolOptions()
    assert declared_options(Declared.configured) == ToolOptions(
        name="named", timeout_s=3, retry_on=("timeout",), max_attempts=2
    )
    options = declared_options(Declared.ported)
    assert isinstance(options, SchemaToolOptions)
    assert (options.input_schema, options.output_schema, options.timeout_s) == (
        {"type": "object"},
        None,
        4,
    )
    assert declared_options(Declared.helper) is None
    assert Declared().bare() == 1  # the decorator leaves the method callable as it was


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
