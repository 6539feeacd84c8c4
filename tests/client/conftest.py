"""A real LensForge server (``python -m tests.launch_mcp http``) for the client and CLI tests."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Iterator

import pytest

from tests.mcp_server.support import HttpServer


@pytest.fixture(scope="package")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HttpServer]:
    running = HttpServer(tmp_path_factory.mktemp("client-server"))
    try:
        running.start()
        yield running
    finally:
        if running.process is not None and running.process.poll() is None:
            running.process.send_signal(signal.SIGTERM)  # a graceful stop, as an operator's
            try:
                running.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                running.kill()
