"""Server launcher for the scale benchmark (started by ``scale.py``, not by hand).

    python -P bench/scale_serve.py --fd FD

``bench/serve.py``'s LensForge app (the same uvicorn options, the no-op ``bench`` plugin) with
every setting read from LENSFORGE_*: the scale benchmark points it at SQLite or PostgreSQL
and picks the executor (``local`` or ``ray``), which serve.py's SQLite-only app cannot. Like
serve.py it runs under ``python -P`` and finds ``noop_plugin`` and ``serve`` through a
private directory on PYTHONPATH (which Ray's workers inherit too).
"""

from __future__ import annotations

import argparse
import socket

import uvicorn
from noop_plugin import Bench
from serve import SERVER_OPTIONS

from lensforge.api import create_app
from lensforge.settings import Settings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--fd", type=int, required=True, help="listening socket to serve")
    args = parser.parse_args()
    app = create_app(Settings(), extra_plugins=[Bench])
    sock = socket.socket(fileno=args.fd)
    uvicorn.Server(uvicorn.Config(app, **SERVER_OPTIONS)).run(sockets=[sock])


if __name__ == "__main__":
    main()
