"""The ``local`` executor: N supervised worker processes (the default for ``lensforge serve``).

Each worker loads the enabled plugins once and runs calls one at a time. The supervisor
enforces what a worker cannot enforce on itself: a call past its time limit, or a cancelled
call that ignores ``ctx.cancelled`` for longer than the grace period, costs the worker a
SIGKILL; a worker that dies (segfault, ``os._exit``, OOM kill) costs only its current call
(``worker_lost``). Either way a fresh worker replaces it and the server carries on. Each
worker leads its own process group, and every kill (time limit, cancel, shutdown, death)
goes to the whole group, so processes a tool started never outlive their worker.

**Pipelining.** While every worker is busy, a worker may be handed its next calls before it
finishes the current one, as long as what it holds adds up to less than
``PIPELINE_BUDGET_S`` of work at the running average call time: up to 16 no-op calls, two
20 ms calls, a single long one. The worker never sits idle while the server turns an answer
around, and, what matters most for short calls, the server and its workers take turns on
the CPU once per batch of calls rather than once per call (a process switch costs more
than a short call). A queued call waits for at most about that budget; its time limit
starts when it starts; if it is cancelled, its worker skips it; if its worker dies first,
it runs on another worker.
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
from collections import deque
from dataclasses import dataclass, field
from functools import partial
from multiprocessing.connection import Connection
from typing import Any

from lensforge import malloc
from lensforge.errors import Cancelled, LensForgeError, Timeout, WorkerLost
from lensforge.execution.channel import BlockingChannel, ChannelProtocol
from lensforge.execution.executors.base import CallControl, resumed
from lensforge.execution.tool_runner import Outcome, ToolCall
from lensforge.execution.worker import WorkerConfig

log = logging.getLogger(__name__)
# The environment of a worker process, unless the operator set these already:
# - thread pools of numeric libraries sized to one thread: a worker runs one job at a time and
#   there is a worker per core (OpenCV's DNN with two threads per worker on two cores spent a
#   tenth more CPU per face detection, much of it spinning in the kernel);
# - glibc malloc keeps freed memory for the next call instead of returning it to the kernel:
#   blocks above its mmap threshold (128 KiB to start with) are fresh mappings, so a tool that
#   allocates and frees megabyte arrays on every call (NumPy, Pillow) takes a page fault per
#   4 KiB each time: ~2,000 faults and 7 ms of kernel time per 640x480 image in image.quality.
#   Other allocators ignore these variables.
WORKER_ENVIRONMENT = {
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "OPENCV_FOR_THREADS_NUM": "1",
    **malloc.environment(*malloc.WORKER),
}
PIPELINE_BUDGET_S = 0.02  # of queued work a worker may hold besides the call it runs
PIPELINE_MAX = 16  # calls a worker may hold, the running one included
_AVERAGE_WEIGHT = 0.05  # of the newest call in the running average of call times


@dataclass(eq=False)
class _Call:
    """A call handed to a worker: running (the first of its worker's) or queued behind."""

    call: ToolCall
    control: CallControl
    future: asyncio.Future[Outcome]
    started: float | None = None  # perf_counter when the worker started it
    timers: list[asyncio.TimerHandle] = field(default_factory=list)

    def settle(self, outcome: Outcome) -> None:
        for timer in self.timers:
            timer.cancel()
        self.timers.clear()
        if not self.future.done():
            self.future.set_result(outcome)


@dataclass(eq=False)
class _Worker:
    process: subprocess.Popen[bytes]
    cancels: Connection  # read by a thread of the worker's, so they reach a running tool
    pid: int
    channel: ChannelProtocol | None = None  # calls, results and progress
    calls: deque[_Call] = field(default_factory=deque)  # in the order the worker runs them
    outbox: list[ToolCall] = field(default_factory=list)  # handed out, not yet written
    alive: bool = True
    retired: bool = False  # killed or being killed: never handed another call

    @property
    def call(self) -> ToolCall | None:
        """The call the worker is running now."""
        return self.calls[0].call if self.calls else None


class LocalExecutor:
    """Runs calls in a pool of supervised worker processes."""

    name = "local"
    in_process = False  # the ToolRunner records metrics in the worker: see middleware

    def __init__(
        self,
        config: WorkerConfig,
        workers: int,
        *,
        cancel_grace_s: float = 2.0,
        start_timeout_s: float = 120.0,
    ) -> None:
        self.config = config
        # Plugins are set up in the workers; each reports their lifecycle state, kept here
        # for the server to mirror (PluginExecutionService.start): name → (state, reason).
        self.plugin_states: dict[str, tuple[str, str | None]] = {}
        self.size = workers
        self.cancel_grace_s = cancel_grace_s
        self.start_timeout_s = start_timeout_s
        self._workers: set[_Worker] = set()
        self._slot_freed = asyncio.Event()
        self._stopping = False
        self._spawning: set[asyncio.Task[None]] = set()
        self._handing: set[asyncio.Future[None]] = set()  # calls moved off a dead worker
        self.pipelined = 0  # calls handed to a worker that was still busy
        self.moved = 0  # queued calls moved off a worker that died before starting them
        self._average_s = PIPELINE_BUDGET_S * 10  # unknown until calls were seen: long

    @property
    def capacity(self) -> int:
        """Calls that can be handed out at once: more than the workers while pipelining."""
        return self.size * self._depth

    @property
    def _depth(self) -> int:
        """Calls one worker may hold now (see Pipelining, above)."""
        return min(PIPELINE_MAX, 1 + int(PIPELINE_BUDGET_S / max(self._average_s, 1e-6)))

    # -- pool ------------------------------------------------------------------------------

    async def start(self) -> None:
        await asyncio.gather(*(self._spawn() for _ in range(self.size)))

    async def stop(self) -> None:
        self._stopping = True
        for task in self._spawning:
            task.cancel()
        await asyncio.gather(*self._spawning, return_exceptions=True)
        workers = list(self._workers)
        for worker in workers:
            self._kill(worker)
            if worker.alive:  # close here, so that _on_death does nothing more
                worker.alive = False
                if worker.channel is not None:
                    worker.channel.close()
                worker.cancels.close()
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
        # multiprocessing's spawn: it re-runs the caller's __main__), joined by socket pairs.
        loop = asyncio.get_running_loop()
        (calls, child_calls), (cancels_sock, child_cancels) = (socket.socketpair() for _ in "ab")
        cancels = Connection(cancels_sock.detach())
        child_fds = [child_calls.detach(), child_cancels.detach()]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        for name, value in WORKER_ENVIRONMENT.items():
            env.setdefault(name, value)
        popen = asyncio.ensure_future(
            asyncio.to_thread(
                subprocess.Popen,
                [sys.executable, "-m", "lensforge.execution.worker", *map(str, child_fds)],
                pass_fds=child_fds,
                env=env,
                stdin=subprocess.DEVNULL,
                # Its own process group: a kill reaches whatever the tool started too.
                start_new_session=True,
            )
        )
        try:
            process = await asyncio.shield(popen)
        except asyncio.CancelledError:
            # Shut down while the process was being started: Popen returns promptly, so
            # wait for it and leave neither the process nor its sockets behind.
            with contextlib.suppress(Exception):
                started = await popen
                _kill_group(started.pid)
                await asyncio.to_thread(started.wait)
            calls.close()
            cancels.close()
            raise
        finally:
            if popen.done():  # never while Popen may still be passing them to the child
                for fd in child_fds:
                    os.close(fd)
        try:
            ready = await asyncio.to_thread(self._handshake, calls, process)
        except BaseException:  # cancelled (shutdown) or failed: leave no process behind
            _kill_group(process.pid)
            await asyncio.to_thread(process.wait)
            calls.close()
            cancels.close()
            raise
        _, pid, states = ready
        self.plugin_states.update(states)
        worker = _Worker(process=process, cancels=cancels, pid=pid)
        _, worker.channel = await loop.connect_accepted_socket(
            lambda: ChannelProtocol(
                partial(self._on_messages, worker), partial(self._on_death, worker)
            ),
            sock=calls,
        )
        self._workers.add(worker)
        log.info("worker %d ready", pid, extra={"event": "worker_ready", "pid": pid})
        self._slot_freed.set()

    def _handshake(self, sock: socket.socket, process: subprocess.Popen[bytes]) -> Any:
        """Send the worker its config; its ready message once it has loaded the plugins."""
        channel = BlockingChannel(sock)
        channel.send([self.config])
        sock.settimeout(0.05)
        deadline = time.monotonic() + self.start_timeout_s
        try:
            while time.monotonic() < deadline:
                try:
                    (ready,) = channel.receive()
                    return ready
                except TimeoutError:
                    if process.poll() is not None:
                        break
                except (EOFError, ValueError):
                    break
        finally:
            sock.settimeout(None)
        raise LensForgeError(f"A worker process failed to start (exit code {process.poll()}).")

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

    def _on_messages(self, worker: _Worker, messages: list[Any]) -> None:
        for message in messages:
            kind = message[0]
            if kind == "done" and worker.calls:
                finished = worker.calls.popleft()
                outcome = Outcome(*message[2])
                self._average_s += _AVERAGE_WEIGHT * (outcome.duration_s - self._average_s)
                finished.settle(outcome)
                if worker.calls:
                    self._started(worker, worker.calls[0])
                self._slot_freed.set()
            elif kind == "progress":
                for handed in worker.calls:
                    if handed.call.job_id == message[1] and handed.control.on_progress:
                        handed.control.on_progress(message[2], message[3])
            elif kind == "checkpoint":  # before its call's "done": stored before its result
                for handed in worker.calls:
                    if handed.call.job_id == message[1] and handed.control.on_checkpoint:
                        handed.control.on_checkpoint(message[2], message[3])

    def _on_death(self, worker: _Worker) -> None:
        if not worker.alive:
            return
        worker.alive = False
        if worker.channel is not None:
            worker.channel.close()
        worker.cancels.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            worker.process.wait(timeout=1)
        _kill_group(worker.process.pid)  # what its tool started dies with it
        self._workers.discard(worker)
        calls, worker.calls, worker.outbox = list(worker.calls), deque(), []
        if calls and not calls[0].future.done():
            running, code = calls[0].call, worker.process.returncode
            log.warning(
                "worker %d died (exit code %s) running job %s",
                worker.pid,
                code,
                running.job_id,
                extra={"event": "worker_lost", "pid": worker.pid, "job_id": running.job_id},
            )
            lost = WorkerLost(
                f"The worker process died while running the tool (exit code {code}).",
                details={"exit_code": code},
            )
            calls[0].settle(_error(lost, running))
        for queued in calls[1:]:  # never started: cancelled ones end, the others run elsewhere
            if queued.control.cancelled:
                queued.settle(_error(Cancelled(), queued.call))
            elif not queued.future.done():
                self.moved += 1
                task = asyncio.ensure_future(self._hand_out(queued))
                self._handing.add(task)
                task.add_done_callback(self._handing.discard)
        self._replace()

    def _kill(self, worker: _Worker) -> None:
        worker.retired = True
        if worker.alive:
            _kill_group(worker.process.pid)

    # -- calls -----------------------------------------------------------------------------

    async def run(self, call: ToolCall, control: CallControl) -> Outcome:
        call = resumed(call, control)
        handed = _Call(call, control, asyncio.get_running_loop().create_future())
        await self._hand_out(handed)
        outcome = await handed.future
        if outcome.error_code in ("timeout", "cancelled") and handed.started is not None:
            outcome.duration_s = time.perf_counter() - handed.started
        return outcome

    async def _hand_out(self, handed: _Call) -> None:
        """Give the call to the least busy worker that may take it, waiting for one."""
        while (worker := self._pick()) is None:
            self._slot_freed.clear()
            await self._slot_freed.wait()
        worker.calls.append(handed)
        if not any(w.outbox for w in self._workers):
            asyncio.get_running_loop().call_soon(self._write_outboxes)
        worker.outbox.append(handed.call)
        if len(worker.calls) == 1:
            self._started(worker, handed)
        else:
            self.pipelined += 1
        handed.control.add_cancel_listener(lambda: self._cancel(worker, handed))

    def _write_outboxes(self) -> None:
        """Write every call handed out in this turn of the loop, one write per worker."""
        for worker in list(self._workers):
            calls, worker.outbox = worker.outbox, []
            if calls and worker.alive and worker.channel is not None:
                try:
                    worker.channel.send([("run", call.to_wire()) for call in calls])
                except ConnectionError:
                    self._on_death(worker)  # settles or re-hands its calls

    def _pick(self) -> _Worker | None:
        depth = self._depth
        candidates = [
            w for w in self._workers if w.alive and not w.retired and len(w.calls) < depth
        ]
        return min(candidates, key=lambda w: len(w.calls), default=None)

    def _started(self, worker: _Worker, handed: _Call) -> None:
        """The worker starts ``handed`` now: its time limit (and a pending cancel) apply."""
        handed.started = time.perf_counter()
        loop = asyncio.get_running_loop()
        if handed.call.timeout_s is not None:
            handed.timers.append(
                loop.call_later(handed.call.timeout_s, self._time_out, worker, handed)
            )
        if handed.control.cancelled:
            handed.timers.append(
                loop.call_later(self.cancel_grace_s, self._force_cancel, worker, handed)
            )

    def _time_out(self, worker: _Worker, handed: _Call) -> None:
        if handed.future.done() or not worker.calls or worker.calls[0] is not handed:
            return
        handed.settle(
            _error(
                Timeout(
                    f"The tool ran past its time limit of {handed.call.timeout_s:g} s; its "
                    "worker was stopped.",
                    details={"timeout_s": handed.call.timeout_s},
                ),
                handed.call,
            )
        )
        self._kill(worker)  # the worker may be stuck anywhere: only a kill is sure

    def _cancel(self, worker: _Worker, handed: _Call) -> None:
        if handed.future.done() or not worker.alive:
            return
        with contextlib.suppress(OSError):
            worker.cancels.send(("cancel", handed.call.job_id or ""))
        if handed.started is not None:  # running: it gets the grace period, then a kill
            handed.timers.append(
                asyncio.get_running_loop().call_later(
                    self.cancel_grace_s, self._force_cancel, worker, handed
                )
            )

    def _force_cancel(self, worker: _Worker, handed: _Call) -> None:
        if handed.future.done() or not worker.calls or worker.calls[0] is not handed:
            return
        self._kill(worker)
        # The outcome is set once the process is really gone (see _on_death's join), so a
        # job is never reported CANCELLED while its tool still runs.
        with contextlib.suppress(subprocess.TimeoutExpired):
            worker.process.wait(timeout=1)
        handed.settle(_error(Cancelled("Cancelled; the tool did not stop in time."), handed.call))


def _kill_group(pgid: int) -> None:
    """SIGKILL a worker's process group: the worker and every process its tools started
    (unless one left the group on purpose, with setsid)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def _error(exc: LensForgeError, call: ToolCall) -> Outcome:
    return Outcome(
        error=exc.bind(plugin=call.plugin, tool=call.tool, job_id=call.job_id).envelope()
    )
