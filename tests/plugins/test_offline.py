"""Proof that no plugin downloads anything: the plugin tests pass with the network cut.

The whole ``tests/plugins`` suite (this module excepted) runs again in a fresh network
namespace (``unshare -n``), which has no interface but a loopback that is down: any attempt to
fetch a model or a data set fails there.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _can_unshare() -> bool:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "-n", "true"], capture_output=True)
    return probe.returncode == 0


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.skipif(not _can_unshare(), reason="needs root and unshare(1) for a network namespace")
def test_plugin_suite_passes_offline() -> None:
    command = [
        "unshare",
        "-n",
        sys.executable,
        "-m",
        "pytest",
        "tests/plugins",
        "-k",
        "not offline",
        "-q",
        "-p",
        "no:cacheprovider",
    ]
    run = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=280)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert " passed" in run.stdout and " failed" not in run.stdout
