"""The API process keeps freed memory (glibc ``mallopt``), unless the operator said otherwise."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

CHURN = """
import resource, sys
from lensforge import malloc

applied = malloc.keep_freed_memory(*malloc.API) if sys.argv[1] == "tuned" else None


def churn():  # what a request does: a few MiB of buffers, written, then freed
    blocks = [b"x" * (1024 * 1024) for _ in range(8)]
    del blocks


churn()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    churn()
print(applied, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def run_churn(mode: str, **env: str) -> tuple[str, int]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    out = subprocess.run(
        [sys.executable, "-c", CHURN, mode],
        env={**clean, **env},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.split()
    return out[0], int(out[1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_freed_buffers_are_reused_without_page_faults() -> None:
    applied, tuned = run_churn("tuned")
    _, untuned = run_churn("untuned")
    assert applied == "True"
    # glibc's default gives the 8 MiB back after each round and faults it in again
    assert untuned > 20 * 1024, untuned
    assert tuned < untuned / 20, (tuned, untuned)


def test_the_operators_own_settings_win() -> None:
    applied, _ = run_churn("tuned", MALLOC_TRIM_THRESHOLD_="0")
    assert applied == "False"
