"""The ``ray`` executor: tool calls run in warm plugin actors on a Ray cluster.

Each enabled plugin gets a pool of actors (created on first use, up to ``pool_size`` per
plugin); an actor loads only its plugin, calls ``setup()`` once, and runs calls through its
own ToolRunner, so models stay warm and governance is the same as in a local worker. Inputs
travel as blob references (the actors read the blob store: a shared directory on one host,
S3 across hosts), never as bytes. What Ray does not do for us:

- **Time limits**: Ray has no per-task timeout. The call is awaited with one; past it, the
  actor is killed (``ray.kill``) and replaced, and the call answers ``timeout``.
- **Cancel**: the actor is threaded (``max_concurrency=2``), so a ``cancel`` call reaches it
  while a tool runs and sets ``ctx.cancelled``; a tool that ignores it for ``cancel_grace_s``
  costs its actor, as in the local executor.
- **Progress** and **checkpoints**: polled from the actor (``progress``,
  ``take_checkpoints``) while the call runs; the checkpoints left come back with the
  result, in the same round trip.
- **Lost actors** (process killed, node gone): ``worker_lost``, with the same recovery and
  attempts as a lost local worker.
- **Resources**: a plugin's actors ask Ray for the most CPUs, GPUs and memory any of its tools
  declares (``@tool(cpus=, gpus=, memory_mb=)``); a plugin needing a GPU on a cluster with
  none answers ``resource_exhausted`` with the reason instead of waiting forever.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from lensforge import tracing
from lensforge.errors import Cancelled, LensForgeError, ResourceExhausted, Timeout, WorkerLost
from lensforge.execution.executors.base import CallControl, resumed
from lensforge.execution.tool_runner import Outcome, ToolCall
from lensforge.execution.worker import WorkerConfig
from lensforge.registry import Registry

log = logging.getLogger(__name__)
PROGRESS_POLL_S = 0.25
PIPELINE_DEPTH = 2  # calls the executor takes per call it runs at once (see capacity)
CLUSTER_TTL_S = 5.0  # how long the cluster's resource totals are trusted


class PluginHost:
    """The body of a plugin actor (a plain class, so it can be tested without Ray)."""

    def __init__(self, config: WorkerConfig, plugin: str) -> None:
        from lensforge.execution.tool_runner import ToolRunner

        if config.settings.otel:  # its tool runs are spans of their jobs' traces: export them
            tracing.export_from_environment()
        self.registry = config.registry(only=plugin)
        self.registry.initialize()
        self.runner = ToolRunner(
            self.registry,
            config.settings.open_blobs(),
            config.limits,
            max_result_bytes=config.settings.max_result_bytes,
        )
        self._cancelled: set[str] = set()
        self._progress: dict[str, tuple[float, str | None]] = {}
        self._checkpoints: dict[str, list[tuple[dict[str, Any], list[dict[str, Any]]]]] = {}
        self._lock = threading.Lock()

    def pid(self) -> int:
        return os.getpid()

    def run(self, wire: tuple[Any, ...]) -> tuple[tuple[Any, ...], list[Any]]:
        """The call's outcome, with the checkpoints it wrote that were not taken yet (one
        round trip: no second call to the actor after each job)."""
        call = ToolCall(*wire)
        job_id = call.job_id or ""

        def progress(fraction: float, message: str | None) -> None:
            with self._lock:
                self._progress[job_id] = (fraction, message)

        def checkpoint(state: dict[str, Any], items: list[dict[str, Any]]) -> None:
            with self._lock:
                self._checkpoints.setdefault(job_id, []).append((state, items))

        ctx = call.context(
            on_progress=progress,
            cancel_event=_Flag(self._cancelled, job_id),
            on_checkpoint=checkpoint if call.job_id else None,
        )
        try:
            outcome = self.runner.run(call, ctx).to_wire()
        finally:
            with self._lock:
                self._progress.pop(job_id, None)
                left = self._checkpoints.pop(job_id, [])
            self._cancelled.discard(job_id)
        return outcome, left

    def cancel(self, job_id: str) -> None:
        self._cancelled.add(job_id)

    def progress(self, job_id: str) -> tuple[float, str | None] | None:
        with self._lock:
            return self._progress.get(job_id)

    def take_checkpoints(self, job_id: str) -> list[tuple[dict[str, Any], list[dict[str, Any]]]]:
        """The checkpoints the job wrote since the last time they were taken, in order."""
        with self._lock:
            return self._checkpoints.pop(job_id, [])


class _Flag:
    """``ctx.cancelled`` of one job: set once its id is among the cancelled."""

    __slots__ = ("_ids", "_job_id")

    def __init__(self, ids: set[str], job_id: str) -> None:
        self._ids, self._job_id = ids, job_id

    def is_set(self) -> bool:
        return self._job_id in self._ids


@dataclass
class _Pool:
    idle: list[Any] = field(default_factory=list)
    size: int = 0


class RayExecutor:
    """Runs calls on Ray actors; see the module docstring."""

    name = "ray"
    in_process = False  # the ToolRunner runs in the actors: metrics are recorded here

    def __init__(
        self,
        config: WorkerConfig,
        registry: Registry,
        workers: int,
        *,
        address: str = "local",
        cancel_grace_s: float = 2.0,
    ) -> None:
        self.config = config
        self.registry = registry
        self.workers = workers  # calls running at once
        # One more call held per running one: the store's round trips between two jobs
        # (finish, claim the next) overlap a running call instead of idling the actors.
        self.capacity = workers * PIPELINE_DEPTH
        self.address = address
        self.cancel_grace_s = cancel_grace_s
        self._pools: dict[str, _Pool] = defaultdict(_Pool)
        self._started_ray = False
        self._free = asyncio.Semaphore(workers)
        self._actor_class: Any = None
        self._cluster: tuple[float, dict[str, float]] = (-CLUSTER_TTL_S, {})

    async def start(self) -> None:
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        if self.address in ("", "local"):
            # Read by Ray at import: a private cluster's servers then listen on loopback only
            # (otherwise several of Ray's gRPC servers listen on every interface).
            os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
        ray = _ray()

        if not ray.is_initialized():
            options: dict[str, Any] = {
                "include_dashboard": False,
                "log_to_driver": False,
                "configure_logging": False,
            }
            if self.address in ("", "local"):
                # A private single-node cluster on loopback, sized to the worker count.
                options |= {"num_cpus": self.workers, "_node_ip_address": "127.0.0.1"}
            else:
                options["address"] = self.address
            # On the event loop's own thread, once at start-up (a few seconds): Ray binds its
            # driver to the thread that calls init, and a thread that ends takes the
            # driver's connection with it.
            ray.init(**options)
            self._started_ray = True
        self._actor_class = ray.remote(max_concurrency=2)(PluginHost)

    async def stop(self) -> None:
        ray = _ray()

        for pool in self._pools.values():
            for actor in pool.idle:
                with contextlib.suppress(Exception):
                    ray.kill(actor)
        self._pools.clear()
        if self._started_ray:
            await asyncio.to_thread(ray.shutdown)
            self._started_ray = False

    def _resources(self, plugin: str) -> dict[str, Any]:
        """Ray resource requests for a plugin's actors: the most any of its tools declares.

        A tool that declares nothing asks for no CPU: an actor holds its resources for its
        whole life, so idle actors of other plugins would otherwise block the cluster; how
        many calls run at once is ``workers``, as for ``local``.
        """
        try:
            tools = list(self.registry.get(plugin).tools.values())
        except LensForgeError:
            tools = []
        cpus = max((float(getattr(t, "cpus", 0) or 0) for t in tools), default=0.0)
        gpus = max((float(getattr(t, "gpus", 0) or 0) for t in tools), default=0.0)
        memory_mb = max((int(getattr(t, "memory_mb", 0) or 0) for t in tools), default=0)
        request: dict[str, Any] = {"num_cpus": cpus}
        if gpus:
            request["num_gpus"] = gpus
        if memory_mb:
            request["memory"] = memory_mb * 1024 * 1024
        return request

    def _missing(self, request: dict[str, Any]) -> str | None:
        ray = _ray()

        checked_at, total = self._cluster
        if time.monotonic() - checked_at >= CLUSTER_TTL_S:  # a call to Ray's GCS: not per job
            total = ray.cluster_resources()
            self._cluster = (time.monotonic(), total)
        if request.get("num_gpus") and total.get("GPU", 0) < request["num_gpus"]:
            return f"it needs {request['num_gpus']:g} GPU(s) and the Ray cluster has none"
        if request.get("num_cpus", 0) > total.get("CPU", 0):
            return f"it needs {request['num_cpus']:g} CPUs per call; the cluster has fewer"
        return None

    def _checkout(self, plugin: str) -> Any:
        pool = self._pools[plugin]
        if pool.idle:
            return pool.idle.pop()
        pool.size += 1
        return self._actor_class.options(**self._resources(plugin)).remote(self.config, plugin)

    def _checkin(self, plugin: str, actor: Any) -> None:
        self._pools[plugin].idle.append(actor)

    def _discard(self, plugin: str, actor: Any) -> None:
        ray = _ray()

        self._pools[plugin].size -= 1
        with contextlib.suppress(Exception):
            ray.kill(actor)

    async def run(self, call: ToolCall, control: CallControl) -> Outcome:
        missing = self._missing(self._resources(call.plugin))
        if missing is not None:
            return _failed(
                call, ResourceExhausted(f"The tool cannot run on this Ray cluster: {missing}.")
            )
        async with self._free:
            if control.cancelled:  # cancelled while it waited for a free slot
                return _failed(call, Cancelled())
            return await self._run(call, control)

    async def _run(self, call: ToolCall, control: CallControl) -> Outcome:
        ray = _ray()

        actor = self._checkout(call.plugin)
        call = resumed(call, control)
        ref = actor.run.remote(call.to_wire())
        result: asyncio.Future[Any] = asyncio.ensure_future(_await(ref))
        cancelled = asyncio.Event()
        control.add_cancel_listener(cancelled.set)
        taking = asyncio.Lock()  # checkpoints are handed over in order, and none is lost
        poller = asyncio.create_task(self._poll_progress(actor, call, control, taking))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (call.timeout_s or 1e9)
        try:
            while True:
                waiter = asyncio.ensure_future(cancelled.wait())
                done, _ = await asyncio.wait(
                    {result, waiter},
                    timeout=max(0.0, deadline - loop.time()),
                    return_when=asyncio.FIRST_COMPLETED,
                )
                waiter.cancel()
                if result in done:
                    break
                if cancelled.is_set():
                    actor.cancel.remote(call.job_id or "")
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(asyncio.shield(result), self.cancel_grace_s)
                    if not result.done():  # it ignored ctx.cancelled: the actor goes
                        self._discard(call.plugin, actor)
                        return _failed(call, Cancelled())
                    break
                self._discard(call.plugin, actor)  # past its time limit
                return _failed(
                    call,
                    Timeout(
                        f"The tool ran past its time limit of {call.timeout_s:g} s.",
                        details={"timeout_s": call.timeout_s},
                    ),
                    duration_s=call.timeout_s or 0.0,
                )
            try:
                wire, left = result.result()
                outcome = Outcome(*wire)
            except ray.exceptions.RayActorError:
                self._pools[call.plugin].size -= 1
                return _failed(call, WorkerLost("The Ray actor running the tool died."))
            except ray.exceptions.RayError as exc:
                self._discard(call.plugin, actor)
                return _failed(call, WorkerLost(f"Ray could not run the call: {exc}"))
            async with taking:  # after any the poller is handing over; before the result counts
                poller.cancel()
                self._hand_over(left, control)
            self._checkin(call.plugin, actor)
            return outcome
        finally:
            poller.cancel()
            if not result.done():
                result.cancel()

    async def _poll_progress(
        self, actor: Any, call: ToolCall, control: CallControl, taking: asyncio.Lock
    ) -> None:
        if control.on_progress is None and control.on_checkpoint is None:
            return
        last = None
        with contextlib.suppress(Exception):
            while True:
                await asyncio.sleep(PROGRESS_POLL_S)
                if control.on_progress is not None:
                    current = await _await(actor.progress.remote(call.job_id or ""))
                    if current is not None and current != last:
                        last = current
                        control.on_progress(*current)
                if control.on_checkpoint is not None and call.job_id:
                    async with taking:
                        taken = await _await(actor.take_checkpoints.remote(call.job_id))
                        self._hand_over(taken, control)

    @staticmethod
    def _hand_over(checkpoints: list[Any], control: CallControl) -> None:
        """Give the checkpoints the actor held for the call to the caller, in order."""
        if control.on_checkpoint is not None:
            for state, items in checkpoints:
                control.on_checkpoint(state, items)


def _ray() -> Any:
    """The ray module (imported on use: a server that does not use Ray never loads it)."""
    import ray

    return ray


async def _await(ref: Any) -> Any:
    return await ref


def _failed(call: ToolCall, error: LensForgeError, duration_s: float = 0.0) -> Outcome:
    envelope = error.bind(plugin=call.plugin, tool=call.tool, job_id=call.job_id).envelope()
    return Outcome(error=envelope, duration_s=duration_s)
