"""Helpers for the MCP tests: an in-memory session over real services, task API access."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TypeVar

import httpx
from mcp import ClientSession, types
from mcp.client.experimental import ExperimentalClientFeatures
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.memory import create_connected_server_and_client_session

from lensforge.api.mcp import LensForgeMCP
from lensforge.settings import Settings
from lensforge.wiring import Services, build_services
from tests.conftest import TEST_PLUGINS
from tests.mcp_server.plugins import Drawing
from tests.support import free_port

T = TypeVar("T")


def tasks(session: ClientSession) -> ExperimentalClientFeatures:
    """The SDK's task API, which it marks deprecated (tasks left the spec after 2025-11-25)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return session.experimental


@asynccontextmanager
async def in_memory(settings: Settings) -> AsyncIterator[tuple[ClientSession, Services]]:
    """The MCP handlers over real services (thread executor), with an in-memory SDK client."""
    services = build_services(settings, extra_plugins=[*TEST_PLUGINS, Drawing], executor="thread")
    await services.start()
    try:
        mcp = LensForgeMCP(services)
        async with create_connected_server_and_client_session(mcp.server) as session:
            yield session, services
    finally:
        await services.stop()


def run(settings: Settings, body: Callable[[ClientSession, Services], Awaitable[T]]) -> T:
    async def go() -> T:
        async with in_memory(settings) as (session, services):
            return await body(session, services)

    return asyncio.run(go())


async def until_terminal(
    session: ClientSession, task_id: str, limit_s: float = 20
) -> types.GetTaskResult:
    """Poll tasks/get until the task is terminal (bounded in time)."""
    deadline = time.monotonic() + limit_s
    while True:
        status = await tasks(session).get_task(task_id)
        if status.status in ("completed", "failed", "cancelled"):
            return status
        assert time.monotonic() < deadline, f"task {task_id} still {status.status}"
        await asyncio.sleep(0.05)


ROOT = Path(__file__).resolve().parents[2]


def server_env(tmp_path: Path, port: int = 0) -> dict[str, str]:
    return {
        **os.environ,
        "LENSFORGE_PORT": str(port),
        "LENSFORGE_DATABASE_URL": f"sqlite:///{tmp_path / 'lensforge.db'}",
        "LENSFORGE_DATA_DIR": str(tmp_path / "data"),
        "LENSFORGE_EXECUTOR": "local",
        "LENSFORGE_WORKERS": "2",
        "LENSFORGE_POLL_INTERVAL_S": "0.05",
        "LENSFORGE_SHUTDOWN_GRACE_S": "0.5",
        "LENSFORGE_CANCEL_GRACE_S": "1",
    }


class HttpServer:
    """``python -m tests.launch_mcp http`` on a free loopback port."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.launch_mcp", "http"],
            cwd=ROOT,
            env=server_env(self.tmp_path, self.port),
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            assert self.process.poll() is None, "server exited during start-up"
            time.sleep(0.05)
        raise AssertionError("server did not become ready")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)

    @asynccontextmanager
    async def session(self) -> AsyncIterator[ClientSession]:
        async with (
            streamable_http_client(f"{self.url}/mcp") as (read, write, _),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            yield session
