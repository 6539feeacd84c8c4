"""The plugin contract: :class:`Plugin`, the :func:`tool` and :func:`schema_tool` decorators
and :class:`ToolContext`. This module is what a plugin author reads; turning the declarations
into validated tool specs is :mod:`lensforge.tools`' job.

A plugin is a class with a ``name``, a ``version``, an optional ``setup()`` (run once per
worker process: load models there) and methods marked as tools::

    from pydantic import BaseModel
    from lensforge import Image, Plugin, ToolContext, tool

    class Size(BaseModel):
        width: int
        height: int

    class Measure(Plugin):
        name = "measure"
        version = "1.0.0"

        @tool(timeout_s=5)
        def size(self, image: Image, ctx: ToolContext | None = None) -> Size:
            \"\"\"Width and height of the image in pixels.\"\"\"
            return Size(width=image.width, height=image.height)

Register it through an entry point in the group ``lensforge.plugins``::

    [project.entry-points."lensforge.plugins"]
    measure = "my_package:Measure"

Input and output JSON Schemas come from the type hints (Pydantic); the docstring is the
tool's description. A tool ported from a system that describes tools as JSON Schema can be
declared with :func:`schema_tool` instead.
"""

from __future__ import annotations

import dataclasses
import logging
import typing
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, TypeVar

import orjson

from lensforge.errors import Cancelled

F = TypeVar("F", bound=Callable[..., Any])
_TOOL_MARK = "__lensforge_tool__"


class CancelSignal(Protocol):
    """What tells a running tool it was cancelled: a ``threading.Event`` or the like."""

    def is_set(self) -> bool: ...


class ToolResult(Protocol):
    """What :meth:`ToolContext.call_tool` returns: a result, or an error envelope."""

    result: Any
    error: dict[str, Any] | None

    @property
    def ok(self) -> bool: ...


class ToolContext:
    """What a running tool may use besides its inputs: progress, cancellation, a logger, and
    checkpoints for long work (:meth:`checkpoint`, :attr:`resume`)."""

    def __init__(
        self,
        *,
        job_id: str | None = None,
        plugin: str = "",
        tool: str = "",
        attempt: int = 1,
        on_progress: Callable[[float, str | None], None] | None = None,
        cancel_event: CancelSignal | None = None,
        resume: dict[str, Any] | None = None,
        on_checkpoint: Callable[[dict[str, Any], list[dict[str, Any]]], None] | None = None,
    ) -> None:
        self.job_id = job_id
        self.plugin = plugin
        self.tool = tool
        self.attempt = attempt
        self._on_progress = on_progress
        self._cancel_event = cancel_event
        self._on_checkpoint = on_checkpoint
        #: The state of this job's last checkpoint (a retried job resumes from it), or None
        #: on a fresh start. See :meth:`checkpoint`.
        self.resume = resume
        # Set by the ToolRunner: runs another tool through it (see call_tool).
        self.tool_caller: Callable[[str, dict[str, Any]], ToolResult] | None = None

    def call_tool(self, name: str, inputs: dict[str, Any]) -> ToolResult:
        """Run another tool (``"faces.detect"``) in this worker, through the ToolRunner like
        any call: its inputs and output are validated and it is measured. Inputs may hold
        decoded media (an :class:`~lensforge.media.Image`, e.g. a video frame's
        ``frame.image()``). Returns its result or its error envelope; never raises for the
        other tool's failure."""
        if self.tool_caller is None:
            raise RuntimeError("call_tool needs a ToolContext given by the ToolRunner")
        return self.tool_caller(name, inputs)

    @property
    def logger(self) -> logging.Logger:
        """The plugin's logger, ``lensforge.plugins.<plugin>``."""
        return logging.getLogger(f"lensforge.plugins.{self.plugin}")

    @property
    def durable(self) -> bool:
        """Whether :meth:`checkpoint` stores anything (the call runs as a stored job)."""
        return self._on_checkpoint is not None

    def checkpoint(self, state: dict[str, Any], items: list[dict[str, Any]] | None = None) -> None:
        """Record how far the tool got: ``state`` (a JSON object) is what :attr:`resume`
        holds if the job runs again after a crash, and ``items`` (JSON objects, e.g. one per
        frame with its ``index`` and ``timestamp_s``) are appended to the job's stored items,
        paged at ``GET /v1/jobs/{id}/frames``. Both are stored together or not at all, in
        the order of the calls, fenced by the job's lease; the job's result waits for them.
        Outside a stored job it does nothing (see :attr:`durable`)."""
        if self._on_checkpoint is not None:
            # A JSON copy: the tool may change its state right after, on another thread
            # than the one that stores it; and what is not JSON fails here, in the tool.
            copy = orjson.loads(orjson.dumps({"state": state, "items": list(items or ())}))
            self._on_checkpoint(copy["state"], copy["items"])

    def progress(self, fraction: float, message: str | None = None) -> None:
        """Report progress between 0 and 1, with an optional message."""
        if self._on_progress is not None:
            self._on_progress(min(1.0, max(0.0, float(fraction))), message)

    @property
    def cancel_signal(self) -> CancelSignal | None:
        """What tells this call it was cancelled (for the calls it makes itself)."""
        return self._cancel_event

    @property
    def cancelled(self) -> bool:
        """True once someone asked to cancel this job; stop work and return soon."""
        return self._cancel_event is not None and self._cancel_event.is_set()

    def check_cancelled(self) -> None:
        """Raise :class:`~lensforge.errors.Cancelled` if the job was cancelled."""
        if self.cancelled:
            raise Cancelled(plugin=self.plugin, tool=self.tool, job_id=self.job_id)


