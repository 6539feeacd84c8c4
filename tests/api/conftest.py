"""A real server in this process (uvicorn on a free loopback port, auth on, an admin and a
tenant key), shared by the contract tests: the generated client and the docs in a browser."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi import FastAPI

from lensforge.api import create_app
from lensforge.settings import Settings
from tests.conftest import TEST_PLUGINS
from tests.support import free_port, serving_in_thread


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
    with serving_in_thread(app, port, "contract-server"):
        _, secret = app.state.services.keys.create("alice", ("analyze", "read"))
        yield Live(f"http://127.0.0.1:{port}", app, secret)
