"""The ``lensforge`` commands that talk to a running server through :mod:`lensforge.client`.

``submit``, ``jobs``, ``job``, ``result``, ``cancel`` and the batch ``analyze``; each takes
``--server`` (``LENSFORGE_SERVER``, default ``http://127.0.0.1:8000``), ``--api-key``
(``LENSFORGE_API_KEY``) and ``--json``. Exit codes: 0 success, 1 a job failed (for ``analyze``:
at least one file did), 2 a usage or input error, 3 the server could not be reached.
:func:`register` adds them to the CLI's Typer app.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import json
import sys
from pathlib import Path
from typing import Annotated, Any, NoReturn, TextIO

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from lensforge.client import AsyncClient, Client, ConnectionFailed, Job, JobInfo
from lensforge.errors import LensForgeError, ValidationError

# The same values as lensforge.cli's (a test checks); this module may not import the CLI.
EXIT_JOB_FAILED = 1
EXIT_USAGE = 2
EXIT_CONNECTION = 3

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
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".gif", ".bmp", ".tif", ".tiff", ".webp"})
MAX_CONCURRENCY = 64

console = Console()
err_console = Console(stderr=True)

ServerOpt = Annotated[
    str | None,
    typer.Option("--server", envvar="LENSFORGE_SERVER", help="Server URL [http://127.0.0.1:8000]."),
]
ApiKeyOpt = Annotated[
    str | None,
    typer.Option("--api-key", envvar="LENSFORGE_API_KEY", help="API key (sent as Bearer)."),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON only (for scripts).")]
InputOpt = Annotated[
    list[str] | None,
    typer.Option("--input", "-i", help="Another input, key=value (JSON value)."),
]


def exit_code(exc: LensForgeError) -> int:
    """The exit status for an error: 3 unreachable, 2 usage or input, 1 the job failed."""
    if isinstance(exc, ConnectionFailed):
        return EXIT_CONNECTION
    return EXIT_USAGE if exc.code in USAGE_CODES else EXIT_JOB_FAILED


def _fail(exc: LensForgeError, as_json: bool) -> NoReturn:
    if as_json:
        print(json.dumps(exc.envelope()))
    else:
        err_console.print(f"[red]{exc.code}[/red]: {exc.message}")
    raise typer.Exit(exit_code(exc))


def _parse_inputs(pairs: list[str]) -> dict[str, Any]:
    inputs: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValidationError(f"--input expects key=value, got {pair!r}.")
        try:
            inputs[key] = json.loads(value)
        except json.JSONDecodeError:
            inputs[key] = value  # a bare string
    return inputs


def _print_json(value: Any) -> None:
    print(json.dumps(value))


def _job_table(jobs: list[JobInfo]) -> Table:
    table = Table("id", "tool", "status", "progress", "created", "error")
    for job in jobs:
        error = (job.error or {}).get("code", "")
        table.add_row(
            job.id,
            f"{job.plugin}.{job.tool}",
            job.status,
            f"{job.progress:.0%}",
            job.created_at or "",
            error,
        )
    return table


def _follow(job: Job, as_json: bool) -> JobInfo:
    """Wait for a job, drawing a progress bar on stderr unless --json."""
    if as_json:
        return job.wait()
    last: JobInfo | None = None
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
    ) as bar:
        task = bar.add_task(job.id, total=1.0)
        for last in job.progress():
            label = f"{last.status.lower()} {last.progress_message or ''}".strip()
            bar.update(task, completed=last.progress, description=label)
    assert last is not None
    return last


def _show_result(client: Client, job: Job, as_json: bool) -> None:
    try:
        result = client.job(job.id).result()
    except LensForgeError as exc:
        exc.bind(job_id=job.id)
        _fail(exc, as_json)
    if as_json:
        _print_json({"job_id": job.id, "status": "SUCCESS", "result": result})
    else:
        console.print_json(json.dumps(result))


def submit(
    target: Annotated[str, typer.Argument(help="PLUGIN.TOOL (or PLUGIN), e.g. image.info")],
    image: Annotated[
        Path | None, typer.Option(help="Image file for the tool's image input.")
    ] = None,
    input: InputOpt = None,
    wait: Annotated[bool, typer.Option("--wait", help="Wait and print the result.")] = False,
    timeout_s: Annotated[float | None, typer.Option(help="Time limit for the job.")] = None,
    server: ServerOpt = None,
    api_key: ApiKeyOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Submit a job to a server; print its id (or, with --wait, its result)."""
    try:
        inputs = _parse_inputs(input or [])
        with Client(server, api_key=api_key) as client:
            job = client.submit(target, image, timeout_s=timeout_s, **inputs)
            if not wait:
                if as_json:
                    _print_json({"job_id": job.id, "status": "PENDING"})
                else:
                    console.print(job.id)
                return
            _follow(job, as_json)
            _show_result(client, job, as_json)
    except LensForgeError as exc:
        _fail(exc, as_json)


