"""ToolRunner: the only code that invokes tool code.

It runs wherever the tool runs (the server's thread pool, a worker process, a Ray actor):
validate input → decode media → call → validate output → metrics (in ``finally``), and
every exception becomes the error envelope of ARCHITECTURE §3.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import orjson

from lensforge import tracing
from lensforge.blobs import Blobs, parse_digest
from lensforge.errors import (
    InternalError,
    LensForgeError,
    PluginError,
    ResourceExhausted,
    ToolError,
)
from lensforge.logs import job_context
from lensforge.media import Image, MediaLimits, MediaRef, Video
from lensforge.plugin import CancelSignal, ToolContext
from lensforge.registry import Registry
from lensforge.results import iter_artifacts
from lensforge.tools import ToolSpec

log = logging.getLogger(__name__)
MAX_RESULT_BYTES = 8 * 1024 * 1024  # LENSFORGE_MAX_RESULT_BYTES's default


@dataclass(frozen=True)
class ToolCall:
    """One invocation of a tool, as an executor receives it (picklable)."""

    plugin: str
    tool: str
    inputs: dict[str, Any]
    job_id: str | None = None
    attempt: int = 1
    timeout_s: float | None = None
    resume: dict[str, Any] | None = None  # the job's last checkpoint state, if it has one
    traceparent: str | None = None  # W3C trace context of its job's run (LENSFORGE_OTEL)

    def to_wire(self) -> tuple[Any, ...]:
        """The fields as a plain tuple, rebuilt by ``ToolCall(*fields)``: a worker channel
        pickles that several times faster than the dataclass itself."""
        return (
            self.plugin,
            self.tool,
            self.inputs,
            self.job_id,
            self.attempt,
            self.timeout_s,
            self.resume,
            self.traceparent,
        )

    def context(
        self,
        *,
        on_progress: Callable[[float, str | None], None] | None = None,
        cancel_event: CancelSignal | None = None,
        on_checkpoint: Callable[[dict[str, Any], list[dict[str, Any]]], None] | None = None,
    ) -> ToolContext:
        """The :class:`ToolContext` the tool of this call gets; the one place one is built."""
        return ToolContext(
            job_id=self.job_id,
            plugin=self.plugin,
            tool=self.tool,
            attempt=self.attempt,
            on_progress=on_progress,
            cancel_event=cancel_event,
            resume=self.resume,
            on_checkpoint=on_checkpoint,
        )


@dataclass
class Outcome:
    """What came of a call: a JSON-ready result, or an error envelope (picklable)."""

    result: Any = None
    error: dict[str, Any] | None = None
    traceback: str | None = None
    duration_s: float = 0.0
    artifacts: list[str] = field(default_factory=list)  # digests of the images it produced

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_wire(self) -> tuple[Any, ...]:
        """The fields as a plain tuple, rebuilt by ``Outcome(*fields)`` (see ToolCall's)."""
        return (self.result, self.error, self.traceback, self.duration_s, self.artifacts)

    @property
    def error_code(self) -> str | None:
        return None if self.error is None else str(self.error["error"]["code"])


class ToolRunner:
    """Runs tool calls against the plugins of one registry, in the current process."""

    def __init__(
        self,
        registry: Registry,
        blobs: Blobs,
        limits: MediaLimits,
        *,
        max_result_bytes: int = MAX_RESULT_BYTES,
    ) -> None:
        self.registry = registry
        self.blobs = blobs
        self.limits = limits
        self.max_result_bytes = max_result_bytes

    def run(self, call: ToolCall, ctx: ToolContext | None = None) -> Outcome:
        """Run one call; every line logged meanwhile (``ctx.logger`` too) carries its job."""
        with job_context(call.job_id, call.plugin, call.tool):
            if call.traceparent is not None:  # tracing is on: the tool run is a span
                return tracing.run_tool(call, partial(self._run, call, ctx))
            return self._run(call, ctx)

    def _run(self, call: ToolCall, ctx: ToolContext | None) -> Outcome:
        ctx = ctx or call.context()
        ctx.tool_caller = partial(self._call_for, call, ctx)
        started = time.perf_counter()
        outcome = Outcome()
        try:
            spec = self.registry.resolve(call.plugin, call.tool)
            record = self.registry.get(call.plugin)
            self.registry.initialize_plugin(record)
            self.registry.check_available(call.plugin)
            with contextlib.ExitStack() as files:  # local copies of videos, for this call
                values = self._decode_media(spec, spec.validate_inputs(call.inputs), files)
                args, kwargs = spec.call_arguments(values, ctx)
                raw = spec.function(record.instance, *args, **kwargs)
            if asyncio.iscoroutine(raw):
                raw = asyncio.run(raw)
            artifacts = list(iter_artifacts(raw))
            for artifact in artifacts:
                if artifact.data is not None:
                    self.blobs.put(artifact.data)
            outcome.result = self._check_storable(spec.dump_output(raw), self.max_result_bytes)
            outcome.artifacts = [parse_digest(artifact.blob) for artifact in artifacts]
        except LensForgeError as exc:
            outcome.error = exc.bind(
                plugin=call.plugin, tool=call.tool, job_id=call.job_id
            ).envelope()
            if isinstance(exc, PluginError | InternalError):
                outcome.traceback = traceback.format_exc()
        except MemoryError:
            outcome.error = ResourceExhausted(
                "The tool ran out of memory.",
                plugin=call.plugin,
                tool=call.tool,
                job_id=call.job_id,
            ).envelope()
            outcome.traceback = traceback.format_exc()
        except ToolError as exc:  # the plugin wrote this message for callers
            outcome.error = PluginError(
                exc.message[:2000],
                details={**exc.details, "exception": "ToolError"},
                plugin=call.plugin,
                tool=call.tool,
                job_id=call.job_id,
            ).envelope()
            outcome.traceback = traceback.format_exc()
        except Exception as exc:
            # The exception's text may hold paths or secrets: callers get its type only; the
            # job's internal record (its traceback) and the log keep the text.
            name = type(exc).__name__
            outcome.error = PluginError(
                f"The tool raised {name}; the job's record and the server log have the "
                "details (raise lensforge.ToolError to give callers a message).",
                details={"exception": name},
                plugin=call.plugin,
                tool=call.tool,
                job_id=call.job_id,
            ).envelope()
            outcome.traceback = traceback.format_exc()
            log.warning(
                "tool %s.%s raised %s: %s",
                call.plugin,
                call.tool,
                name,
                str(exc)[:2000],
                extra={"event": "tool_raised", "job_id": call.job_id},
            )
        finally:
            outcome.duration_s = time.perf_counter() - started
            self.registry.metrics.record(
                call.plugin, call.tool, outcome.duration_s, outcome.error_code
            )
        return outcome

    def _decode_media(
        self, spec: ToolSpec, values: dict[str, Any], files: contextlib.ExitStack
    ) -> dict[str, Any]:
        """Media references (as validated) swapped for checked, decoded images, and for
        probed videos in local files that live as long as ``files``."""
        for name in (*spec.media_fields, *spec.video_fields):
            value = values.get(name)
            if isinstance(value, MediaRef):
                try:
                    if name in spec.video_fields:
                        path = files.enter_context(self.blobs.local_path(value.blob))
                        values[name] = Video.open(path, self.limits.video, blob=value.blob)
                    else:
                        values[name] = Image.decode(self.blobs.get(value.blob), self.limits)
                except LensForgeError as exc:
                    exc.details.setdefault("field", name)
                    raise
        return values

    def _call_for(
        self, parent: ToolCall, parent_ctx: ToolContext, name: str, inputs: dict[str, Any]
    ) -> Outcome:
        """``ctx.call_tool``: another tool, run by this runner for a running tool's job."""
        plugin, _, tool = name.partition(".")
        call = ToolCall(plugin, tool or "", inputs, job_id=parent.job_id, attempt=parent.attempt)
        ctx = call.context(cancel_event=parent_ctx.cancel_signal)
        return self.run(call, ctx)

    @staticmethod
    def _check_storable(result: Any, max_bytes: int) -> Any:
        """Results are stored and served as JSON, inline in the job's row: refuse what JSON
        cannot carry, and results over ``max_bytes`` (LENSFORGE_MAX_RESULT_BYTES)."""
        try:
            size = len(orjson.dumps(result))
        except TypeError as exc:  # e.g. an integer beyond 64 bits, a non-string key
            raise PluginError(
                f"The tool's result cannot be stored as JSON: {exc}",
                details={"violation": str(exc)},
            ) from None
        if size > max_bytes:
            raise PluginError(
                f"The tool's result is {size} bytes of JSON, over the {max_bytes}-byte cap on "
                "inline results: return images as ImageArtifact (stored in the blob store) "
                "and keep the JSON small.",
                details={"result_bytes": size, "max_result_bytes": max_bytes},
            )
        return result


__all__ = ["Outcome", "ToolCall", "ToolRunner"]
