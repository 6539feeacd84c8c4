"""TracedStore over the real SQLite store: the span each job-path write makes, with its
name, attributes and place in the job's trace, and the writes themselves passed through
unchanged (arguments and defaults included). Spans go to an in-memory exporter of a
provider of this test's own (``tracing.tracer`` patched: no process-wide provider set)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from lensforge import tracing
from lensforge.errors import Conflict, PluginError
from lensforge.store import JobStore, Status
from lensforge.store.traced import TracedStore, traced
from tests.unit.store.conftest import new

pytestmark = pytest.mark.anyio


@pytest.fixture
def exporter(monkeypatch: pytest.MonkeyPatch) -> Iterator[InMemorySpanExporter]:
    provider = TracerProvider()
    memory = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    monkeypatch.setattr(tracing, "tracer", lambda: provider.get_tracer("lensforge"))
    yield memory
    provider.shutdown()


def spans_named(exporter: InMemorySpanExporter, name: str) -> list[ReadableSpan]:
    return [span for span in exporter.get_finished_spans() if span.name == name]


def job_attrs(span: ReadableSpan) -> dict[str, object]:
    return dict(span.attributes or {})


async def test_create_is_a_span_saying_what_was_created(
    store: JobStore, exporter: InMemorySpanExporter
) -> None:
    traced_store = TracedStore(store)
    with tracing.tracer().start_as_current_span("request") as request:
        job, created = await traced_store.create(new(idempotency_key="k", request_hash="h"))
    again, created_again = await traced_store.create(new(idempotency_key="k", request_hash="h"))
    assert (created, created_again, again.id) == (True, False, job.id)
    first, second = spans_named(exporter, "lensforge.store.create")
    assert job_attrs(first) == {
        "lensforge.plugin": "p",
        "lensforge.tool": "t",
        "lensforge.job.id": job.id,
        "lensforge.job.status": "PENDING",
        "lensforge.job.attempt": 0,
        "lensforge.job.created": True,
    }
    assert job_attrs(second)["lensforge.job.created"] is False
    assert first.parent is not None and first.parent.span_id == request.get_span_context().span_id
    # a created job's later spans are children of the context it was created in
    assert trace.get_current_span(tracing.parent(job.id)) is request
    tracing.forget(job.id)


async def test_claim_passes_limit_and_cap_through_and_spans_each_job(
    store: JobStore, exporter: InMemorySpanExporter
) -> None:
    traced_store = TracedStore(store)
    with tracing.tracer().start_as_current_span("request") as request:
        ids = [(await traced_store.create(new(owner="a")))[0].id for _ in range(3)]
    (only,) = await traced_store.claim("w1", 30.0, 1, ids[1:])  # of these, up to the limit
    both = await traced_store.claim("w1", 30.0, 2)  # no cap by default: one owner, 2 jobs
    assert only.id == ids[1]
    assert [job.id for job in both] == [ids[0], ids[2]]
    claims = spans_named(exporter, "lensforge.store.claim")
    claimed = [ids[1], ids[0], ids[2]]
    assert [span.attributes["lensforge.job.id"] for span in claims if span.attributes] == claimed
    last_two = claims[1:]
    # one write: both spans start before it and end after it, at the same two instants
    assert {(s.start_time, s.end_time) for s in last_two} == {
        (last_two[0].start_time, last_two[0].end_time)
    }
    assert last_two[0].start_time is not None and last_two[0].end_time is not None
    assert last_two[0].start_time < last_two[0].end_time
    assert job_attrs(claims[0])["lensforge.job.status"] == "RUNNING"
    assert job_attrs(claims[0])["lensforge.job.attempt"] == 1
    # each in its job's trace, though claimed outside the request that created it
    for span in claims:
        assert span.parent is not None
        assert span.parent.span_id == request.get_span_context().span_id
    for job_id in ids:
        tracing.forget(job_id)


async def test_claim_can_cap_an_owner(store: JobStore, exporter: InMemorySpanExporter) -> None:
    traced_store = TracedStore(store)
    for _ in range(2):
        await traced_store.create(new(owner="a"))
    assert len(await traced_store.claim("w1", 30.0, 2, per_owner=1)) == 1


async def test_transition_and_finish_spans_carry_the_end_state_and_error_code(
    store: JobStore, exporter: InMemorySpanExporter
) -> None:
    traced_store = TracedStore(store)
    with tracing.tracer().start_as_current_span("request") as request:
        job, _ = await traced_store.create(new())
    assert trace.get_current_span(tracing.parent(job.id)) is request
    (running,) = await traced_store.claim("w1", 30.0, 1)
    error = PluginError("it broke").envelope()
    failed = await traced_store.transition(
        job.id,
        Status.RUNNING,
        Status.FAILED,
        worker="w1",
        reason="tool raised",
        owned_by="w1",
        known=running,
        error=error,
    )
    assert failed.status is Status.FAILED and failed.error == error
    (span,) = spans_named(exporter, "lensforge.store.transition")
    assert job_attrs(span)["lensforge.error.code"] == "plugin_error"
    assert job_attrs(span)["lensforge.job.status"] == "FAILED"
    assert span.status.status_code is StatusCode.ERROR
    events = await store.events(job.id)
    assert (events[-1].worker, events[-1].reason) == ("w1", "tool raised")
    # ended: its creation context is forgotten
    assert trace.get_current_span(tracing.parent(job.id)) is not request

    other, _ = await traced_store.create(new())
    (claimed,) = await traced_store.claim("w1", 30.0, 1)
    done, more = await traced_store.finish(
        claimed, Status.SUCCESS, {"result": {"n": 1}}, worker="w1", owned_by="w1"
    )
    assert (done.status, done.result, more) == (Status.SUCCESS, {"n": 1}, [])
    (span,) = spans_named(exporter, "lensforge.store.finish")
    assert job_attrs(span)["lensforge.job.id"] == other.id
    assert job_attrs(span)["lensforge.job.status"] == "SUCCESS"
    assert "lensforge.error.code" not in job_attrs(span)
    assert span.status.status_code is not StatusCode.ERROR


async def test_a_cancel_request_is_a_span_and_other_calls_pass_through(
    store: JobStore, exporter: InMemorySpanExporter
) -> None:
    traced_store = TracedStore(store)
    job, _ = await traced_store.create(new())
    await traced_store.request_cancel(job.id)
    (span,) = spans_named(exporter, "lensforge.store.request_cancel")
    assert job_attrs(span) == {"lensforge.job.id": job.id}
    found = await traced_store.get(job.id)  # not traced: the wrapped store's own
    assert found is not None and found.cancel_requested is True
    assert traced_store.is_sqlite is True


async def test_the_store_is_wrapped_only_when_tracing_is_on(store: JobStore) -> None:
    assert traced(store) is store
    tracing.enable(True)
    try:
        wrapped = traced(store)
        assert isinstance(wrapped, TracedStore)
        assert wrapped.url == store.url  # this store, wrapped
    finally:
        tracing.enable(False)


@pytest.mark.parametrize(
    "error", [{"e": 1}, {"error": "plain text"}, {"error": {"code": 42}}, {"error": {}}]
)
async def test_an_error_without_an_envelope_code_marks_no_span_as_failed(
    store: JobStore, exporter: InMemorySpanExporter, error: dict[str, object]
) -> None:
    traced_store = TracedStore(store)
    job, _ = await traced_store.create(new())
    await traced_store.claim("w1", 30.0, 1)
    await traced_store.transition(job.id, Status.RUNNING, Status.FAILED, error=error)
    (span,) = spans_named(exporter, "lensforge.store.transition")
    assert "lensforge.error.code" not in job_attrs(span)
    assert span.status.status_code is not StatusCode.ERROR


async def test_create_passes_claim_lease_and_blobs_through(
    store: JobStore, exporter: InMemorySpanExporter
) -> None:
    traced_store = TracedStore(store)
    digest = "c" * 64
    before = time.time()
    job, created = await traced_store.create(
        new(owner="alice"), claim_for="w9", lease_s=100.0, blobs=[digest]
    )
    assert created and (job.status, job.lease_owner) == (Status.RUNNING, "w9")
    assert job.lease_expires_at is not None and job.lease_expires_at >= before + 100.0
    assert await store.owns_blob(digest, "alice")
    default, _ = await traced_store.create(new(), claim_for="w9")  # the store's 30 s lease
    assert default.lease_expires_at == pytest.approx(default.created_at + 30.0, abs=1e-3)
    for job_id in (job.id, default.id):
        tracing.forget(job_id)


async def test_a_refused_create_is_a_failed_span_naming_plugin_and_tool(
    store: JobStore, exporter: InMemorySpanExporter
) -> None:
    traced_store = TracedStore(store)
    await traced_store.create(new(idempotency_key="k", request_hash="h1"))
    with pytest.raises(Conflict):
        await traced_store.create(new(idempotency_key="k", request_hash="h2"))
    refused = spans_named(exporter, "lensforge.store.create")[-1]
    assert job_attrs(refused) == {"lensforge.plugin": "p", "lensforge.tool": "t"}
    assert refused.status.status_code is StatusCode.ERROR
