"""Settings defaults that depend on the machine."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from lensforge.settings import Settings


def test_default_workers_is_one_per_core_this_process_may_use() -> None:
    assert Settings().workers == len(os.sched_getaffinity(0))


@pytest.mark.skipif(shutil.which("taskset") is None, reason="taskset (util-linux) not installed")
def test_default_workers_follows_cpu_affinity() -> None:
    """Under `taskset -c 0` (or a container's cpuset) one core means one worker."""
    code = "from lensforge.settings import Settings; print(Settings().workers)"
    done = subprocess.run(
        ["taskset", "-c", "0", sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert done.stdout.strip() == "1"
