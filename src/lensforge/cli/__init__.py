"""The ``lensforge`` command line. Every option has a ``LENSFORGE_*`` environment twin.

One module per group of commands, each with its own Typer app, put together here:

- ``serve``: the HTTP server (:mod:`lensforge.cli.serve`);
- ``worker``: an execution-only node, no HTTP (:mod:`lensforge.cli.worker`);
- ``run``, ``plugins``, ``mcp``: LensForge embedded, no server (:mod:`lensforge.cli.local`);
- ``submit``, ``jobs``, ``job``, ``result``, ``cancel``: a running server
  (:mod:`lensforge.cli.remote`, through the one helper :mod:`lensforge.cli.remote_call`);
- ``analyze``: many images on a server at once (:mod:`lensforge.cli.batch`);
- ``stream``: a video file played through a live frame stream (:mod:`lensforge.cli.stream`);
- ``keys ...``: API keys (:mod:`lensforge.cli.keys`);
- ``models ...``: the ONNX models objects.detect can use (:mod:`lensforge.models.commands`).

Exit codes (:mod:`lensforge.cli.output`): 0 success, 1 a job failed, 2 a usage or input
error, 3 the server could not be reached.
"""

from __future__ import annotations

import typer

from lensforge.cli import batch, keys, local, remote, serve, stream, worker
from lensforge.cli.output import EXIT_CONNECTION, EXIT_JOB_FAILED, EXIT_OK, EXIT_USAGE
from lensforge.models.commands import app as models_app

app = typer.Typer(
    name="lensforge",
    help="Run vision-analysis plugins as governed, durable jobs.",
    no_args_is_help=True,
    add_completion=False,
)

# A group of commands: add_typer(module.app); a sub-command group: add_typer(..., name=...).
app.add_typer(serve.app)
app.add_typer(local.app)
app.add_typer(keys.app, name="keys")
app.add_typer(remote.app)
app.add_typer(batch.app)
app.add_typer(stream.app)
app.add_typer(worker.app)
app.add_typer(models_app, name="models")


def main() -> None:
    """The ``lensforge`` console script."""
    app()


__all__ = ["EXIT_CONNECTION", "EXIT_JOB_FAILED", "EXIT_OK", "EXIT_USAGE", "app", "main"]
