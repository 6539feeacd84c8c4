"""Who holds a lease: ``host:pid:token``, and whether that server process still runs here."""

from __future__ import annotations

import os
import secrets
import socket


def make_worker_id() -> str:
    """A lease owner for this server process: its host, its pid, and a token of its own."""
    return f"{host_prefix()}{os.getpid()}:{secrets.token_hex(4)}"


def host_prefix() -> str:
    """The start of every lease owner on this host."""
    return f"{socket.gethostname()}:"


def owner_alive(owner: str | None) -> bool:
    """Whether the server process named in a lease owner on this host still runs."""
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
