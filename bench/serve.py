"""Server launcher for the overhead benchmark (started by ``overhead.py``, not by hand).

    python bench/serve.py floor     --fd FD
    python bench/serve.py lensforge --fd FD --db-dir DIR

The benchmark binds the listening socket itself (127.0.0.1, port 0) and passes it down as
``--fd``, so there is no race for a free port. It runs this file with ``python -P`` and puts
``noop_plugin.py`` on PYTHONPATH through a private directory, so that no other file in
bench/ can shadow an installed package. Both servers run under the same uvicorn
options as ``lensforge serve``: uvloop, httptools, one process, access log off.
"""

from __future__ import annotations

import argparse
import socket
from pathlib import Path
from typing import Any

import uvicorn

# What `lensforge serve` gets: uvicorn's "auto" picks uvloop and httptools, both installed
# by uvicorn[standard]; they are named here so a missing one fails loudly instead of
# silently benchmarking the slower pure-Python fallbacks.
SERVER_OPTIONS: dict[str, Any] = {
    "loop": "uvloop",
    "http": "httptools",
    "access_log": False,
    "log_level": "warning",
    "lifespan": "on",
}


def floor_app() -> Any:
    """The floor: a bare FastAPI endpoint returning a small JSON object."""
    from fastapi import FastAPI

    app = FastAPI()

    @app.get("/ping")
    async def ping() -> dict[str, bool]:
        return {"ok": True}

    return app


def lensforge_app(db_dir: Path) -> Any:
    """LensForge with its built-in plugins plus the no-op ``bench`` plugin, on SQLite."""
    from noop_plugin import Bench  # on PYTHONPATH, put there by overhead.py

    from lensforge.api import create_app
    from lensforge.settings import Settings

    settings = Settings(
        database_url=f"sqlite:///{db_dir / 'lensforge.db'}",
        data_dir=db_dir / "data",
        log_level="warning",
    )
    return create_app(settings, extra_plugins=[Bench])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("app", choices=["floor", "lensforge"])
    parser.add_argument("--fd", type=int, required=True, help="listening socket to serve")
    parser.add_argument("--db-dir", type=Path, help="directory of the SQLite store and blobs")
    args = parser.parse_args()
    if args.app == "lensforge" and args.db_dir is None:
        parser.error("lensforge needs --db-dir")
    app = floor_app() if args.app == "floor" else lensforge_app(args.db_dir)
    sock = socket.socket(fileno=args.fd)
    server = uvicorn.Server(uvicorn.Config(app, **SERVER_OPTIONS))
    server.run(sockets=[sock])


if __name__ == "__main__":
    main()
