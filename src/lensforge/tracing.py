"""OpenTelemetry tracing of a job's path, on with ``LENSFORGE_OTEL=true`` (docs/dashboard.md).

One trace per job, from the request that created it to its result:

- the API request: FastAPI's own server span (``FastAPI(telemetry=...)`` in api/app.py),
  which honours a caller's W3C ``traceparent``;
- the store writes on the job's path (create, claim, transition, finish, cancel request):
  :class:`~lensforge.store.traced.TracedStore`, wrapped around the store the job service
  writes through;
- the run of the job (``lensforge.job.run``, a step of the execution middleware chain) and,
  inside it, the tool run wherever the ToolRunner runs (``lensforge.tool.run``): the run's
  ``traceparent`` travels in the :class:`~lensforge.execution.tool_runner.ToolCall` to a
  worker process, which exports its spans itself (:func:`export_from_environment`).

An async job may be claimed long after its request ended: the context it was created in is
remembered here, in this process, until the job ends (at most :data:`REMEMBERED` jobs), and
its later spans are children of it. A job created by another server (PostgreSQL, several
servers) or before a restart is traced from where this process meets it, in a trace of its own.

Off (the default) none of this is on the hot path: the store is not wrapped, the middleware
step is not in the chain, a call carries no ``traceparent``, and nothing here looks up a
provider or makes a context object.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib.metadata import entry_points
from typing import Protocol, TypeVar

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.trace import Span, StatusCode

log = logging.getLogger(__name__)

WORKER_EXPORT_DELAY_MS = 500  # a worker's batch export interval unless OTEL_BSP_SCHEDULE_DELAY
REMEMBERED = 10_000  # creation contexts kept for jobs not yet ended (oldest dropped first)

_enabled = False
_contexts: dict[str, Context] = {}  # job id -> the context it was created in


def enable(on: bool) -> None:
    """Turn tracing on or off for this process (``settings.otel``)."""
    global _enabled
    _enabled = on
    if not on:
        _contexts.clear()


def enabled() -> bool:
    return _enabled


def tracer() -> trace.Tracer:
    return trace.get_tracer("lensforge")


class Job(Protocol):
    """What a span says of a job (a JobRecord; a protocol so that this module, below the
    store, does not import it)."""

    @property
    def id(self) -> str: ...
    @property
    def plugin(self) -> str: ...
    @property
    def tool(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def attempts(self) -> int: ...


class Call(Protocol):
    """What a tool run's span needs of its call (a ToolCall)."""

    @property
    def traceparent(self) -> str | None: ...
    @property
    def job_id(self) -> str | None: ...
    @property
    def plugin(self) -> str: ...
    @property
    def tool(self) -> str: ...
    @property
    def attempt(self) -> int: ...


class Result(Protocol):
    """What a tool run's span records of its outcome (an Outcome)."""

    @property
    def ok(self) -> bool: ...
    @property
    def error_code(self) -> str | None: ...


R = TypeVar("R", bound=Result)


# -- a job's creation context -------------------------------------------------------------------


def remember(job_id: str, ctx: Context) -> None:
    """Keep the context ``job_id`` was created in, for its later spans."""
    if len(_contexts) >= REMEMBERED:
        del _contexts[next(iter(_contexts))]
    _contexts[job_id] = ctx


def forget(job_id: str) -> None:
    """The job ended: no more spans of it here."""
    _contexts.pop(job_id, None)


def parent(job_id: str) -> Context:
    """The context a job's spans are children of: the one it was created in, if known here."""
    found = _contexts.get(job_id)
    return found if found is not None else otel_context.get_current()


def job_attributes(job: Job) -> dict[str, str | int]:
    return {
        "lensforge.job.id": job.id,
        "lensforge.plugin": job.plugin,
        "lensforge.tool": job.tool,
        "lensforge.job.status": str(job.status),
        "lensforge.job.attempt": job.attempts,
    }


def end_state(span: Span, status: str, code: str | None) -> None:
    span.set_attribute("lensforge.job.status", status)
    if code is not None:
        span.set_attribute("lensforge.error.code", code)
        span.set_status(StatusCode.ERROR, code)


# -- the run of a job and of its tool ------------------------------------------------------------


@contextmanager
def run_span(job: Job) -> Iterator[Callable[[str, str | None], None]]:
    """``lensforge.job.run`` around one run of ``job``, current inside (so the call's
    :func:`traceparent` names it); yields ``ended(status, error_code)`` to record the verdict."""
    with tracer().start_as_current_span(
        "lensforge.job.run", context=parent(job.id), attributes=job_attributes(job)
    ) as span:
        yield lambda status, code: end_state(span, status, code)


def traceparent() -> str | None:
    """The current span as a W3C ``traceparent`` header value, for a call to carry."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier.get("traceparent")


def run_tool(call: Call, run: Callable[[], R]) -> R:
    """``lensforge.tool.run`` around ``run()``, a child of the call's ``traceparent``."""
    caller = propagate.extract({"traceparent": call.traceparent or ""})
    attributes: dict[str, str | int] = {
        "lensforge.job.id": call.job_id or "",
        "lensforge.plugin": call.plugin,
        "lensforge.tool": call.tool,
        "lensforge.job.attempt": call.attempt,
    }
    with tracer().start_as_current_span(
        "lensforge.tool.run", context=caller, attributes=attributes
    ) as span:
        outcome = run()
        end_state(span, "ok" if outcome.ok else "error", outcome.error_code)
        return outcome


# -- exporting from a worker process -------------------------------------------------------------


def export_from_environment() -> None:
    """In a worker process: export its spans as the standard ``OTEL_*`` variables say
    (``OTEL_TRACES_EXPORTER``, default ``otlp``; ``OTEL_SERVICE_NAME``...), unless an
    OpenTelemetry SDK provider is already set here (e.g. by ``opentelemetry-instrument``)."""
    try:
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        log.warning(
            "LENSFORGE_OTEL is on but opentelemetry-sdk is not installed: worker spans are "
            "not exported (pip install 'lensforge[otel]')",
            extra={"event": "otel_no_sdk"},
        )
        return
    if isinstance(trace.get_tracer_provider(), TracerProvider):
        return
    provider = TracerProvider()
    # Exported in the background, soon: a worker is killed when the server stops, so it never
    # gets to flush on exit; a span lost then is at most this old (OTEL_BSP_SCHEDULE_DELAY).
    try:
        delay = int(os.environ.get("OTEL_BSP_SCHEDULE_DELAY", WORKER_EXPORT_DELAY_MS))
    except ValueError:
        delay = WORKER_EXPORT_DELAY_MS
    for name in os.environ.get("OTEL_TRACES_EXPORTER", "otlp").split(","):
        name = name.strip()
        if name in ("", "none"):
            continue
        found = entry_points(group="opentelemetry_traces_exporter", name=name)
        if not found:
            log.warning(
                "no OpenTelemetry span exporter named %r is installed",
                name,
                extra={"event": "otel_no_exporter", "exporter": name},
            )
            continue
        try:
            exporters = [point.load()() for point in found]
        except Exception:  # a misconfigured exporter costs its spans, not the worker
            log.exception(
                "OpenTelemetry span exporter %r could not be made",
                name,
                extra={"event": "otel_exporter_failed", "exporter": name},
            )
            continue
        for exporter in exporters:
            provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=delay))
    trace.set_tracer_provider(provider)
