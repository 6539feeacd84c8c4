"""LENSFORGE_OTEL: one trace per job, from the API request through the store writes to the
tool run in a worker process; nothing at all when it is off.

The server's spans go to the SDK's InMemorySpanExporter (set as this process's provider);
a worker process exports its own, as the standard ``OTEL_TRACES_EXPORTER`` says: here the
SDK's console exporter, whose JSON lands on the worker's stdout, which it shares with the
test (captured with ``capfd``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from lensforge import tracing
from lensforge.api import create_app
from lensforge.settings import Settings
from tests.plugins_for_tests import TEST_PLUGINS
from tests.support import wait_for_job

CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"
ECHO = {"plugin": "testing", "tool": "echo", "inputs": {"text": "hi"}}


@pytest.fixture(scope="module")
def exporter() -> InMemorySpanExporter:
    """This process's provider (set once: OpenTelemetry refuses a second) and its spans."""
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    memory = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    return memory


@pytest.fixture
def spans(exporter: InMemorySpanExporter) -> Iterator[InMemorySpanExporter]:
    exporter.clear()
    yield exporter
    exporter.clear()
    tracing.enable(False)


def traced_settings(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": f"sqlite:///{tmp_path / 'lensforge.db'}",
        "data_dir": tmp_path / "data",
        "workers": 1,
        "poll_interval_s": 0.05,
        "otel": True,
        **overrides,
    }
    return Settings(**values)


