"""TracedStore's guarded transition and cancel request: each is a span in the job's trace
(the context the job was created in), carrying the job and its end state, and the write
itself is the wrapped store's, unchanged. The whole path through a server is
tests/integration/test_tracing.py."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from lensforge import tracing
from lensforge.errors import Timeout
from lensforge.store import NewJob, Status
from lensforge.store.traced import TracedStore, traced
from lensforge.testing import InMemoryJobStore


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """This process's provider (OpenTelemetry takes one per process) and a fresh exporter."""
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    memory = InMemorySpanExporter()
    processor = SimpleSpanProcessor(memory)
    provider.add_span_processor(processor)
    tracing.enable(True)
    try:
        yield memory
    finally:
        tracing.enable(False)
        processor.shutdown()


def only(spans: InMemorySpanExporter, name: str) -> ReadableSpan:
    (span,) = (s for s in spans.get_finished_spans() if s.name == name)
    return span


def test_the_store_is_wrapped_only_while_tracing_is_on() -> None:
    store = InMemoryJobStore()
    tracing.enable(False)
    assert traced(store) is store
    tracing.enable(True)
    try:
        assert isinstance(traced(store), TracedStore)
    finally:
        tracing.enable(False)


def test_a_transition_is_a_span_in_the_jobs_trace(spans: InMemorySpanExporter) -> None:
    async def scenario() -> tuple[str, str]:
        store = TracedStore(InMemoryJobStore())
        with tracing.tracer().start_as_current_span("request") as request:
            job, _ = await store.create(NewJob(plugin="p", tool="t", inputs={}))
        running = await store.transition(job.id, Status.PENDING, Status.RUNNING, worker="w1")
        assert running.status is Status.RUNNING  # the wrapped store's own write
        error = Timeout("too slow").envelope()
        failed = await store.transition(
            job.id, Status.RUNNING, Status.FAILED, worker="w1", reason="timeout", error=error
        )
        assert failed.status is Status.FAILED and failed.error == error
        assert (await store.get(job.id)).status is Status.FAILED  # delegated read
        last = (await store.events(job.id))[-1]
        assert (last.to_status, last.worker, last.reason) == ("FAILED", "w1", "timeout")
        return job.id, format(request.get_span_context().trace_id, "032x")

    job_id, trace_id = asyncio.run(scenario())
    to_running, to_failed = (
        s for s in spans.get_finished_spans() if s.name == "lensforge.store.transition"
    )
    for span in (to_running, to_failed):
        assert format(span.context.trace_id, "032x") == trace_id
        assert span.attributes is not None
        assert span.attributes["lensforge.job.id"] == job_id
        assert span.attributes["lensforge.plugin"] == "p"
        assert span.attributes["lensforge.tool"] == "t"
    assert to_running.attributes is not None and to_failed.attributes is not None
    assert to_running.attributes["lensforge.job.status"] == "RUNNING"
    assert to_running.status.status_code is StatusCode.UNSET
    assert to_failed.attributes["lensforge.job.status"] == "FAILED"
    assert to_failed.attributes["lensforge.error.code"] == "timeout"
    assert to_failed.status.status_code is StatusCode.ERROR
    assert job_id not in tracing._contexts  # it ended: its context is forgotten


def test_a_cancel_request_is_a_span_in_the_jobs_trace(spans: InMemorySpanExporter) -> None:
    async def scenario() -> tuple[str, str, bool]:
        inner = InMemoryJobStore()
        store = TracedStore(inner)
        with tracing.tracer().start_as_current_span("request") as request:
            job, _ = await store.create(NewJob(plugin="p", tool="t", inputs={}))
        await store.transition(job.id, Status.PENDING, Status.RUNNING, worker="w1")
        await store.request_cancel(job.id)
        requested = (await inner.get(job.id)).cancel_requested
        return job.id, format(request.get_span_context().trace_id, "032x"), requested

    job_id, trace_id, requested = asyncio.run(scenario())
    assert requested  # the request reached the wrapped store
    span = only(spans, "lensforge.store.request_cancel")
    assert format(span.context.trace_id, "032x") == trace_id
    assert span.attributes is not None
    assert span.attributes["lensforge.job.id"] == job_id
