"""Helpers for the MCP tests: SDK 2.x clients over real services, and a tasks-extension client."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Literal, TypeVar

import httpx2
import mcp_types as types
from mcp import Client
from mcp.client.extension import ClaimContext, ClientExtension, ResultClaim
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client
from pydantic import TypeAdapter

from lensforge.api.mcp import LensForgeMCP
from lensforge.api.mcp.results import ERROR_META
from lensforge.api.mcp.tasks import TASKS, CancelTask, GetTask, TaskParams
from lensforge.settings import Settings
from lensforge.wiring import Services, build_services
from tests.conftest import TEST_PLUGINS
from tests.mcp_server.plugins import Drawing
from tests.support import free_port, wait_until_serving

T = TypeVar("T")
MODERN = "2026-07-28"
_ANY = TypeAdapter(dict[str, Any])


class TaskHandle(types.Result):
    """A ``CreateTaskResult`` as the client parses it (``resultType: "task"``)."""

    result_type: Literal["task"]
    task_id: str
    status: str
    status_message: str | None = None
    created_at: str
    last_updated_at: str
    ttl_ms: int | None = None
    poll_interval_ms: int | None = None


async def get_task(session: ClientSession, task_id: str) -> dict[str, Any]:
    return await session.send_request(GetTask(params=TaskParams(task_id=task_id)), _ANY)


async def cancel_task(session: ClientSession, task_id: str) -> dict[str, Any]:
    return await session.send_request(CancelTask(params=TaskParams(task_id=task_id)), _ANY)


async def until_terminal(
    session: ClientSession, task_id: str, limit_s: float = 20
) -> dict[str, Any]:
    """Poll tasks/get until the task is terminal (bounded in time)."""
    deadline = time.monotonic() + limit_s
    while True:
        state = await get_task(session, task_id)
        if state["status"] in ("completed", "failed", "cancelled"):
            return state
        assert time.monotonic() < deadline, f"task {task_id} still {state['status']}"
        await asyncio.sleep(state.get("pollIntervalMs", 250) / 1000 / 5)


class Tasks(ClientExtension):
    """The client side of ``io.modelcontextprotocol/tasks``: a task is polled to its result."""

    identifier = TASKS

    def claims(self) -> list[ResultClaim[Any]]:
        return [ResultClaim(result_type="task", model=TaskHandle, resolve=self._resolve)]

    async def _resolve(self, handle: TaskHandle, ctx: ClaimContext) -> types.CallToolResult:
        state = await until_terminal(ctx.session, handle.task_id)
        assert state["status"] == "completed", state
        return types.CallToolResult.model_validate(state["result"])


async def start_task(session: ClientSession, name: str, arguments: dict[str, Any]) -> TaskHandle:
    """Call a tool expecting a task handle (the server decides; long calls become tasks)."""
    handle = await session.call_tool(name, arguments, allow_claimed=True)
    assert isinstance(handle, TaskHandle), handle
    return handle


def error_of(result: types.CallToolResult) -> dict[str, Any]:
    """The error envelope of an ``isError`` result (in ``_meta``, never structuredContent)."""
    assert result.is_error and result.structured_content is None, result
    error: dict[str, Any] = (result.meta or {})[ERROR_META]
    return error


@asynccontextmanager
async def in_memory(
    settings: Settings, *, legacy: bool = False, tasks: bool = True
) -> AsyncIterator[tuple[Client, Services]]:
    """The MCP handlers over real services (thread executor) with an in-process SDK client:
    2026-07-28 by default, the ``initialize`` handshake with ``legacy``."""
    services = build_services(settings, extra_plugins=[*TEST_PLUGINS, Drawing], executor="thread")
    await services.start()
    try:
        mcp = LensForgeMCP(services)
        client = Client(
            mcp.server,
            mode="legacy" if legacy else MODERN,
            extensions=[Tasks()] if tasks else None,
        )
        async with client:
            yield client, services
    finally:
        await services.stop()


def run(
    settings: Settings,
    body: Callable[[Client, Services], Awaitable[T]],
    *,
    legacy: bool = False,
) -> T:
    async def go() -> T:
        async with in_memory(settings, legacy=legacy) as (client, services):
            return await body(client, services)

    return asyncio.run(go())


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

    def __init__(self, tmp_path: Path, stderr: Path | None = None) -> None:
        self.tmp_path = tmp_path
        self.stderr = stderr  # where the server's stderr goes (default: the test's)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with contextlib.ExitStack() as stack:
            sink = stack.enter_context(self.stderr.open("a")) if self.stderr else None
            self.process = subprocess.Popen(
                [sys.executable, "-m", "tests.launch_mcp", "http"],
                cwd=ROOT,
                env=server_env(self.tmp_path, self.port),
                stderr=sink,
            )
        wait_until_serving(self.process, self.url)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)

    @asynccontextmanager
    async def client(
        self, *, legacy: bool = False, key: str | None = None
    ) -> AsyncIterator[Client]:
        """An SDK client of ``/mcp``: stateless 2026-07-28, or a legacy session."""
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        async with httpx2.AsyncClient(headers=headers, timeout=30) as http:
            transport = streamable_http_client(f"{self.url}/mcp", http_client=http)
            mode = "legacy" if legacy else MODERN
            async with Client(transport, mode=mode, extensions=[Tasks()]) as client:
                yield client
