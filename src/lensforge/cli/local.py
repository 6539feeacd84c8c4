"""``lensforge run | plugins | mcp``: LensForge embedded in the command, no server needed.

``run`` takes the same execution path as the server (inline executor, same store); ``mcp``
serves MCP on stdin/stdout from an embedded LensForge.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from lensforge.cli.options import (
    DatabaseUrlOption,
    DataDirOption,
    ImageOption,
    InputOption,
    JsonOption,
    LogLevelOption,
    TargetArgument,
    WorkersOption,
    load_settings,
    parse_inputs,
)
from lensforge.cli.output import console, emit, fail, print_json, show_result
from lensforge.errors import LensForgeError, ValidationError, from_envelope
from lensforge.settings import Settings

app = typer.Typer()


@app.command()
def run(
    target: TargetArgument,
    image: ImageOption = None,
    input: InputOption = None,
    as_json: JsonOption = False,
    database_url: DatabaseUrlOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Run one tool here and now (no server), through the same execution path."""
    settings = load_settings(database_url=database_url, data_dir=data_dir)
    try:
        inputs = parse_inputs(input)
        answer = asyncio.run(_run(settings, target, _read(image), inputs))
    except LensForgeError as exc:
        fail(exc, as_json)
    emit(answer, as_json, show_result)


def _read(image: Path | None) -> bytes | None:
    if image is None:
        return None
    if not image.is_file():
        raise ValidationError(f"No such file: {image}")
    try:
        return image.read_bytes()
    except OSError as exc:
        raise ValidationError(f"Cannot read {image}: {exc.strerror or exc}.") from exc


async def _run(
    settings: Settings, target: str, image: bytes | None, inputs: dict[str, Any]
) -> dict[str, Any]:
    from lensforge.execution.analysis import AnalysisRequest
    from lensforge.wiring import build_services

    plugin, _, tool = target.partition(".")
    services = build_services(settings, executor="inline")
    await services.start(dispatch=True)
    try:
        spec = services.analysis.resolve(plugin, tool or None)
        uploads: dict[str, bytes] = {}
        if image is not None:
            if not spec.media_fields:
                raise LensForgeError(f"{spec.qualified_name} takes no image.")
            uploads[spec.media_fields[0]] = image
        job = await services.analysis.analyze(
            AnalysisRequest(
                plugin=plugin, tool=tool or None, inputs=inputs, uploads=uploads, owner="cli"
            )
        )
        if job.error is not None:
            raise from_envelope(job.error)
        return {"job_id": job.id, "status": job.status.value, "result": job.result}
    finally:
        await services.stop()


@app.command()
def plugins(as_json: JsonOption = False) -> None:
    """List installed plugins, their state and tools (and why a plugin is unavailable)."""
    from lensforge.wiring import build_registry

    registry = build_registry(load_settings())
    registry.initialize()  # run each setup() here, as a worker would, to report the real state
    manifests = [registry.manifest(name) for name in registry.names()]
    if as_json:
        print_json({"plugins": manifests, "load_errors": registry.load_errors})
        return
    table = Table("plugin", "version", "state", "tools", "reason")
    for m in manifests:
        tools = ", ".join(t["name"] for t in m["tools"])
        table.add_row(m["name"], m["version"], m["state"], tools, m["reason"] or "")
    for name, reason in registry.load_errors.items():
        table.add_row(name, "", "FAILED", "", reason)
    console.print(table)


@app.command()
def mcp(
    database_url: DatabaseUrlOption = None,
    data_dir: DataDirOption = None,
    workers: WorkersOption = None,
    log_level: LogLevelOption = None,
) -> None:
    """Serve MCP on stdin/stdout: an embedded LensForge (same settings, store and path)."""
    from lensforge.api.mcp import run_stdio

    settings = load_settings(
        database_url=database_url, data_dir=data_dir, workers=workers, log_level=log_level
    )
    # stdout carries the protocol: logs go to stderr, quieter than `serve` unless asked.
    logging.basicConfig(
        level=(log_level or "warning").upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    run_stdio(settings)