def jobs(
    status: Annotated[
        str | None, typer.Option(help="PENDING, RUNNING, SUCCESS, FAILED or CANCELLED.")
    ] = None,
    plugin: Annotated[str | None, typer.Option(help="Only this plugin's jobs.")] = None,
    tool: Annotated[str | None, typer.Option(help="Only this tool's jobs.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=500, help="How many, newest first.")] = 20,
    server: ServerOpt = None,
    api_key: ApiKeyOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List jobs on a server, newest first."""
    try:
        with Client(server, api_key=api_key) as client:
            page = client.jobs(status=status, plugin=plugin, tool=tool, limit=limit)
    except LensForgeError as exc:
        _fail(exc, as_json)
    if as_json:
        _print_json({"jobs": [job.raw for job in page]})
    else:
        console.print(_job_table(page))


def job(
    job_id: Annotated[str, typer.Argument(help="The job id.")],
    server: ServerOpt = None,
    api_key: ApiKeyOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show one job: status, progress, attempts, timestamps, error."""
    try:
        with Client(server, api_key=api_key) as client:
            info = client.job(job_id).info()
    except LensForgeError as exc:
        _fail(exc, as_json)
    if as_json:
        _print_json(info.raw)
        return
    table = Table("field", "value", show_header=False)
    for key, value in info.raw.items():
        table.add_row(key, json.dumps(value) if isinstance(value, dict) else str(value))
    console.print(table)


def result(
    job_id: Annotated[str, typer.Argument(help="The job id.")],
    wait: Annotated[bool, typer.Option("--wait", help="Wait for the job to finish.")] = False,
    server: ServerOpt = None,
    api_key: ApiKeyOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Print a finished job's result (a failed job's error, exit 1)."""
    try:
        with Client(server, api_key=api_key) as client:
            handle = client.job(job_id)
            if wait:
                _follow(handle, as_json)
            value = handle.result(wait=False)
    except LensForgeError as exc:
        _fail(exc, as_json)
    if as_json:
        _print_json({"job_id": job_id, "status": "SUCCESS", "result": value})
    else:
        console.print_json(json.dumps(value))


def cancel(
    job_id: Annotated[str, typer.Argument(help="The job id.")],
    server: ServerOpt = None,
    api_key: ApiKeyOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Cancel a pending or running job (exit 2 if it already finished)."""
    try:
        with Client(server, api_key=api_key) as client:
            info = client.job(job_id).cancel()
    except LensForgeError as exc:
        _fail(exc, as_json)
    if as_json:
        _print_json(info.raw)
    else:
        console.print(f"{info.id} {info.status}")


# -- batch analysis ------------------------------------------------------------------------------


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
        outcome = await client.run(target, data, **inputs)
    except OSError as exc:
        error = ValidationError(
            f"Cannot read {path}: {exc.strerror or exc}.", details={"path": str(path)}
        )
    except LensForgeError as exc:
        error = exc
    else:
        record.update(job_id=outcome.job_id, status="SUCCESS", result=outcome.result)
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


def analyze(
    target: Annotated[str, typer.Argument(help="PLUGIN.TOOL, e.g. image.info")],
    paths: Annotated[
        list[str], typer.Argument(help="Image files, folders (their images) or globs ('*.png').")
    ],
    input: InputOpt = None,
    concurrency: Annotated[
        int, typer.Option("--concurrency", "-c", min=1, max=MAX_CONCURRENCY, help="Calls at once.")
    ] = 4,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="JSON Lines file of results [stdout]."),
    ] = None,
    server: ServerOpt = None,
    api_key: ApiKeyOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Analyse many images at once: one JSON line per file; exit 1 if any file failed."""
    try:
        inputs = _parse_inputs(input or [])
    except LensForgeError as exc:
        _fail(exc, as_json)
    files = collect_files(paths)
    if not files:
        _fail(ValidationError(f"No images found in {' '.join(paths)}."), as_json)

    async def go(out: TextIO) -> dict[str, int]:
        async with AsyncClient(server, api_key=api_key, max_connections=concurrency) as client:
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
        _print_json(summary)
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


def register(app: typer.Typer) -> None:
    """Add the server commands to the ``lensforge`` Typer app."""
    for command in (submit, jobs, job, result, cancel, analyze):
        app.command()(command)
