"""Lease owners name their host and boot: only this host's dead pids are judged at once."""

from __future__ import annotations

import socket
import subprocess
import sys

from lensforge.execution.leases import host_prefix, make_worker_id, owner_alive


def a_dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_a_worker_id_carries_host_and_boot_and_fits_the_column() -> None:
    worker_id = make_worker_id()
    assert worker_id.startswith(host_prefix())
    assert host_prefix().startswith(socket.gethostname()[:32] + "/")
    assert len(worker_id) <= 64  # jobs.lease_owner is String(64)


def test_a_dead_pid_of_this_host_is_dead() -> None:
    assert not owner_alive(f"{host_prefix()}{a_dead_pid()}:abcd")


def test_the_same_pid_on_another_host_or_boot_is_not_ours_to_judge() -> None:
    pid = a_dead_pid()
    name = socket.gethostname()[:32]
    assert owner_alive(f"{name}/000000000000:{pid}:abcd")  # same name, another machine
    assert owner_alive(f"{name}:{pid}:abcd")  # the old format, without a boot id
    assert owner_alive(f"elsewhere/123:{pid}:abcd")
