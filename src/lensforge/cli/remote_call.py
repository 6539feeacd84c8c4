"""The one way a command reaches a server: open a client, make the call, print the answer.

Every command against a server takes ``--server``, ``--api-key`` and ``--json``; it hands
:meth:`Remote.call` what to ask the client and how to show the answer. A failure, from the
server or the network, prints its envelope (``--json``) or one red line and exits with the
status of :func:`lensforge.cli.output.exit_code` (1 job failed, 2 usage, 3 unreachable).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from lensforge.cli.output import emit, err_console, fail, finished
from lensforge.client import AsyncClient, Client, Job, JobInfo
from lensforge.errors import LensForgeError

T = TypeVar("T")
# A video tool's progress message ("frame 30 of 90"): the bar then counts frames.
_FRAMES = re.compile(r"frame (\d+) of (\d+)")


@dataclass(frozen=True)
class Remote:
    """Where a command's server is, the key to use, and whether to answer in JSON."""

    server: str | None
    api_key: str | None
    as_json: bool

    def call(
        self,
        action: Callable[[Client], T],
        show: Callable[[T], None],
        to_json: Callable[[T], Any] | None = None,
    ) -> None:
        """Run ``action`` with a client, then print its answer (or fail with an exit code)."""
        try:
            with Client(self.server, api_key=self.api_key) as client:
                value = action(client)
        except LensForgeError as exc:
            fail(exc, self.as_json)
        emit(value, self.as_json, show, to_json)

    def async_client(self, max_connections: int) -> AsyncClient:
        """An asyncio client for the same server (batches of calls)."""
        return AsyncClient(self.server, api_key=self.api_key, max_connections=max_connections)

    def finish(self, job: Job, *, wait: bool) -> dict[str, Any]:
        """A job's result as ``--json`` prints it, waiting for it first (with a bar) if asked."""
        if wait:
            self.follow(job)
        try:
            return finished(job.id, job.result(wait=False))
        except LensForgeError as exc:
            raise exc.bind(job_id=job.id) from None

    def follow(self, job: Job) -> JobInfo:
        """Wait for a job, drawing a progress bar on stderr unless ``--json``: in frames for
        a video tool (from its progress message), else in percent."""
        if self.as_json:
            return job.wait()
        last: JobInfo | None = None
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[count]}"),
            TimeElapsedColumn(),
            console=err_console,
            transient=True,
        ) as bar:
            task = bar.add_task(job.id, total=1.0, count="")
            for last in job.progress():
                done, total, count = bar_position(last)
                bar.update(task, completed=done, total=total, count=count)
                bar.update(task, description=last.status.lower())
        assert last is not None
        return last


def bar_position(info: JobInfo) -> tuple[float, float, str]:
    """(done, total, label) of a job's progress bar: frames when its progress message counts
    them (a video tool's "frame 12 of 90"), else the fraction done as a percentage."""
    frames = _FRAMES.search(info.progress_message or "")
    if frames:
        done, total = int(frames[1]), int(frames[2])
        return done, total, f"{done}/{total} frames"
    return info.progress, 1.0, f"{info.progress:.0%}"
