"""A real server in this process (uvicorn on a free loopback port, auth on, an admin and a
tenant key), shared by the contract tests: the generated client and the docs in a browser."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import uvicorn
from fastapi import FastAPI

from lensforge.api import create_app
from lensforge.settings import Settings
from tests.conftest import TEST_PLUGINS
from tests.support import free_port


@dataclass
class Live:
    url: str
    app: FastAPI
    key: str  # analyze and read


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    root: Path = tmp_path_factory.mktemp("contract")
    settings = Settings(
        database_url=f"sqlite:///{root / 'lensforge.db'}",
        data_dir=root / "data",
        executor="thread",
        workers=2,
        poll_interval_s=0.05,
    )
    app = create_app(settings, extra_plugins=TEST_PLUGINS)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="critical", ws="none")
    )
    thread = threading.Thread(target=server.run, name="contract-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline and thread.is_alive():
        time.sleep(0.05)
    assert server.started, "the server did not start"
    try:
        _, secret = app.state.services.keys.create("alice", ("analyze", "read"))
        yield Live(f"http://127.0.0.1:{port}", app, secret)
    finally:
        server.should_exit = True
        thread.join(timeout=30)
