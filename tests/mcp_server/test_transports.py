"""MCP through the SDK's own clients against real processes: streamable HTTP at ``/mcp`` of a
served app, and stdio against ``python -m tests.launch_mcp stdio`` (``lensforge mcp``'s entry
with the test plugins). Every call must be a job in the store, visible in ``GET /v1/jobs``."""

from __future__ import annotations

import asyncio
import base64
import itertools
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from mcp import ClientSession, StdioServerParameters, stdio_client, types

from tests.mcp_server.support import ROOT, HttpServer, server_env, tasks, until_terminal
from tests.support import png

pytestmark = pytest.mark.slow
Rest = httpx.AsyncClient | None  # REST beside MCP (None over stdio: no HTTP server)


@pytest.fixture(scope="module")
def http_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HttpServer]:
    server = HttpServer(tmp_path_factory.mktemp("mcp-http"))
    server.start()
    try:
        yield server
    finally:
        assert server.process is not None
        server.process.terminate()
        try:
            server.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()


@asynccontextmanager
async def stdio_session(tmp_path: Path) -> AsyncIterator[ClientSession]:
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "tests.launch_mcp", "stdio"],
        env=server_env(tmp_path),
        cwd=ROOT,
    )
    async with (
        stdio_client(params) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        yield session


def image_argument() -> dict[str, str]:
    return {"data": base64.b64encode(png(48, 36)).decode(), "mimeType": "image/png"}


# -- the scenarios, run over both transports ---------------------------------------------------


async def lists_every_enabled_tool(session: ClientSession, rest: Rest) -> None:
    tools = {tool.name: tool for tool in (await session.list_tools()).tools}
    for name in ("testing_size", "testing_sleep", "single_only", "image_info", "drawing_square"):
        assert name in tools
    if rest is not None:
        manifests = (await rest.get("/v1/plugins")).json()["plugins"]
        expected = {
            f"{m['name']}_{t['name']}"
            for m in manifests
            if m["state"] not in ("UNAVAILABLE", "FAILED")
            for t in m["tools"]
        }
        assert set(tools) == expected
    for tool in tools.values():
        assert tool.description and tool.inputSchema.get("type") == "object"
        assert tool.outputSchema is None or tool.outputSchema.get("type") == "object"
        assert tool.execution is not None and tool.execution.taskSupport == "optional"


async def base64_image_call(session: ClientSession, rest: Rest) -> None:
    result = await session.call_tool("testing_size", {"image": image_argument()})
    assert not result.isError, result
    assert result.structuredContent == {"width": 48, "height": 36}
    job_id = (result.meta or {})["lensforge/job_id"]
    if rest is not None:
        listed = (await rest.get("/v1/jobs", params={"tool": "size"})).json()["jobs"]
        assert job_id in {job["id"] for job in listed}


async def bad_arguments(session: ClientSession, rest: Rest) -> None:
    result = await session.call_tool("testing_echo", {"text": "hi", "times": "many"})
    assert result.isError
    error = (result.structuredContent or {})["error"]
    assert error["code"] == "validation_error"
    assert error["details"]["errors"][0]["field"] == "times"


async def progress_notifications(session: ClientSession, rest: Rest) -> None:
    seen: list[float] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append(progress)

    result = await session.call_tool(
        "testing_sleep", {"seconds": 1.0}, progress_callback=on_progress
    )
    assert result.structuredContent == {"slept": 1.0}
    assert len(seen) >= 3, seen
    assert all(a < b for a, b in itertools.pairwise(seen)), seen


async def task_polled_to_completion(session: ClientSession, rest: Rest) -> None:
    created = await tasks(session).call_tool_as_task("testing_sleep", {"seconds": 0.4})
    assert created.task.status == "working"
    done = await until_terminal(session, created.task.taskId)
    assert done.status == "completed"
    result = await tasks(session).get_task_result(created.task.taskId, types.CallToolResult)
    assert result.structuredContent == {"slept": 0.4}
    if rest is not None:
        assert (await rest.get(f"/v1/jobs/{created.task.taskId}")).json()["status"] == "SUCCESS"


async def task_cancelled_while_running(session: ClientSession, rest: Rest) -> None:
    created = await tasks(session).call_tool_as_task("testing_sleep", {"seconds": 30})
    task_id = created.task.taskId
    deadline = time.monotonic() + 10
    while (await tasks(session).get_task(task_id)).statusMessage != "sleeping":
        assert time.monotonic() < deadline, "the task never started"
        await asyncio.sleep(0.05)
    cancelled = await tasks(session).cancel_task(task_id)
    assert cancelled.status == "cancelled"
    assert (await tasks(session).get_task(task_id)).status == "cancelled"
    if rest is not None:
        assert (await rest.get(f"/v1/jobs/{task_id}")).json()["status"] == "CANCELLED"


Scenario = Callable[[ClientSession, Rest], Awaitable[None]]
SCENARIOS: list[Scenario] = [
    lists_every_enabled_tool,
    base64_image_call,
    bad_arguments,
    progress_notifications,
    task_polled_to_completion,
    task_cancelled_while_running,
]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.__name__ for s in SCENARIOS])
def test_over_streamable_http(http_server: HttpServer, scenario: Scenario) -> None:
    async def go() -> None:
        async with (
            http_server.session() as session,
            httpx.AsyncClient(base_url=http_server.url, timeout=10) as rest,
        ):
            await scenario(session, rest)

    asyncio.run(go())