def until(found: Callable[[], bool], timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not found():
        assert time.monotonic() < deadline, "the spans never all arrived"
        time.sleep(0.02)


def named(spans: list[ReadableSpan], name: str) -> ReadableSpan:
    (span,) = (s for s in spans if s.name == name)
    return span


def ids(span: ReadableSpan) -> tuple[str, str, str | None]:
    """(trace id, span id, parent span id) as hex, like the console exporter's JSON."""
    assert span.context is not None
    parent = f"{span.parent.span_id:016x}" if span.parent is not None else None
    return f"{span.context.trace_id:032x}", f"{span.context.span_id:016x}", parent


def console_spans(text: str) -> list[dict[str, Any]]:
    """The span objects the console exporter printed, among whatever else is in ``text``."""
    decoder, found, at = json.JSONDecoder(), [], text.find("{")
    while at != -1:
        try:
            value, end = decoder.raw_decode(text, at)
        except json.JSONDecodeError:
            at = text.find("{", at + 1)
            continue
        if isinstance(value, dict) and "context" in value:
            found.append(value)
        at = text.find("{", end)
    return found


def test_an_async_job_is_one_trace_from_the_callers_request_to_the_worker(
    tmp_path: Path,
    spans: InMemorySpanExporter,
    capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "lensforge-worker")
    printed: list[str] = []

    def worker_spans() -> list[dict[str, Any]]:
        printed.append(capfd.readouterr().out)
        return console_spans("".join(printed))

    app = create_app(traced_settings(tmp_path), extra_plugins=TEST_PLUGINS)
    with TestClient(app) as client:
        response = client.post(
            "/v1/jobs", json=ECHO, headers={"traceparent": f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"}
        )
        assert response.status_code == 202, response.text
        job_id = response.json()["job_id"]
        assert wait_for_job(client, job_id)["status"] == "SUCCESS"
        until(lambda: any(s["name"] == "lensforge.tool.run" for s in worker_spans()))
        until(lambda: any(s.name == "lensforge.store.finish" for s in spans.get_finished_spans()))

    server = [s for s in spans.get_finished_spans() if ids(s)[0] == CALLER_TRACE]
    request = next(s for s in server if s.kind is trace.SpanKind.SERVER)
    create, run = named(server, "lensforge.store.create"), named(server, "lensforge.job.run")
    finish = named(server, "lensforge.store.finish")
    (tool,) = (s for s in worker_spans() if s["name"] == "lensforge.tool.run")

    # The caller's traceparent is honoured: its span is the request's parent.
    assert ids(request)[2] == CALLER_SPAN
    # The store writes and the run are children of the request, in the caller's trace.
    request_span = ids(request)[1]
    assert ids(create)[2] == request_span
    assert ids(finish)[2] == request_span
    assert ids(run)[2] == request_span
    # The tool ran in another process, as a child of the run, in the same trace.
    assert tool["context"]["trace_id"] == f"0x{CALLER_TRACE}"
    assert tool["parent_id"] == f"0x{ids(run)[1]}"
    assert tool["resource"]["attributes"]["service.name"] == "lensforge-worker"
    # Each carries the job's facts.
    for attributes in (create.attributes, run.attributes, finish.attributes, tool["attributes"]):
        assert attributes is not None
        assert attributes["lensforge.job.id"] == job_id
        assert attributes["lensforge.plugin"] == "testing"
        assert attributes["lensforge.tool"] == "echo"
    assert finish.attributes is not None and finish.attributes["lensforge.job.status"] == "SUCCESS"
    assert tool["attributes"]["lensforge.job.status"] == "ok"


def test_a_queued_job_claimed_later_stays_in_its_requests_trace(
    tmp_path: Path, spans: InMemorySpanExporter
) -> None:
    """Claimed after its request ended (by the dispatcher, or by the running job's finish):
    its claim, run and finish are still in the trace of the request that created it."""
    app = create_app(traced_settings(tmp_path, executor="thread"), extra_plugins=TEST_PLUGINS)
    with TestClient(app) as client:
        slow = {"plugin": "testing", "tool": "sleep", "inputs": {"seconds": 0.3}}
        first = client.post("/v1/jobs", json=slow).json()["job_id"]
        queued = client.post(
            "/v1/jobs", json=ECHO, headers={"traceparent": f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"}
        ).json()["job_id"]
        assert client.get(f"/v1/jobs/{queued}").json()["status"] == "PENDING"
        for job_id in (first, queued):
            assert wait_for_job(client, job_id)["status"] == "SUCCESS"

        def queued_spans() -> list[ReadableSpan]:
            return [s for s in spans.get_finished_spans() if ids(s)[0] == CALLER_TRACE]

        until(lambda: any(s.name == "lensforge.store.finish" for s in queued_spans()))

    mine = queued_spans()
    request = next(s for s in mine if s.kind is trace.SpanKind.SERVER)
    for name in ("lensforge.store.claim", "lensforge.job.run", "lensforge.store.finish"):
        span = named(mine, name)
        assert ids(span)[2] == ids(request)[1], name
        assert span.attributes is not None and span.attributes["lensforge.job.id"] == queued
    tool = named(mine, "lensforge.tool.run")
    assert ids(tool)[2] == ids(named(mine, "lensforge.job.run"))[1]
    # The first job's run is in a trace of its own.
    runs = [s for s in spans.get_finished_spans() if s.name == "lensforge.job.run"]
    (first_run,) = (s for s in runs if (s.attributes or {}).get("lensforge.job.id") == first)
    assert ids(first_run)[0] != CALLER_TRACE


def test_a_failed_sync_call_is_one_new_trace_with_its_error_code(
    tmp_path: Path, spans: InMemorySpanExporter
) -> None:
    app = create_app(traced_settings(tmp_path, executor="inline"), extra_plugins=TEST_PLUGINS)
    with TestClient(app) as client:
        response = client.post("/v1/analyze", json={"plugin": "testing", "tool": "fail"})
        assert response.status_code >= 400
        until(lambda: any(s.name == "lensforge.store.finish" for s in spans.get_finished_spans()))

    ours = [s for s in spans.get_finished_spans() if s.name.startswith("lensforge.")]
    request = next(s for s in spans.get_finished_spans() if s.kind is trace.SpanKind.SERVER)
    trace_id, _, caller = ids(request)
    assert caller is None  # no traceparent sent: the request starts the trace
    assert {ids(s)[0] for s in ours} == {trace_id}
    names = {s.name for s in ours}
    assert {"lensforge.store.create", "lensforge.job.run", "lensforge.tool.run"} <= names
    run, tool = named(ours, "lensforge.job.run"), named(ours, "lensforge.tool.run")
    assert ids(tool)[2] == ids(run)[1]
    for span in (run, tool, named(ours, "lensforge.store.finish")):
        assert span.attributes is not None
        assert span.attributes["lensforge.error.code"] == "plugin_error"
        assert span.status.status_code is trace.StatusCode.ERROR
    assert run.attributes is not None and run.attributes["lensforge.job.status"] == "FAILED"


def test_off_there_are_no_spans_and_no_provider_lookups(
    tmp_path: Path, spans: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch
) -> None:
    lookups: list[str] = []
    real = trace.get_tracer_provider

    def counted() -> trace.TracerProvider:
        lookups.append("get_tracer_provider")
        return real()

    monkeypatch.setattr(trace, "get_tracer_provider", counted)
    settings = traced_settings(tmp_path, otel=False, executor="inline")
    with TestClient(create_app(settings, extra_plugins=TEST_PLUGINS)) as client:
        for _ in range(3):
            response = client.post(
                "/v1/analyze",
                json=ECHO,
                headers={"traceparent": f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"},
            )
            assert response.status_code == 200, response.text
        job_id = client.post("/v1/jobs", json=ECHO).json()["job_id"]
        assert wait_for_job(client, job_id)["status"] == "SUCCESS"
    assert spans.get_finished_spans() == ()
    assert lookups == []


_EXPORT_PROBE = """
from opentelemetry import trace
from lensforge import tracing
tracing.export_from_environment()
with tracing.tracer().start_as_current_span("probe"):
    pass
trace.get_tracer_provider().shutdown()
"""


def test_a_worker_exports_as_the_otel_variables_say_and_survives_a_bad_one() -> None:
    env = {
        **os.environ,
        "OTEL_TRACES_EXPORTER": "no-such-exporter,console",
        "OTEL_BSP_SCHEDULE_DELAY": "soon",
        "OTEL_SERVICE_NAME": "probe-worker",
    }
    done = subprocess.run(
        [sys.executable, "-c", _EXPORT_PROBE], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    (span,) = console_spans(done.stdout)
    assert span["name"] == "probe"
    assert span["resource"]["attributes"]["service.name"] == "probe-worker"
    assert "no-such-exporter" in done.stderr  # said, not fatal
