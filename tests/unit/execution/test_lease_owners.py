"""Lease owners name their host and boot: only this host's dead pids are judged at once."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

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


def test_a_live_process_of_this_host_is_alive_and_left_untouched() -> None:
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        assert owner_alive(f"{host_prefix()}{process.pid}:abcd")
        with pytest.raises(subprocess.TimeoutExpired):  # the check sent it no real signal
            process.wait(timeout=0.3)
    finally:
        process.kill()
        process.wait()


def test_this_very_process_is_alive() -> None:
    assert owner_alive(f"{host_prefix()}{os.getpid()}:abcd")


def test_an_owner_of_this_host_without_a_pid_is_not_ours_to_judge() -> None:
    assert owner_alive(f"{host_prefix()}notapid:abcd")
    assert owner_alive(host_prefix())


def test_a_process_we_may_not_signal_is_alive(monkeypatch: pytest.MonkeyPatch) -> None:
    """Another user's process (as root, simulated: kill(pid, 0) answers EPERM)."""

    def denied(pid: int, signal: int) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "kill", denied)
    assert owner_alive(f"{host_prefix()}{os.getpid() + 1}:abcd")
