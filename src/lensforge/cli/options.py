"""The options several commands share (each with its ``LENSFORGE_*`` environment twin), and
reading them: ``--input key=value`` pairs and the settings tree."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from lensforge.cli.output import EXIT_USAGE, err_console
from lensforge.errors import ValidationError
from lensforge.settings import Settings

# -- the local store (serve, run, plugins, mcp, keys) ---------------------------------------------
DatabaseUrlOption = Annotated[
    str | None,
    typer.Option(envvar="LENSFORGE_DATABASE_URL", help="SQLAlchemy URL of the store."),
]
DataDirOption = Annotated[
    Path | None, typer.Option(envvar="LENSFORGE_DATA_DIR", help="Blob store directory.")
]
WorkersOption = Annotated[
    int | None, typer.Option(envvar="LENSFORGE_WORKERS", help="Worker processes (jobs at once).")
]
LogLevelOption = Annotated[str | None, typer.Option(envvar="LENSFORGE_LOG_LEVEL")]

# -- a server (submit, jobs, job, result, cancel, analyze) ----------------------------------------
ServerOption = Annotated[
    str | None,
    typer.Option(
        "--server", envvar="LENSFORGE_SERVER", help="Server URL (default http://127.0.0.1:8000)."
    ),
]
ApiKeyOption = Annotated[
    str | None,
    typer.Option("--api-key", envvar="LENSFORGE_API_KEY", help="API key (sent as Bearer)."),
]

# -- what to run and how to answer -----------------------------------------------------------------
TargetArgument = Annotated[str, typer.Argument(help="PLUGIN.TOOL (or PLUGIN), e.g. image.info")]
ImageOption = Annotated[Path | None, typer.Option(help="Image file for the tool's image input.")]
VideoOption = Annotated[
    Path | None,
    typer.Option(help="Video file for the tool's video input (streamed to the server)."),
]
InputOption = Annotated[
    list[str] | None,
    typer.Option("--input", "-i", help="Another input, key=value (JSON value)."),
]
JsonOption = Annotated[
    bool, typer.Option("--json", help="Print JSON only: the result, or the error envelope.")
]
JobIdArgument = Annotated[str, typer.Argument(help="The job id.")]


def parse_inputs(pairs: list[str] | None) -> dict[str, Any]:
    """``--input`` pairs as tool inputs: each value JSON if it parses, else a bare string."""
    inputs: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValidationError(f"--input expects key=value, got {pair!r}.")
        try:
            inputs[key] = json.loads(value)
        except json.JSONDecodeError:
            inputs[key] = value  # a bare string
    return inputs


def load_settings(**overrides: Any) -> Settings:
    """The settings tree, with the options given on the command line (None: not given)."""
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except Exception as exc:
        err_console.print(f"[red]Invalid settings:[/red] {exc}")
        raise typer.Exit(EXIT_USAGE) from None
