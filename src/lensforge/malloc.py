"""glibc malloc settings for processes that handle megabyte buffers (uploads, decoded images).

By default glibc serves a block above its mmap threshold (128 KiB to start with, raised as
such blocks are freed) from a fresh mapping, and gives the top of the heap back to the kernel
once more than twice that is free. A process that allocates and frees a few hundred KiB at a
time, as a request body, an upload's copy or a NumPy array is, then takes a page fault per
4 KiB each time: reading a 460 KB upload cost a bare uvicorn server ~1 ms of kernel time per
request, against 0.1 ms with freed memory kept. Other allocators ignore all of this.

Worker processes get the settings through their environment (``WORKER_ENVIRONMENT``); the API
process, already running when it could read them, through ``mallopt``.
"""

from __future__ import annotations

import ctypes
import os
import sys

MiB = 1024 * 1024
# (mmap threshold, trim threshold) by process. A worker keeps up to 128 MiB of freed memory
# (its tool's arrays, call after call); the API process, whose buffers are request bodies,
# 32 MiB, so that a burst of large uploads leaves it little bigger than before.
WORKER = (32 * MiB, 128 * MiB)  # 32 MiB: glibc's largest mmap threshold on 64-bit
API = (8 * MiB, 32 * MiB)

_VARIABLES = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")
# glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3


def environment(mmap_threshold: int, trim_threshold: int) -> dict[str, str]:
    """The variables that give a new process these settings (glibc reads them at start)."""
    # blocks below the mmap threshold come from the heap; the trim threshold is the free
    # memory kept at the heap's top
    return dict(zip(_VARIABLES, (str(mmap_threshold), str(trim_threshold)), strict=True))


def keep_freed_memory(mmap_threshold: int, trim_threshold: int) -> bool:
    """Apply the settings to this process with ``mallopt``; True when glibc took them.

    Does nothing (False) where the operator set either variable (theirs win), off Linux, or
    with a C library other than glibc.
    """
    if not sys.platform.startswith("linux"):
        return False
    if any(name in os.environ for name in _VARIABLES):
        return False
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # noqa: B018 (glibc only; musl's mallopt does nothing)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, mmap_threshold)) and bool(
        mallopt(_M_TRIM_THRESHOLD, trim_threshold)
    )
