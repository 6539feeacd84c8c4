"""``lensforge models add|list|remove``: manage the registered detection models.

A ``typer`` app of its own, mounted under the main CLI as ``models``. Errors print the
LensForge error envelope with ``--json`` (exit code 2 for a request the user can fix).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from lensforge.errors import LensForgeError
from lensforge.models.registry import ModelFormat, ModelInfo, ModelRegistry, read_labels
from lensforge.settings import Settings

EXIT_USAGE = 2

app = typer.Typer(
    name="models",
    help="Detection models for objects.detect: add your own ONNX models, list, remove.",
    no_args_is_help=True,
)
DataDirOption = Annotated[
    Path | None,
    typer.Option(envvar="LENSFORGE_DATA_DIR", help="Data directory (models live in models/)."),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON only.")]


def _registry(data_dir: Path | None) -> ModelRegistry:
    return ModelRegistry(data_dir if data_dir is not None else Settings().data_dir)


def _fail(exc: LensForgeError, as_json: bool) -> typer.Exit:
    if as_json:
        print(json.dumps(exc.envelope()))
    else:
        typer.echo(f"Error: {exc.message}", err=True)
    return typer.Exit(EXIT_USAGE if exc.status < 500 else 1)


def _row(info: ModelInfo) -> str:
    licence = info.license or "licence not declared"
    return (
        f"{info.name}\t{info.format}\t{info.input_width}x{info.input_height}\t"
        f"{len(info.labels)} labels\t{licence}\tsha256:{info.sha256[:12]}"
    )


@app.command()
def add(
    name: Annotated[str, typer.Argument(help="Name to select it by: {'model': NAME}.")],
    path: Annotated[Path, typer.Argument(help="The .onnx file.")],
    model_format: Annotated[
        ModelFormat, typer.Option("--format", help="Output layout: yolo or rtdetr.")
    ],
    labels: Annotated[Path, typer.Option(help="Text file of class names, one per line.")],
    license: Annotated[
        str | None, typer.Option(help="The weights' licence (e.g. AGPL-3.0, Apache-2.0).")
    ] = None,
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Check an ONNX model and copy it into the data directory under its SHA-256."""
    try:
        info = _registry(data_dir).add(name, path, model_format, read_labels(labels), license)
    except LensForgeError as exc:
        raise _fail(exc, as_json) from None
    if as_json:
        print(info.model_dump_json())
    else:
        typer.echo(f"Added {_row(info)}")


@app.command("list")
def list_models(data_dir: DataDirOption = None, as_json: JsonOption = False) -> None:
    """List the registered models."""
    models = _registry(data_dir).models()
    if as_json:
        payload: dict[str, Any] = {"models": [m.model_dump() for m in models]}
        print(json.dumps(payload))
    elif not models:
        typer.echo("No models registered; add one with: lensforge models add NAME PATH ...")
    else:
        for info in models:
            typer.echo(_row(info))


@app.command()
def remove(
    name: Annotated[str, typer.Argument(help="The model to remove.")],
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Forget a model (its file is deleted unless another name uses it)."""
    try:
        info = _registry(data_dir).remove(name)
    except LensForgeError as exc:
        raise _fail(exc, as_json) from None
    if as_json:
        print(json.dumps({"name": info.name, "removed": True}))
    else:
        typer.echo(f"Removed {info.name}")
