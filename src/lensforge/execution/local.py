"""The ``local`` executor: N supervised worker processes (the default for ``lensforge serve``).

Each worker loads the enabled plugins once and serves calls one at a time. The supervisor
enforces what a worker cannot enforce on itself: a call past its time limit, or a cancelled
call that ignores ``ctx.cancelled`` for longer than the grace period, costs the worker a
SIGKILL; a worker that dies (segfault, ``os._exit``, OOM kill) costs only its current call
(``worker_lost``). Either way a fresh worker replaces it and the server carries on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

from lensforge.errors import Cancelled, LensForgeError, Timeout, WorkerLost
from lensforge.execution.executors import CallControl
from lensforge.execution.tool_runner import Outcome, ToolCall
from lensforge.execution.worker import WorkerConfig
from lensforge.registry import PluginState, Registry

log = logging.getLogger(__name__)


@dataclass(eq=False)
class _Worker:
    process: subprocess.Popen[bytes]
    conn: Connection
    pid: int
    call: ToolCall | None = None
    control: CallControl | None = None
    future: asyncio.Future[Outcome] | None = None
    alive: bool = True
    retired: bool = False  # killed or being killed: never handed another call
    timers: list[asyncio.TimerHandle] = field(default_factory=list)


class LocalExecutor:
    """Runs calls in a pool of supervised worker processes."""

    name = "local"

    def __init__(
        self,
        config: WorkerConfig,
        registry: Registry,
        workers: int,
        *,
        cancel_grace_s: float = 2.0,
        start_timeout_s: float = 120.0,
    ) -> None:
        self.config = config
        self.registry = registry
        self.capacity = workers
        self.cancel_grace_s = cancel_grace_s
        self.start_timeout_s = start_timeout_s
        self._workers: set[_Worker] = set()
        self._idle: asyncio.Queue[_Worker] = asyncio.Queue()
        self._stopping = False
        self._spawning: set[asyncio.Task[None]] = set()

    # -- pool ------------------------------------------------------------------------------

    async def start(self) -> None:
        await asyncio.gather(*(self._spawn() for _ in range(self.capacity)))

    async def stop(self) -> None:
        self._stopping = True
        for task in self._spawning:
            task.cancel()
        await asyncio.gather(*self._spawning, return_exceptions=True)
        loop = asyncio.get_running_loop()
        workers = list(self._workers)
        for worker in workers:
            self._kill(worker)
            if worker.alive:  # close here, on the loop, so _on_death cannot close it twice
                worker.alive = False
                loop.remove_reader(worker.conn.fileno())
                worker.conn.close()
        self._workers.clear()
        await asyncio.to_thread(self._join, workers)

    @staticmethod
    def _join(workers: list[_Worker]) -> None:
        for worker in workers:
            with contextlib.suppress(subprocess.TimeoutExpired):
                worker.process.wait(timeout=5)

    def pids(self) -> list[int]:
        """Process ids of the live workers."""
        return [w.pid for w in self._workers if w.alive]

    async def _spawn(self) -> None:
        # A fresh interpreter (not fork: unsafe beside the server's threads; not
        # multiprocessing's spawn: it re-runs the caller's __main__), joined by a socket pair.
        loop = asyncio.get_running_loop()
        parent_sock, child_sock = socket.socketpair()
        parent = Connection(parent_sock.detach())
        child_fd = child_sock.detach()
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        try:
            process = await asyncio.to_thread(
                subprocess.Popen,
                [sys.executable, "-m", "lensforge.execution.worker", str(child_fd)],
                pass_fds=[child_fd],
                env=env,
                stdin=subprocess.DEVNULL,
            )
        finally:
            os.close(child_fd)
        try:
            parent.send(self.config)
            ready = await asyncio.to_thread(self._await_ready, parent, process)
        except BaseException:  # cancelled (shutdown) or failed: leave no process behind
            process.kill()
            await asyncio.to_thread(process.wait)
            parent.close()
            raise
        _, pid, states = ready
        self._apply_states(states)
        worker = _Worker(process=process, conn=parent, pid=pid)
        self._workers.add(worker)
        loop.add_reader(parent.fileno(), self._on_readable, worker)
        log.info("worker %d ready", pid, extra={"event": "worker_ready", "pid": pid})
        self._idle.put_nowait(worker)

    def _await_ready(self, conn: Connection, process: subprocess.Popen[bytes]) -> Any:
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            if conn.poll(0.05):
                try:
                    return conn.recv()
                except EOFError:
                    break
            if process.poll() is not None:
                break
        raise LensForgeError(f"A worker process failed to start (exit code {process.poll()}).")

    def _apply_states(self, states: dict[str, tuple[str, str | None]]) -> None:
        """Plugins are set up in the workers: mirror their lifecycle state here."""
        for name, (state, reason) in states.items():
            try:
                record = self.registry.get(name)
            except LensForgeError:
                continue
            if record.state is PluginState.LOADED:
                record.state, record.reason = PluginState(state), reason

    def _replace(self) -> None:
        if self._stopping:
            return
        task = asyncio.ensure_future(self._spawn())
        self._spawning.add(task)

        def done(t: asyncio.Task[None]) -> None:
            self._spawning.discard(t)
            if not t.cancelled() and t.exception() is not None:
                log.error("worker replacement failed: %r", t.exception())
                asyncio.get_running_loop().call_later(1.0, self._replace)

        task.add_done_callback(done)

    # -- messages --------------------------------------------------------------------------

    def _on_readable(self, worker: _Worker) -> None:
        try:
            message = worker.conn.recv()
        except (EOFError, OSError):
            self._on_death(worker)
            return
        kind = message[0]
        if kind == "progress" and worker.control and worker.control.on_progress:
            worker.control.on_progress(message[2], message[3])
        elif kind == "done" and worker.future is not None and not worker.future.done():
            worker.future.set_result(message[2])

    def _on_death(self, worker: _Worker) -> None:
        if not worker.alive:
            return
        worker.alive = False
        asyncio.get_running_loop().remove_reader(worker.conn.fileno())
        worker.conn.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            worker.process.wait(timeout=1)
        self._workers.discard(worker)
        call = worker.call
        if worker.future is not None and not worker.future.done() and call is not None:
            code = worker.process.returncode
            log.warning(
                "worker %d died (exit code %s) running job %s",
                worker.pid,
                code,
                call.job_id,
                extra={"event": "worker_lost", "pid": worker.pid, "job_id": call.job_id},
            )
            worker.future.set_result(
                _error(
                    WorkerLost(
                        f"The worker process died while running the tool (exit code {code}).",
                        details={"exit_code": code},
                    ),
                    call,
                )
            )
        self._replace()

    def _kill(self, worker: _Worker) -> None:
        worker.retired = True
        if worker.alive:
            with contextlib.suppress(ProcessLookupError):
                os.kill(worker.pid, signal.SIGKILL)

    # -- calls -----------------------------------------------------------------------------

    async def run(self, call: ToolCall, control: CallControl) -> Outcome:
        loop = asyncio.get_running_loop()
        while True:
            worker = await self._idle.get()
            if worker.alive and not worker.retired:
                break
        future: asyncio.Future[Outcome] = loop.create_future()
        worker.call, worker.control, worker.future = call, control, future
        started = time.perf_counter()
        try:
            worker.conn.send(("run", call))
        except OSError:
            self._on_death(worker)
        if call.timeout_s is not None:
            worker.timers.append(loop.call_later(call.timeout_s, self._time_out, worker, future))
        control.add_cancel_listener(lambda: self._cancel(worker, future))
        try:
            outcome = await future
        finally:
            for timer in worker.timers:
                timer.cancel()
            worker.timers.clear()
            worker.call = worker.control = worker.future = None
            if worker.alive and not worker.retired:
                self._idle.put_nowait(worker)
        if outcome.error is not None and outcome.error_code in ("timeout", "cancelled"):
            outcome.duration_s = time.perf_counter() - started
        self.registry.metrics.record(call.plugin, call.tool, outcome.duration_s, outcome.error_code)
        return outcome

    def _time_out(self, worker: _Worker, future: asyncio.Future[Outcome]) -> None:
        if future.done() or worker.call is None:
            return
        call = worker.call
        future.set_result(
            _error(
                Timeout(
                    f"The tool ran past its time limit of {call.timeout_s:g} s; its worker was "
                    "stopped.",
                    details={"timeout_s": call.timeout_s},
                ),
                call,
            )
        )
        self._kill(worker)  # the worker may be stuck anywhere: only a kill is sure

    def _cancel(self, worker: _Worker, future: asyncio.Future[Outcome]) -> None:
        if future.done() or worker.call is None:
            return
        try:
            worker.conn.send(("cancel", worker.call.job_id or ""))
        except OSError:
            return
        loop = asyncio.get_running_loop()
        worker.timers.append(
            loop.call_later(self.cancel_grace_s, self._force_cancel, worker, future)
        )

    def _force_cancel(self, worker: _Worker, future: asyncio.Future[Outcome]) -> None:
        if future.done() or worker.call is None:
            return
        call = worker.call
        self._kill(worker)
        # The outcome is set once the process is really gone (see _on_death's join), so a
        # job is never reported CANCELLED while its tool still runs.
        with contextlib.suppress(subprocess.TimeoutExpired):
            worker.process.wait(timeout=1)
        future.set_result(_error(Cancelled("Cancelled; the tool did not stop in time."), call))


def _error(exc: LensForgeError, call: ToolCall) -> Outcome:
    return Outcome(
        error=exc.bind(plugin=call.plugin, tool=call.tool, job_id=call.job_id).envelope()
    )
