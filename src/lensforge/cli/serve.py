"""``lensforge serve``: the HTTP server (REST API, MCP, docs at /docs), with a safe bind.

A non-loopback bind with no API key is refused (anyone could run jobs) unless
``--insecure-no-auth`` says so on purpose.
"""

from __future__ import annotations

import ipaddress
from typing import Annotated

import typer

from lensforge import malloc
from lensforge.cli.options import (
    DatabaseUrlOption,
    DataDirOption,
    LogLevelOption,
    WorkersOption,
    load_settings,
)
from lensforge.cli.output import EXIT_USAGE, console, err_console
from lensforge.settings import Settings

app = typer.Typer()


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(envvar="LENSFORGE_HOST", help="Bind address.")] = None,
    port: Annotated[int | None, typer.Option(envvar="LENSFORGE_PORT", help="Bind port.")] = None,
    database_url: DatabaseUrlOption = None,
    data_dir: DataDirOption = None,
    workers: WorkersOption = None,
    log_level: LogLevelOption = None,
    no_execute: Annotated[
        bool,
        typer.Option(
            "--no-execute",
            help="API only: accept jobs, run none (workers elsewhere run them). "
            "Env: LENSFORGE_EXECUTE=false.",
        ),
    ] = False,
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
    from lensforge.api import create_app
    from lensforge.api.server import run_server

    settings = load_settings(
        host=host,
        port=port,
        database_url=database_url,
        data_dir=data_dir,
        workers=workers,
        log_level=log_level,
        execute=False if no_execute else None,
    )
    check_bind(settings, insecure_no_auth)
    malloc.keep_freed_memory(*malloc.API)  # request bodies: see lensforge/malloc.py
    console.print(f"LensForge on http://{settings.host}:{settings.port}  (docs: /docs)")
    run_server(create_app(settings), settings)


def check_bind(settings: Settings, insecure: bool) -> None:
    """Refuse to expose an unauthenticated server beyond this machine."""
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
