"""Leases: who holds one (``host/boot:pid:token``), the heartbeat, and recovery of expired ones.

A RUNNING job is leased to the server process running it. That server renews its leases
every third of ``lease_s`` (and passes on cancel requests made elsewhere); a job whose lease
ran out (its server or machine is gone) is recovered by any server: PENDING again with an
attempt counted, or FAILED with ``worker_lost`` when its attempts are spent. Recovery runs
at start-up (then also for jobs of dead server processes on this host, at once) and with
every heartbeat. "This host" is the host name *and* the kernel's boot id, so that two
machines (or containers of two machines) with the same name never judge each other's pids;
any other owner's jobs wait for their lease to expire. The transitions themselves are
JobExecutionService's (``apply``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
from collections.abc import Awaitable, Callable, Collection
from pathlib import Path

from lensforge.errors import IllegalTransition
from lensforge.execution.verdicts import Verdict, lost
from lensforge.store import JobRecord, JobStoreProtocol

log = logging.getLogger(__name__)
Apply = Callable[[JobRecord, Verdict, str | None], Awaitable[JobRecord]]


def make_worker_id() -> str:
    """A lease owner for this server process: its host, its pid, and a token of its own."""
    return f"{host_prefix()}{os.getpid()}:{secrets.token_hex(4)}"


def host_prefix() -> str:
    """The start of every lease owner on this host (and since its last boot)."""
    return f"{socket.gethostname()[:32]}/{_boot_id()}:"


def _boot_id() -> str:
    """This boot of this machine's kernel (Linux); elsewhere a token of this process's
    lifetime, so that no other process's lease ever looks local."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip().replace("-", "")[:12]
    except OSError:
        return _PROCESS_TOKEN


_PROCESS_TOKEN = secrets.token_hex(6)


def owner_alive(owner: str | None) -> bool:
    """Whether the server process named in a lease owner still runs (True unless the owner
    is of this host and its pid is gone)."""
    if not (owner or "").startswith(host_prefix()):
        return True  # another host's: not ours to judge, its lease will speak
    try:
        pid = int((owner or "").split(":")[1])
    except (IndexError, ValueError):
        return True  # not ours to judge: wait for the lease to expire
    if pid == os.getpid():
        return True  # another service in this very process: let its lease speak
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class LeaseKeeper:
    """Heartbeats this server's leases and recovers expired ones."""

    def __init__(
        self,
        store: JobStoreProtocol,
        *,
        worker_id: str,
        lease_s: float,
        worker_lost_attempts: int,
        running: Callable[[], Collection[str]],
        cancel: Callable[[str], None],
        apply: Apply,
        recovered: Callable[[], None],
    ) -> None:
        self.store = store
        self.worker_id = worker_id
        self.lease_s = lease_s
        self.worker_lost_attempts = worker_lost_attempts
        self._running, self._cancel, self._apply = running, cancel, apply
        self._recovered = recovered
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="lensforge-leases")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def recover(self, *, dead_local_owners: bool = False) -> int:
        """Requeue (or fail, when attempts are spent) RUNNING jobs whose lease expired.

        With ``dead_local_owners`` (at start-up), jobs leased to a server process on this host
        that no longer exists are recovered at once instead of when their lease runs out.
        """
        candidates = await self.store.expired_leases()
        if dead_local_owners:
            mine = await self.store.running_owned_by(host_prefix())
            candidates += [job for job in mine if not owner_alive(job.lease_owner)]
        recovered = 0
        for job in candidates:
            try:
                await self._apply(job, lost(job, self.worker_lost_attempts), job.lease_owner)
                recovered += 1
            except IllegalTransition:
                continue  # its worker came back and finished it, or another server recovered it
        if recovered:
            log.warning(
                "recovered %d jobs with expired leases",
                recovered,
                extra={"event": "jobs_recovered"},
            )
            self._recovered()
        return recovered

    async def heartbeat(self) -> None:
        """Renew the leases of the jobs running here; pass on cancel requests."""
        ids = list(self._running())
        if not ids:
            return
        await self.store.renew_leases(self.worker_id, ids, self.lease_s)
        for job in await self.store.get_many(ids):
            if job.cancel_requested:
                self._cancel(job.id)

    async def _loop(self) -> None:
        interval = max(0.2, self.lease_s / 3)
        while True:
            await asyncio.sleep(interval)
            try:
                await self.heartbeat()
                await self.recover()
            except Exception:
                log.exception(
                    "lease maintenance failed", extra={"event": "lease_maintenance_failed"}
                )
