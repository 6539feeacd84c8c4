"""The worker process: loads the enabled plugins once (warm models), then runs calls.

It talks to its supervisor (:mod:`lensforge.execution.executors.local`) over two socket pairs:

- calls (:mod:`lensforge.execution.channel` frames, several per read and write), read by the
  main thread, which runs the tools:
  supervisor → worker ``("run", ToolCall fields)``, ``("stop",)``;
  worker → supervisor ``("ready", pid, states)``, ``("progress", job_id, fraction, message)``,
  ``("checkpoint", job_id, state, items)`` (sent as the tool writes it, so always before its
  call's ``done``), ``("done", job_id, Outcome fields)`` (the fields as tuples: see
  ``ToolCall.to_wire``);
- control, read by a thread of its own so that a cancel reaches a running tool at once
  (``ctx.cancelled``): supervisor → worker ``("cancel", job_id)``.

When the supervisor dies the sockets close and the worker exits, so no worker outlives its
server.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import os
import resource
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

from lensforge import tracing
from lensforge.errors import Cancelled
from lensforge.execution.channel import BlockingChannel
from lensforge.execution.tool_runner import Outcome, ToolCall, ToolRunner
from lensforge.forgesyte import ForgeSyteOptions
from lensforge.logs import configure_logging
from lensforge.media import MediaLimits
from lensforge.plugin import Plugin
from lensforge.registry import Registry, load_registry
from lensforge.settings import Settings


@dataclass(frozen=True)
class WorkerConfig:
    """What a worker needs to rebuild the server's plugin registry and blob store
    (picklable: it crosses to worker processes and Ray actors)."""

    settings: Settings
    limits: MediaLimits
    extra_plugins: list[str] = field(default_factory=list)  # "module:QualName"

    def registry(self, *, only: str | None = None) -> Registry:
        """The server's registry, rebuilt here (``only`` one plugin: a Ray plugin actor)."""
        return load_registry(
            allow=[only] if only else self.settings.plugins_allow,
            block=self.settings.plugins_block,
            extra=[import_plugin(path) for path in self.extra_plugins],
            forgesyte=ForgeSyteOptions.from_settings(self.settings),
        )


def plugin_path(plugin_cls: type[Plugin]) -> str:
    return f"{plugin_cls.__module__}:{plugin_cls.__qualname__}"


def import_plugin(path: str) -> type[Plugin]:
    module_name, _, qualname = path.partition(":")
    obj: Any = importlib.import_module(module_name)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    plugin_cls: type[Plugin] = obj
    return plugin_cls


def _limit_memory(megabytes: int) -> None:
    """Cap the address space at what the loaded plugins use now plus ``megabytes``."""
    if megabytes <= 0:
        return
    with open("/proc/self/statm") as statm:
        current = int(statm.read().split()[0]) * resource.getpagesize()
    limit = current + megabytes * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def worker_main(channel: BlockingChannel, control: Connection) -> None:
    """Entry point of a worker process: the first message on ``channel`` is its WorkerConfig."""
    try:
        (config,) = channel.receive()
    except (EOFError, OSError):
        os._exit(0)  # the supervisor went away before we started
    with contextlib.suppress(OSError, AttributeError):  # Linux; elsewhere the default policy
        os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))
    # Plugins that keep files of their own (objects.detect's model registry) find the
    # server's data directory here, whatever set it (a flag, code, the environment).
    os.environ["LENSFORGE_DATA_DIR"] = str(config.settings.data_dir)
    configure_logging(config.settings.log_level, config.settings.log_format)
    if config.settings.otel:  # its tool runs are spans of their jobs' traces: export them
        tracing.export_from_environment()
    registry = config.registry()
    registry.initialize()
    gc.freeze()  # models and modules loaded by setup() live as long as the worker
    _limit_memory(config.settings.worker_memory_mb)
    runner = ToolRunner(
        registry,
        config.settings.open_blobs(),
        config.limits,
        max_result_bytes=config.settings.max_result_bytes,
    )
    states = {r.name: (r.state.value, r.reason) for r in registry.records()}
    try:
        channel.send([("ready", os.getpid(), states)])
    except OSError:
        os._exit(0)

    cancelled: set[str] = set()  # jobs whose cancel arrived (added by the control thread)
    send_lock = threading.Lock()

    def send(messages: list[tuple[Any, ...]]) -> None:
        with send_lock:
            channel.send(messages)

    def watch_control() -> None:
        try:
            while True:
                kind, job_id = control.recv()
                if kind == "cancel":
                    cancelled.add(job_id)
        except (EOFError, OSError):
            os._exit(0)  # the supervisor is gone: so are we, even mid-tool

    threading.Thread(target=watch_control, name="lensforge-worker-control", daemon=True).start()
    while True:
        try:
            messages = channel.receive()
        except (EOFError, OSError):
            registry.teardown()
            os._exit(0)
        for message in messages:
            if message[0] != "run":
                registry.teardown()
                return  # "stop"
            # Answered at once: a later call of the batch may be long (or hang).
            try:
                send([_run(runner, ToolCall(*message[1]), cancelled, send)])
            except OSError:
                os._exit(0)


class _Cancelled:
    """``ctx.cancelled`` of one job: set once its id is among the cancelled (a set's
    membership test and add are atomic, so no lock or Event per call is needed)."""

    __slots__ = ("_cancelled", "_job_id")

    def __init__(self, cancelled: set[str], job_id: str) -> None:
        self._cancelled, self._job_id = cancelled, job_id

    def is_set(self) -> bool:
        return self._job_id in self._cancelled


def _run(
    runner: ToolRunner,
    call: ToolCall,
    cancelled: set[str],
    send: Callable[[list[tuple[Any, ...]]], None],
) -> tuple[Any, ...]:
    job_id = call.job_id or ""

    def progress(fraction: float, text: str | None) -> None:
        send([("progress", job_id, fraction, text)])

    def checkpoint(state: dict[str, Any], items: list[dict[str, Any]]) -> None:
        send([("checkpoint", job_id, state, items)])

    ctx = call.context(
        on_progress=progress,
        cancel_event=_Cancelled(cancelled, job_id),
        on_checkpoint=checkpoint if call.job_id else None,
    )
    if ctx.cancelled:  # cancelled while it waited its turn here: it never starts
        outcome = Outcome(
            error=Cancelled(plugin=call.plugin, tool=call.tool, job_id=call.job_id).envelope()
        )
    else:
        outcome = runner.run(call, ctx)
    cancelled.discard(job_id)
    return ("done", job_id, outcome.to_wire())


if __name__ == "__main__":  # started as `python -m lensforge.execution.worker CALLS CONTROL`
    import socket
    import sys

    worker_main(
        BlockingChannel(socket.socket(fileno=int(sys.argv[1]))), Connection(int(sys.argv[2]))
    )
