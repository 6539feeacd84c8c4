"""``lensforge keys``: create, list and revoke API keys (straight in the store's database)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from lensforge.cli.options import DatabaseUrlOption, JsonOption
from lensforge.cli.output import EXIT_USAGE, console, print_json
from lensforge.errors import LensForgeError, utc_timestamp
from lensforge.security.audit import AuditLog
from lensforge.security.keys import KeyStore, parse_scopes
from lensforge.settings import Settings
from lensforge.store import JobStore

app = typer.Typer(help="Manage API keys (auth is on as soon as one exists).")


def _open(database_url: str | None) -> tuple[JobStore, KeyStore, AuditLog]:
    store = JobStore(database_url or Settings().database_url)
    store.migrate()
    return store, KeyStore(store.engine), AuditLog(store.engine)


@app.command("create")
def create(
    name: Annotated[str, typer.Option(help="Who or what the key is for.")],
    scope: Annotated[str, typer.Option(help="Comma-separated: analyze, read, admin.")] = (
        "analyze,read"
    ),
    admin: Annotated[bool, typer.Option("--admin", help="Add the admin scope.")] = False,
    as_json: JsonOption = False,
    database_url: DatabaseUrlOption = None,
) -> None:
    """Create a key. Its secret is printed once and never stored."""
    try:
        scopes = parse_scopes(scope + (",admin" if admin else ""))
    except LensForgeError as exc:
        console.print(f"[red]{exc.message}[/red]")
        raise typer.Exit(EXIT_USAGE) from None
    store, keys, audit = _open(database_url)
    try:
        info, secret = keys.create(name, scopes)
        audit.record("key_created", None, new_key=info.id, scopes=list(scopes), via="cli")
    finally:
        store.close()
    if as_json:
        print_json({**info.public(), "key": secret})
        return
    console.print(f"Created key [bold]{info.id}[/bold] ({name}) with scopes {', '.join(scopes)}.")
    console.print("Its secret is shown only now; send it as 'Authorization: Bearer <key>':")
    print(secret)


@app.command("list")
def list_keys(as_json: JsonOption = False, database_url: DatabaseUrlOption = None) -> None:
    """List keys (ids, names, scopes; never secrets)."""
    store, keys, _ = _open(database_url)
    try:
        infos = keys.list()
    finally:
        store.close()
    if as_json:
        print_json({"keys": [info.public() for info in infos]})
        return
    table = Table("id", "name", "scopes", "created", "revoked")
    for info in infos:
        revoked = utc_timestamp(info.revoked_at) if info.revoked_at else ""
        table.add_row(
            info.id, info.name, ",".join(info.scopes), utc_timestamp(info.created_at), revoked
        )
    console.print(table)


@app.command("revoke")
def revoke(key_id: str, database_url: DatabaseUrlOption = None) -> None:
    """Revoke a key; requests with it are refused within seconds."""
    store, keys, audit = _open(database_url)
    try:
        if not keys.revoke(key_id):
            console.print(f"[red]No active key '{key_id}'.[/red]")
            raise typer.Exit(EXIT_USAGE)
        audit.record("key_revoked", None, revoked_key=key_id, via="cli")
    finally:
        store.close()
    console.print(f"Revoked {key_id}.")
