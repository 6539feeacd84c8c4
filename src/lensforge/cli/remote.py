"""``lensforge submit | jobs | job | result | cancel``: single jobs on a running server.

Each command says what to ask (:mod:`lensforge.client`) and how to show the answer;
:class:`~lensforge.cli.remote_call.Remote` does the rest: ``--server`` (``LENSFORGE_SERVER``,
default ``http://127.0.0.1:8000``), ``--api-key`` (``LENSFORGE_API_KEY``), ``--json``, errors
and exit codes.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Annotated, Any

import typer
from rich.table import Table

from lensforge.cli.options import (
    ApiKeyOption,
    ImageOption,
    InputOption,
    JobIdArgument,
    JsonOption,
    ServerOption,
    TargetArgument,
    VideoOption,
    parse_inputs,
)
from lensforge.cli.output import console, show_result
from lensforge.cli.remote_call import Remote
from lensforge.client import Client, Job, JobInfo

app = typer.Typer()


def _raw(info: JobInfo) -> dict[str, Any]:
    return info.raw


def _job_table(jobs: list[JobInfo]) -> Table:
    table = Table("id", "tool", "status", "progress", "created", "error")
    for info in jobs:
        table.add_row(
            info.id,
            f"{info.plugin}.{info.tool}",
            info.status,
            f"{info.progress:.0%}",
            info.created_at or "",
            (info.error or {}).get("code", ""),
        )
    return table


def _show_job(info: JobInfo) -> None:
    table = Table("field", "value", show_header=False)
    for key, value in info.raw.items():
        table.add_row(key, json.dumps(value) if isinstance(value, dict) else str(value))
    console.print(table)


def _on_job(
    action: Callable[[Job], JobInfo], show: Callable[[JobInfo], None]
) -> Callable[..., None]:
    """A command that does ``action`` to one job and shows the job as it then stands."""

    def command(
        job_id: JobIdArgument,
        server: ServerOption = None,
        api_key: ApiKeyOption = None,
        as_json: JsonOption = False,
    ) -> None:
        Remote(server, api_key, as_json).call(
            lambda client: action(client.job(job_id)), show=show, to_json=_raw
        )

    return command


@app.command()
def submit(
    target: TargetArgument,
    image: ImageOption = None,
    video: VideoOption = None,
    input: InputOption = None,
    wait: Annotated[bool, typer.Option("--wait", help="Wait and print the result.")] = False,
    timeout_s: Annotated[float | None, typer.Option(help="Time limit for the job.")] = None,
    server: ServerOption = None,
    api_key: ApiKeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Submit a job to a server; print its id (or, with --wait, its result)."""
    remote = Remote(server, api_key, as_json)

    def go(client: Client) -> dict[str, Any]:
        inputs = parse_inputs(input)
        job = client.submit(target, image, video=video, timeout_s=timeout_s, **inputs)
        if wait:
            return remote.finish(job, wait=True)
        return {"job_id": job.id, "status": "PENDING"}

    def show(answer: dict[str, Any]) -> None:
        if "result" in answer:
            show_result(answer)
        else:
            console.print(answer["job_id"])

    remote.call(go, show)


@app.command()
def jobs(
    status: Annotated[
        str | None, typer.Option(help="PENDING, RUNNING, SUCCESS, FAILED or CANCELLED.")
    ] = None,
    plugin: Annotated[str | None, typer.Option(help="Only this plugin's jobs.")] = None,
    tool: Annotated[str | None, typer.Option(help="Only this tool's jobs.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=500, help="How many, newest first.")] = 20,
    server: ServerOption = None,
    api_key: ApiKeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """List jobs on a server, newest first."""
    Remote(server, api_key, as_json).call(
        lambda client: client.jobs(status=status, plugin=plugin, tool=tool, limit=limit),
        show=lambda page: console.print(_job_table(page)),
        to_json=lambda page: {"jobs": [job.raw for job in page]},
    )


app.command("job", help="Show one job: status, progress, attempts, timestamps, error.")(
    _on_job(Job.info, _show_job)
)


@app.command()
def result(
    job_id: JobIdArgument,
    wait: Annotated[bool, typer.Option("--wait", help="Wait for the job to finish.")] = False,
    server: ServerOption = None,
    api_key: ApiKeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Print a finished job's result (a failed job's error, exit 1)."""
    remote = Remote(server, api_key, as_json)
    remote.call(lambda client: remote.finish(client.job(job_id), wait=wait), show=show_result)


app.command("cancel", help="Cancel a pending or running job (exit 2 if it already finished).")(
    _on_job(Job.cancel, lambda info: console.print(f"{info.id} {info.status}"))
)
