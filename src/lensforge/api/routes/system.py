"""Health, readiness and Prometheus metrics."""

from __future__ import annotations

from collections.abc import Iterator

from fastapi import APIRouter, Response
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from lensforge.api.auth import ADMIN, PUBLIC, requires
from lensforge.api.deps import AnalysisDep, RegistryDep, ServicesDep
from lensforge.api.models import Health, Readiness, documented, operation_id
from lensforge.api.responses import FastJSONResponse, error_response
from lensforge.errors import LensForgeError, StoreError
from lensforge.wiring import Services

router = APIRouter(tags=["system"], generate_unique_id_function=operation_id)


@router.get(
    "/healthz",
    summary="The process is alive",
    openapi_extra=requires(PUBLIC),
    response_model=None,
    responses=documented({200: (Health, "Alive")}, public=True),
)
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="The store answers and plugins are loaded",
    openapi_extra=requires(PUBLIC),
    responses=documented({200: (Readiness, "Ready")}, 503, public=True),
)
async def readyz(analysis: AnalysisDep, registry: RegistryDep) -> Response:
    try:
        await analysis.ping()
    except LensForgeError as exc:
        return error_response(exc)
    except Exception:
        return error_response(StoreError())
    plugins = {r.name: r.current_state.value for r in registry.records()}
    return FastJSONResponse({"status": "ready", "plugins": plugins})


class _Collector:
    """Reads LensForge's own counters at scrape time."""

    def __init__(self, services: Services, job_counts: dict[str, int]) -> None:
        self.services = services
        self.job_counts = job_counts

    def collect(self) -> Iterator[Metric]:
        calls = CounterMetricFamily("lensforge_tool_calls", "Tool calls", labels=["plugin", "tool"])
        errors = CounterMetricFamily(
            "lensforge_tool_errors", "Tool errors by code", labels=["plugin", "tool", "code"]
        )
        seconds = CounterMetricFamily(
            "lensforge_tool_seconds", "Time spent in tools", labels=["plugin", "tool"]
        )
        for plugin, tool, entry in self.services.registry.metrics.items():
            calls.add_metric([plugin, tool], entry.calls)
            seconds.add_metric([plugin, tool], entry.latency_sum_s)
            for code, count in entry.errors.items():
                errors.add_metric([plugin, tool, code], count)
        jobs = GaugeMetricFamily("lensforge_jobs", "Jobs in the store by status", labels=["status"])
        for status, count in self.job_counts.items():
            jobs.add_metric([status], count)
        state = GaugeMetricFamily(
            "lensforge_plugin_state",
            "1 for the state each plugin is in",
            labels=["plugin", "state"],
        )
        for record in self.services.registry.records():
            state.add_metric([record.name, record.current_state.value], 1)
        transactions, writes = self.services.analysis.write_stats
        yield CounterMetricFamily(
            "lensforge_store_transactions", "Job-store write transactions", value=transactions
        )
        yield CounterMetricFamily(
            "lensforge_store_writes", "Job writes, several to a transaction", value=writes
        )
        snap = self.services.analysis.streams.snapshot()
        yield GaugeMetricFamily(
            "lensforge_streams_open", "Live frame streams open", value=snap["open"]
        )
        frames = CounterMetricFamily(
            "lensforge_stream_frames", "Live stream frames by outcome", labels=["outcome"]
        )
        for outcome in ("frames_in", "dropped", "results", "errors"):
            frames.add_metric([outcome], snap.get(outcome, 0))
        yield from (calls, errors, seconds, jobs, state, frames)


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    openapi_extra=requires(ADMIN),
    responses=documented({}),
)
async def metrics(services: ServicesDep, analysis: AnalysisDep) -> Response:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector(services, await analysis.counts()))
    return Response(generate_latest(registry), media_type="text/plain; version=0.0.4")
