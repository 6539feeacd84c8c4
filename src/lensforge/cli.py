"""The ``lensforge`` command line. Every option has a ``LENSFORGE_*`` environment twin."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from lensforge import cli_remote, malloc
from lensforge.cli_keys import keys_app
from lensforge.errors import LensForgeError, ValidationError, from_envelope
from lensforge.settings import Settings

app = typer.Typer(
    name="lensforge",
    help="Run vision-analysis plugins as governed, durable jobs.",
    no_args_is_help=True,
    add_completion=False,
)
console = Console()
err_console = Console(stderr=True)

# Options shared by several commands (each with its LENSFORGE_* twin).
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

EXIT_JOB_FAILED = 1
EXIT_USAGE = 2
EXIT_CONNECTION = 3


def _settings(**overrides: Any) -> Settings:
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except Exception as exc:
        err_console.print(f"[red]Invalid settings:[/red] {exc}")
        raise typer.Exit(EXIT_USAGE) from None


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(envvar="LENSFORGE_HOST", help="Bind address.")] = None,
    port: Annotated[int | None, typer.Option(envvar="LENSFORGE_PORT", help="Bind port.")] = None,
    database_url: DatabaseUrlOption = None,
    data_dir: DataDirOption = None,
    workers: WorkersOption = None,
    log_level: LogLevelOption = None,
    insecure_no_auth: Annotated[
        bool,
        typer.Option(
            "--insecure-no-auth",
            envvar="LENSFORGE_INSECURE_NO_AUTH",
            help="Allow a non-loopback bind with no API key.",
        ),
    ] = False,
) -> None:
    """Start the HTTP server (REST API, docs at /docs)."""
    import logging

    import uvicorn

    from lensforge.api import create_app

    settings = _settings(
        host=host,
        port=port,
        database_url=database_url,
        data_dir=data_dir,
        workers=workers,
        log_level=log_level,
    )
    _check_bind(settings, insecure_no_auth)
    malloc.keep_freed_memory(*malloc.API)  # request bodies: see lensforge/malloc.py
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    console.print(f"LensForge on http://{settings.host}:{settings.port}  (docs: /docs)")
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        access_log=False,
    )


def _parse_inputs(pairs: list[str]) -> dict[str, Any]:
    inputs: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            err_console.print(f"[red]--input expects key=value, got {pair!r}[/red]")
            raise typer.Exit(EXIT_USAGE)
        try:
            inputs[key] = json.loads(value)
        except json.JSONDecodeError:
            inputs[key] = value  # a bare string
    return inputs


@app.command()
def run(
    target: Annotated[str, typer.Argument(help="PLUGIN or PLUGIN.TOOL, e.g. image.info")],
    image: Annotated[
        Path | None, typer.Option(help="Image file for the tool's image input.")
    ] = None,
    input: Annotated[
        list[str] | None,
        typer.Option("--input", "-i", help="Another input, key=value (JSON value)."),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the JSON result or error only.")
    ] = False,
    database_url: DatabaseUrlOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Run one tool here and now (no server), through the same execution path."""
    from lensforge.execution.analysis import AnalysisRequest
    from lensforge.wiring import build_services

    settings = _settings(database_url=database_url, data_dir=data_dir)
    plugin, _, tool = target.partition(".")
    uploads: dict[str, bytes] = {}
    inputs = _parse_inputs(input or [])

    async def go() -> dict[str, Any]:
        services = build_services(settings, executor="inline")
        await services.start(dispatch=True)
        try:
            spec = services.analysis.resolve(plugin, tool or None)
            if image is not None:
                if not spec.media_fields:
                    raise LensForgeError(f"{spec.qualified_name} takes no image.")
                uploads[spec.media_fields[0]] = image.read_bytes()
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

    try:
        if image is not None and not image.is_file():
            raise ValidationError(f"No such file: {image}")
        answer = asyncio.run(go())
    except LensForgeError as exc:
        envelope = exc.envelope()
        if as_json:
            print(json.dumps(envelope))
        else:
            err_console.print(f"[red]{exc.code}[/red]: {exc.message}")
        raise typer.Exit(
            EXIT_USAGE if exc.status < 500 and exc.code != "plugin_error" else EXIT_JOB_FAILED
        ) from None
    if as_json:
        print(json.dumps(answer))
    else:
        console.print_json(json.dumps(answer["result"]))


@app.command()
def plugins(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List installed plugins, their state and tools (and why a plugin is unavailable)."""
    from lensforge.wiring import build_registry

    registry = build_registry(_settings())
    registry.initialize()  # run each setup() here, as a worker would, to report the real state
    manifests = [registry.manifest(name) for name in registry.names()]
    if as_json:
        print(json.dumps({"plugins": manifests, "load_errors": registry.load_errors}))
        return
    table = Table("plugin", "version", "state", "tools", "reason")
    for m in manifests:
        state = m["state"]
        table.add_row(
            m["name"],
            m["version"],
            state,
            ", ".join(t["name"] for t in m["tools"]),
            m["reason"] or "",
        )
    for name, reason in registry.load_errors.items():
        table.add_row(name, "", "FAILED", "", reason)
    console.print(table)


def _check_bind(settings: Settings, insecure: bool) -> None:
    """Refuse to expose an unauthenticated server beyond this machine."""
    import ipaddress

    try:
        loopback = settings.host == "localhost" or ipaddress.ip_address(settings.host).is_loopback
    except ValueError:
        loopback = False
    if loopback:
        return
    from lensforge.security.keys import KeyStore
    from lensforge.store import JobStore

    store = JobStore(settings.database_url)
    try:
        store.migrate()
        has_keys = any(key.revoked_at is None for key in KeyStore(store.engine).list())
    finally:
        store.close()
    if has_keys:
        return
    if insecure:
        err_console.print(
            "[bold red]WARNING: serving on a non-loopback address with NO authentication "
            "(--insecure-no-auth). Anyone who can reach this port can run jobs.[/bold red]"
        )
        return
    err_console.print(
        f"[red]Refusing to bind {settings.host} with no API key: anyone could use it.[/red]\n"
        "Create a key first:  lensforge keys create --name me --scope analyze,read\n"
        "(or pass --insecure-no-auth to run open anyway)."
    )
    raise typer.Exit(EXIT_USAGE)


@app.command()
def mcp(
    database_url: DatabaseUrlOption = None,
    data_dir: DataDirOption = None,
    workers: WorkersOption = None,
    log_level: LogLevelOption = None,
) -> None:
    """Serve MCP on stdin/stdout: an embedded LensForge (same settings, store and path)."""
    import logging

    from lensforge.api.mcp import run_stdio

    settings = _settings(
        database_url=database_url, data_dir=data_dir, workers=workers, log_level=log_level
    )
    # stdout carries the protocol: logs go to stderr, quieter than `serve` unless asked.
    logging.basicConfig(
        level=(log_level or "warning").upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    run_stdio(settings)


app.add_typer(keys_app, name="keys")
cli_remote.register(app)  # submit, jobs, job, result, cancel, analyze: against a server


def main() -> None:
    app()


if __name__ == "__main__":
    main()
