"""The worker process: loads the enabled plugins once (warm models), then runs calls.

It talks to its supervisor (:mod:`lensforge.execution.local`) over one duplex pipe:

- supervisor → worker: ``("run", ToolCall)``, ``("cancel", job_id)``, ``("stop",)``
- worker → supervisor: ``("ready", pid, states)``, ``("progress", job_id, fraction, message)``,
  ``("done", job_id, Outcome)``

A reader thread takes messages off the pipe so that a cancel reaches a running tool at once
(``ctx.cancelled``); the main thread runs tools. When the supervisor dies the pipe closes and
the worker exits, so no worker outlives its server.
"""

from __future__ import annotations

import gc
import importlib
import os
import queue
import resource
import threading
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from lensforge.blobs import BlobStore
from lensforge.execution.tool_runner import ToolCall, ToolRunner
from lensforge.media import MediaLimits
from lensforge.plugin import Plugin, ToolContext
from lensforge.registry import load_registry


@dataclass(frozen=True)
class WorkerConfig:
    """What a worker needs to rebuild the server's plugin registry (picklable)."""

    blob_dir: Path
    limits: MediaLimits
    plugins_allow: list[str] = field(default_factory=list)
    plugins_block: list[str] = field(default_factory=list)
    extra_plugins: list[str] = field(default_factory=list)  # "module:QualName"
    memory_limit_mb: int = 0


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


def worker_main(conn: Connection) -> None:
    """Entry point of a worker process: the first message on ``conn`` is its WorkerConfig."""
    config: WorkerConfig = conn.recv()
    registry = load_registry(
        allow=config.plugins_allow,
        block=config.plugins_block,
        extra=[import_plugin(path) for path in config.extra_plugins],
    )
    registry.initialize()
    gc.freeze()  # models and modules loaded by setup() live as long as the worker
    _limit_memory(config.memory_limit_mb)
    runner = ToolRunner(registry, BlobStore(config.blob_dir), config.limits)
    states = {r.name: (r.state.value, r.reason) for r in registry.records()}
    conn.send(("ready", os.getpid(), states))

    calls: queue.Queue[ToolCall | None] = queue.Queue()
    current: dict[str, threading.Event] = {}
    send_lock = threading.Lock()

    def send(message: tuple[Any, ...]) -> None:
        with send_lock:
            conn.send(message)

    def read() -> None:
        try:
            while True:
                message = conn.recv()
                if message[0] == "run":
                    current[message[1].job_id or ""] = threading.Event()
                    calls.put(message[1])
                elif message[0] == "cancel":
                    event = current.get(message[1])
                    if event is not None:
                        event.set()
                elif message[0] == "stop":
                    break
        except (EOFError, OSError):
            os._exit(0)  # the supervisor is gone: so are we
        calls.put(None)

    threading.Thread(target=read, name="lensforge-worker-reader", daemon=True).start()
    while (call := calls.get()) is not None:
        job_id = call.job_id or ""

        def progress(fraction: float, message: str | None, job_id: str = job_id) -> None:
            send(("progress", job_id, fraction, message))

        ctx = ToolContext(
            job_id=call.job_id,
            plugin=call.plugin,
            tool=call.tool,
            attempt=call.attempt,
            on_progress=progress,
            cancel_event=current.get(job_id),
        )
        outcome = runner.run(call, ctx)
        current.pop(job_id, None)
        send(("done", job_id, outcome))


if __name__ == "__main__":  # started by the supervisor as `python -m lensforge.execution.worker FD`
    import sys

    worker_main(Connection(int(sys.argv[1])))
