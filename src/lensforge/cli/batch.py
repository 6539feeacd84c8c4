"""``lensforge analyze``: one tool over many images on a server, ``--concurrency`` at once.

Each file gives one JSON line (``path``, ``job_id``, ``status``, ``result`` or ``error``),
written as it finishes, to stdout or ``--output``; a summary follows. Exit 1 if any file
failed, 3 if the server could not be reached for some.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import json
import sys
from pathlib import Path
from typing import Annotated, Any, TextIO

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from lensforge.cli.options import (
    ApiKeyOption,
    InputOption,
    JsonOption,
    ServerOption,
    TargetArgument,
    parse_inputs,
)
from lensforge.cli.output import (
    EXIT_CONNECTION,
    EXIT_JOB_FAILED,
    console,
    err_console,
    fail,
    print_json,
)
from lensforge.cli.remote_call import Remote
from lensforge.client import AsyncClient, ConnectionFailed
from lensforge.errors import LensForgeError, ValidationError

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".gif", ".bmp", ".tif", ".tiff", ".webp"})
MAX_CONCURRENCY = 64

app = typer.Typer()


def collect_files(paths: list[str]) -> list[Path]:
    """Files named by the arguments: a folder's images, a glob's matches, a file itself."""
    found: dict[str, Path] = {}

    def add(path: Path) -> None:
        found.setdefault(str(path), path)

    for arg in paths:
        path = Path(arg)
        if any(ch in arg for ch in "*?["):
            for match in sorted(glob.glob(arg, recursive=True)):
                if not Path(match).is_dir():
                    add(Path(match))
        elif path.is_dir():
            for child in sorted(path.iterdir()):
                if child.suffix.lower() in IMAGE_SUFFIXES and not child.is_dir():
                    add(child)
        else:
            add(path)  # a missing or unreadable file is reported for itself
    return list(found.values())


async def _analyze_one(
    client: AsyncClient, target: str, path: Path, inputs: dict[str, Any]
) -> tuple[dict[str, Any], str]:
    """One file's JSON line, and its outcome: "succeeded", "failed" or "unreachable"."""
    record: dict[str, Any] = {"path": str(path)}
    error: LensForgeError
    try:
        data = await asyncio.to_thread(path.read_bytes)
        done = await client.run(target, data, **inputs)
    except OSError as exc:
        error = ValidationError(
            f"Cannot read {path}: {exc.strerror or exc}.", details={"path": str(path)}
        )
    except LensForgeError as exc:
        error = exc
    else:
        record.update(job_id=done.job_id, status="SUCCESS", result=done.result)
        return record, "succeeded"
    body = error.envelope()["error"]
    record.update(job_id=body.get("job_id"), status="FAILED", error=body)
    return record, "unreachable" if isinstance(error, ConnectionFailed) else "failed"


async def _analyze_batch(
    client: AsyncClient,
    target: str,
    files: list[Path],
    inputs: dict[str, Any],
    concurrency: int,
    out: TextIO,
    bar: Progress | None,
) -> dict[str, int]:
    counts = {"succeeded": 0, "failed": 0, "unreachable": 0}
    limit = asyncio.Semaphore(concurrency)
    task = bar.add_task(target, total=len(files)) if bar is not None else None

    async def one(path: Path) -> None:
        async with limit:
            record, outcome = await _analyze_one(client, target, path, inputs)
        counts[outcome] += 1
        out.write(json.dumps(record) + "\n")
        out.flush()
        if bar is not None and task is not None:
            bar.advance(task)

    await asyncio.gather(*(one(path) for path in files))
    return counts


@app.command()
def analyze(
    target: TargetArgument,
    paths: Annotated[
        list[str], typer.Argument(help="Image files, folders (their images) or globs ('*.png').")
    ],
    input: InputOption = None,
    concurrency: Annotated[
        int, typer.Option("--concurrency", "-c", min=1, max=MAX_CONCURRENCY, help="Calls at once.")
    ] = 4,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="JSON Lines file of results (default: stdout)."),
    ] = None,
    server: ServerOption = None,
    api_key: ApiKeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Analyse many images at once: one JSON line per file; exit 1 if any file failed."""
    remote = Remote(server, api_key, as_json)
    try:
        inputs = parse_inputs(input)
    except LensForgeError as exc:
        fail(exc, as_json)
    files = collect_files(paths)
    if not files:
        fail(ValidationError(f"No images found in {' '.join(paths)}."), as_json)

    async def go(out: TextIO) -> dict[str, int]:
        async with remote.async_client(max_connections=concurrency) as client:
            if as_json or not err_console.is_terminal:
                return await _analyze_batch(client, target, files, inputs, concurrency, out, None)
            with Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=err_console,
            ) as bar:
                return await _analyze_batch(client, target, files, inputs, concurrency, out, bar)

    with contextlib.ExitStack() as stack:
        out = stack.enter_context(output.open("w", encoding="utf-8")) if output else sys.stdout
        counts = asyncio.run(go(out))
    summary = {"total": len(files), **counts, "output": str(output) if output else None}
    if as_json and output is not None:
        print_json(summary)
    else:
        target_console = console if output is not None else err_console
        target_console.print(
            f"{counts['succeeded']}/{len(files)} succeeded, {counts['failed']} failed"
            + (f", {counts['unreachable']} unreachable" if counts["unreachable"] else "")
            + (f"; results in {output}" if output else "")
        )
    if counts["unreachable"]:
        raise typer.Exit(EXIT_CONNECTION)
    if counts["failed"]:
        raise typer.Exit(EXIT_JOB_FAILED)
