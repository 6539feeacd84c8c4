"""``lensforge worker``: an execution-only node (no HTTP).

It claims and runs jobs from the shared store with the configured executor, like the
dispatcher inside ``lensforge serve``, for hosts that only hold models and GPUs; API-only
servers (``lensforge serve --no-execute``) accept the jobs. On SIGTERM or SIGINT it stops
claiming, lets running jobs finish within the shutdown grace period and hands the rest back.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from typing import Annotated

import typer

from lensforge.cli.options import (
    DatabaseUrlOption,
    DataDirOption,
    LogLevelOption,
    WorkersOption,
    load_settings,
)
from lensforge.cli.output import console
from lensforge.logs import configure_logging
from lensforge.settings import Settings

app = typer.Typer()
log = logging.getLogger(__name__)

ExecutorOption = Annotated[
    str | None,
    typer.Option(envvar="LENSFORGE_EXECUTOR", help="local (worker processes), thread or ray."),
]


@app.command()
def worker(
    database_url: DatabaseUrlOption = None,
    data_dir: DataDirOption = None,
    workers: WorkersOption = None,
    executor: ExecutorOption = None,
    log_level: LogLevelOption = None,
) -> None:
    """Run jobs from the shared store, with no HTTP server (an execution-only node)."""
    settings = load_settings(
        database_url=database_url,
        data_dir=data_dir,
        workers=workers,
        executor=executor,
        log_level=log_level,
    )
    configure_logging(settings.log_level, settings.log_format)
    console.print(
        f"LensForge worker: {settings.workers} {settings.executor} worker(s) on the store "
        "(Ctrl-C to stop)"
    )
    asyncio.run(run_worker(settings))


async def run_worker(settings: Settings, stop: asyncio.Event | None = None) -> None:
    """Claim and run jobs until ``stop`` is set (or SIGTERM / SIGINT arrives)."""
    from lensforge.wiring import build_services

    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    services = build_services(settings)
    await services.start(dispatch=True)
    log.info("worker ready", extra={"event": "worker_ready"})
    try:
        await stop.wait()
    finally:
        log.info("worker stopping", extra={"event": "worker_stopping"})
        await services.stop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