def test_over_stdio(tmp_path: Path) -> None:
    """One ``lensforge mcp`` process, every scenario in turn (each costs a process start)."""

    async def go() -> None:
        async with stdio_session(tmp_path) as session:
            for scenario in SCENARIOS:
                await scenario(session, None)

    asyncio.run(go())
    # the stdio server wrote to the same store: every call is a job there too
    from lensforge.store import JobStore

    store = JobStore(f"sqlite:///{tmp_path / 'lensforge.db'}")
    try:
        jobs = store.list_jobs(limit=100)
        assert {job.owner for job in jobs} == {"mcp"}
        assert {job.tool for job in jobs} >= {"size", "sleep"}
    finally:
        store.close()


def test_a_task_survives_a_server_restart(tmp_path: Path) -> None:
    first = HttpServer(tmp_path)
    second = HttpServer(tmp_path)
    try:
        first.start()

        async def start_task() -> str:
            async with first.session() as session:
                created = await tasks(session).call_tool_as_task("testing_sleep", {"seconds": 2})
                return created.task.taskId

        task_id = asyncio.run(start_task())
        first.kill()  # no goodbye: the job is RUNNING in the store, its server gone
        second.start()  # recovers the dead server's job and runs it again

        async def follow() -> tuple[str, types.CallToolResult]:
            async with second.session() as session:
                seen = (await tasks(session).get_task(task_id)).status
                done = await until_terminal(session, task_id)
                assert done.status == "completed"
                result = await tasks(session).get_task_result(task_id, types.CallToolResult)
                return seen, result

        seen, result = asyncio.run(follow())
        assert seen in ("working", "completed")
        assert result.structuredContent == {"slept": 2}
    finally:
        first.kill()
        second.kill()


def test_a_post_streams_only_when_progress_is_asked_for(http_server: HttpServer) -> None:
    """Plain JSON answers unless the request carries a progress token (then SSE)."""
    headers = {"Accept": "application/json, text/event-stream"}
    with httpx.Client(base_url=http_server.url, headers=headers, timeout=10) as http:
        opened = http.post(
            "/mcp",
            json={
                "jsonrpc": "2.0",
                "id": 1,
                "method": "initialize",
                "params": {
                    "protocolVersion": types.LATEST_PROTOCOL_VERSION,
                    "capabilities": {},
                    "clientInfo": {"name": "raw", "version": "0"},
                },
            },
        )
        assert opened.status_code == 200
        http.headers["mcp-session-id"] = opened.headers["mcp-session-id"]
        http.headers["mcp-protocol-version"] = types.LATEST_PROTOCOL_VERSION
        http.post("/mcp", json={"jsonrpc": "2.0", "method": "notifications/initialized"})
        call = {"jsonrpc": "2.0", "id": 2, "method": "tools/call"}
        plain = http.post("/mcp", json={**call, "params": {"name": "testing_noop"}})
        assert plain.headers["content-type"].startswith("application/json")
        assert plain.json()["result"]["structuredContent"] == {"ok": True}
        streamed = http.post(
            "/mcp",
            json={
                **call,
                "id": 3,
                "params": {"name": "testing_noop", "_meta": {"progressToken": "p1"}},
            },
        )
        assert streamed.headers["content-type"].startswith("text/event-stream")
        assert '"structuredContent":{"ok":true}' in streamed.text
        http.delete("/mcp")