@dataclass(frozen=True)
class ToolOptions:
    """What :func:`tool` records on a method: a tool described by its type hints."""

    name: str | None = None
    description: str | None = None
    timeout_s: float | None = None
    retry_on: tuple[str, ...] = ()
    max_attempts: int | None = None
    cpus: float | None = None  # resources a call needs (requests to Ray; see docs/deploy.md)
    gpus: float = 0.0
    memory_mb: int | None = None
    long: bool = False  # runs long (a video): MCP answers with a task at once


@dataclass(frozen=True)
class SchemaToolOptions(ToolOptions):
    """What :func:`schema_tool` records: a tool described by JSON Schema dicts."""

    input_schema: dict[str, Any] = dataclasses.field(default_factory=dict)
    output_schema: dict[str, Any] | None = None


def declared_options(member: object) -> ToolOptions | None:
    """The options a tool decorator recorded on ``member``, or None if it is no tool."""
    options = getattr(member, _TOOL_MARK, None)
    return options if isinstance(options, ToolOptions) else None


def _marker(options: ToolOptions) -> Callable[[F], F]:
    def mark(func: F) -> F:
        setattr(func, _TOOL_MARK, options)
        return func

    return mark


@typing.overload
def tool(fn: F) -> F: ...


@typing.overload
def tool(
    *,
    name: str | None = ...,
    description: str | None = ...,
    timeout_s: float | None = ...,
    retry_on: Iterable[str] = ...,
    max_attempts: int | None = ...,
    cpus: float | None = ...,
    gpus: float = ...,
    memory_mb: int | None = ...,
    long: bool = ...,
) -> Callable[[F], F]: ...


def tool(
    fn: F | None = None,
    *,
    name: str | None = None,
    description: str | None = None,
    timeout_s: float | None = None,
    retry_on: Iterable[str] = (),
    max_attempts: int | None = None,
    cpus: float | None = None,
    gpus: float = 0.0,
    memory_mb: int | None = None,
    long: bool = False,
) -> Any:
    """Mark a plugin method as a tool.

    ``timeout_s`` is the tool's time limit; ``retry_on`` lists error codes worth retrying
    (with ``max_attempts`` in all). ``cpus``, ``gpus`` and ``memory_mb`` say what one call
    needs: the Ray executor asks the cluster for them (a GPU tool lands on GPU nodes only).
    ``long=True`` says a call usually runs for long (a video): MCP clients get a task at
    once instead of waiting. The description defaults to the method's docstring.
    """
    options = ToolOptions(
        name, description, timeout_s, tuple(retry_on), max_attempts, cpus, gpus, memory_mb, long
    )
    mark = _marker(options)
    return mark(fn) if fn is not None else mark


def schema_tool(
    *,
    input_schema: dict[str, Any],
    output_schema: dict[str, Any] | None = None,
    name: str | None = None,
    description: str | None = None,
    timeout_s: float | None = None,
    retry_on: Iterable[str] = (),
    max_attempts: int | None = None,
    cpus: float | None = None,
    gpus: float = 0.0,
    memory_mb: int | None = None,
    long: bool = False,
) -> Callable[[F], F]:
    """Mark a method ``handler(self, inputs: dict, ctx) -> dict`` as a JSON-Schema tool.

    String properties with ``"contentMediaType": "image/..."`` are decoded into an
    :class:`Image` before the handler sees them. The other options mean what they mean
    for :func:`tool`.
    """
    return _marker(
        SchemaToolOptions(
            name,
            description,
            timeout_s,
            tuple(retry_on),
            max_attempts,
            cpus,
            gpus,
            memory_mb,
            long,
            input_schema=input_schema,
            output_schema=output_schema,
        )
    )


class Plugin:
    """Base class of every plugin; see the module docstring for a runnable example.

    ``requires_packages`` and ``requires_binaries`` name dependencies checked at load time:
    when one is missing the plugin is UNAVAILABLE (listed, with the reason) instead of
    failing the server. ``setup()`` may also raise :class:`ModuleNotFoundError` or
    :class:`~lensforge.errors.PluginUnavailable` for the same effect.
    """

    name: ClassVar[str]
    version: ClassVar[str] = "0.0.0"
    description: ClassVar[str] = ""
    requires_packages: ClassVar[tuple[str, ...]] = ()
    requires_binaries: ClassVar[tuple[str, ...]] = ()
    install_hint: ClassVar[str] = ""

    def setup(self) -> None:
        """Run once per worker process before the first call: load models here."""

    def teardown(self) -> None:
        """Run once when the worker process stops (after ``setup()`` succeeded)."""
