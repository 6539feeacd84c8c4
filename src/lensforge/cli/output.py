"""How a command ends: its exit status, and its answer printed as ``--json`` or for people.

Exit codes, the same for every command: 0 success; 1 a job failed (for the batch
``analyze``: at least one file did); 2 a usage or input error (bad arguments, unknown tool or
job, an image the server refuses, cancel of a finished job); 3 the server could not be reached.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

import typer
from rich.console import Console

from lensforge.errors import LensForgeError

EXIT_OK = 0
EXIT_JOB_FAILED = 1
EXIT_USAGE = 2
EXIT_CONNECTION = 3

# Errors that mean "the request was wrong": exit 2. Any other error is a failed job: exit 1.
USAGE_CODES = frozenset(
    {
        "validation_error",
        "plugin_not_found",
        "tool_not_found",
        "job_not_found",
        "blob_not_found",
        "not_found",
        "method_not_allowed",
        "payload_too_large",
        "unsupported_media_type",
        "unauthorized",
        "forbidden",
        "conflict",
        "illegal_transition",
    }
)
CONNECTION_FAILED = "connection_failed"  # lensforge.client.ConnectionFailed's code

console = Console()
err_console = Console(stderr=True)

T = TypeVar("T")


def exit_code(exc: LensForgeError) -> int:
    """The exit status for an error: 3 unreachable, 2 usage or input, 1 the job failed."""
    if exc.code == CONNECTION_FAILED:
        return EXIT_CONNECTION
    return EXIT_USAGE if exc.code in USAGE_CODES else EXIT_JOB_FAILED


def fail(exc: LensForgeError, as_json: bool) -> NoReturn:
    """Print the error (its envelope with ``--json``, one red line otherwise) and exit."""
    if as_json:
        print_json(exc.envelope())
    else:
        err_console.print(f"[red]{exc.code}[/red]: {exc.message}")
    raise typer.Exit(exit_code(exc))


def print_json(value: Any) -> None:
    """One line of JSON on stdout (what ``--json`` prints)."""
    print(json.dumps(value))


def show_result(answer: dict[str, Any]) -> None:
    """A finished job's result, pretty-printed (``answer`` as :func:`finished` builds it)."""
    console.print_json(json.dumps(answer["result"]))


def finished(job_id: str, result: Any) -> dict[str, Any]:
    """What ``--json`` prints for a job that succeeded."""
    return {"job_id": job_id, "status": "SUCCESS", "result": result}


def emit(
    value: T, as_json: bool, show: Callable[[T], None], to_json: Callable[[T], Any] | None = None
) -> None:
    """Print a command's answer: ``to_json(value)`` with ``--json``, else ``show(value)``."""
    if as_json:
        print_json(value if to_json is None else to_json(value))
    else:
        show(value)
