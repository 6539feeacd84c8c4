"""Builds the object graph from settings: no import-time singletons anywhere."""

from __future__ import annotations

import os
from dataclasses import dataclass

from lensforge import tracing
from lensforge.blobs import Blobs
from lensforge.execution.analysis import AnalysisExecutionService
from lensforge.execution.executors import Executor, InlineExecutor, ThreadExecutor
from lensforge.execution.executors.local import LocalExecutor
from lensforge.execution.jobs import JobExecutionService
from lensforge.execution.plugins import PluginExecutionService
from lensforge.execution.tool_runner import ToolRunner
from lensforge.execution.worker import WorkerConfig, plugin_path
from lensforge.forgesyte import ForgeSyteOptions
from lensforge.media import MediaLimits
from lensforge.plugin import Plugin
from lensforge.registry import Registry, load_registry
from lensforge.security.audit import AuditLog
from lensforge.security.keys import KeyStore
from lensforge.security.ratelimit import RateLimiter
from lensforge.settings import Settings
from lensforge.store import JobStore
from lensforge.store.traced import traced


@dataclass
class Services:
    """Everything a running LensForge owns, built by :func:`build_services`."""

    settings: Settings
    store: JobStore
    blobs: Blobs
    registry: Registry
    jobs: JobExecutionService
    analysis: AnalysisExecutionService
    keys: KeyStore
    audit: AuditLog
    limiter: RateLimiter

    async def start(self, *, dispatch: bool | None = None) -> None:
        """Start the job layer; it claims and runs jobs unless ``dispatch`` (default: the
        ``execute`` setting) says this process only accepts them (an API-only server)."""
        await self.jobs.start(dispatch=self.settings.execute if dispatch is None else dispatch)

    async def stop(self) -> None:
        await self.jobs.stop()
        self.registry.teardown()  # plugins set up in this process (inline, thread executors)
        self.store.close()


def build_registry(settings: Settings, extra_plugins: list[type[Plugin]] | None = None) -> Registry:
    return load_registry(
        allow=settings.plugins_allow,
        block=settings.plugins_block,
        extra=extra_plugins,
        forgesyte=ForgeSyteOptions.from_settings(settings),
    )


def build_services(
    settings: Settings,
    *,
    extra_plugins: list[type[Plugin]] | None = None,
    executor: str | None = None,
) -> Services:
    """The store (migrated), blobs, registry, executor and the three services."""
    # In-process executors: plugins read the data directory from the environment too.
    os.environ.setdefault("LENSFORGE_DATA_DIR", str(settings.data_dir))
    tracing.enable(settings.otel)
    store = JobStore(
        settings.database_url,
        connect_timeout_s=settings.store_connect_timeout_s,
        statement_timeout_s=settings.store_statement_timeout_s,
        busy_timeout_s=settings.store_busy_timeout_s,
    )
    store.migrate()
    blobs = settings.open_blobs()
    registry = build_registry(settings, extra_plugins)
    limits = MediaLimits(settings.max_image_bytes, settings.max_image_pixels, settings.video_limits)
    runner = ToolRunner(registry, blobs, limits, max_result_bytes=settings.max_result_bytes)
    kind = executor or settings.executor
    chosen: Executor
    if kind == "inline":
        chosen = InlineExecutor(runner)
    elif kind == "thread":
        chosen = ThreadExecutor(runner, settings.workers)
    else:
        config = WorkerConfig(
            settings=settings,
            limits=limits,
            extra_plugins=[plugin_path(cls) for cls in extra_plugins or ()],
        )
        if kind == "ray":
            from lensforge.execution.executors.ray import RayExecutor

            chosen = RayExecutor(
                config,
                registry,
                settings.workers,
                address=settings.ray_address,
                cancel_grace_s=settings.cancel_grace_s,
            )
        else:
            chosen = LocalExecutor(config, settings.workers, cancel_grace_s=settings.cancel_grace_s)
    plugins = PluginExecutionService(
        registry,
        chosen,
        settings.default_timeout_s,
        worker_lost_attempts=settings.worker_lost_attempts,
    )
    jobs = JobExecutionService(
        traced(store),  # LENSFORGE_OTEL: the writes on a job's path are spans
        plugins,
        lease_s=settings.lease_s,
        poll_interval_s=settings.poll_interval_s,
        max_queue=settings.max_queue,
        shutdown_grace_s=settings.shutdown_grace_s,
        max_running_per_key=settings.max_running_per_key,
    )
    analysis = AnalysisExecutionService(
        registry,
        jobs,
        blobs,
        limits=limits,
        max_timeout_s=settings.max_timeout_s,
        sync_wait_s=settings.sync_wait_s,
        default_timeout_s=settings.default_timeout_s,
        max_input_depth=settings.max_input_depth,
        max_input_string=settings.max_input_string,
        max_input_keys=settings.max_input_keys,
    )
    return Services(
        settings,
        store,
        blobs,
        registry,
        jobs,
        analysis,
        keys=KeyStore(store.engine, cache_s=settings.key_cache_s),
        audit=AuditLog(store.engine),
        limiter=RateLimiter(settings.rate_limit_per_s, settings.rate_limit_burst),
    )
