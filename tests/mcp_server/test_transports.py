"""MCP through the SDK 2.x client against real processes: streamable HTTP at ``/mcp`` of a
served app (stateless 2026-07-28 and a legacy session), and stdio against
``python -m tests.launch_mcp stdio`` (``lensforge mcp``'s entry with the test plugins). Every
call must be a job in the store, visible in ``GET /v1/jobs``."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from mcp import Client, StdioServerParameters

from tests.mcp_server.support import (
    MODERN,
    ROOT,
    HttpServer,
    Tasks,
    cancel_task,
    error_of,
    get_task,
    server_env,
    start_task,
    until_terminal,
)
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
async def stdio_session(tmp_path: Path, *, legacy: bool = False) -> AsyncIterator[Client]:
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "tests.launch_mcp", "stdio"],
        env=server_env(tmp_path),
        cwd=ROOT,
    )
    mode = "legacy" if legacy else MODERN
    async with Client(params, mode=mode, extensions=[Tasks()]) as client:
        yield client


def image_argument() -> dict[str, str]:
    return {"data": base64.b64encode(png(48, 36)).decode(), "mimeType": "image/png"}


# -- the scenarios, run over both transports ---------------------------------------------------


async def lists_every_enabled_tool(session: Client, rest: Rest) -> None:
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
        assert tool.description and tool.input_schema.get("type") == "object"
        assert tool.output_schema is None or tool.output_schema.get("type") == "object"


async def base64_image_call(session: Client, rest: Rest) -> None:
    result = await session.call_tool("testing_size", {"image": image_argument()})
    assert not result.is_error, result
    assert result.structured_content == {"width": 48, "height": 36}
    job_id = (result.meta or {})["lensforge/job_id"]
    if rest is not None:
        listed = (await rest.get("/v1/jobs", params={"tool": "size"})).json()["jobs"]
        assert job_id in {job["id"] for job in listed}


async def bad_arguments(session: Client, rest: Rest) -> None:
    result = await session.call_tool("testing_echo", {"text": "hi", "times": "many"})
    error = error_of(result)
    assert error["code"] == "validation_error"
    assert error["details"]["errors"][0]["field"] == "times"


async def progress_notifications(session: Client, rest: Rest) -> None:
    seen: list[float] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append(progress)

    result = await session.call_tool(
        "testing_sleep", {"seconds": 1.0}, progress_callback=on_progress
    )
    assert result.structured_content == {"slept": 1.0}
    assert len(seen) >= 3, seen
    assert all(a < b for a, b in itertools.pairwise(seen)), seen


async def task_polled_to_completion(session: Client, rest: Rest) -> None:
    if session.protocol_version != MODERN:
        return  # the tasks extension is defined at 2026-07-28 only
    created = await start_task(session.session, "testing_sleep", {"seconds": 3})
    assert created.status == "working"
    done = await until_terminal(session.session, created.task_id)
    assert done["status"] == "completed"
    assert done["result"]["structuredContent"] == {"slept": 3}
    if rest is not None:
        assert (await rest.get(f"/v1/jobs/{created.task_id}")).json()["status"] == "SUCCESS"


async def task_cancelled_while_running(session: Client, rest: Rest) -> None:
    if session.protocol_version != MODERN:
        return
    created = await start_task(session.session, "testing_sleep", {"seconds": 30})
    task_id = created.task_id
    deadline = time.monotonic() + 10
    while (await get_task(session.session, task_id))["statusMessage"] != "sleeping":
        assert time.monotonic() < deadline, "the task never started"
        await asyncio.sleep(0.05)
    await cancel_task(session.session, task_id)
    assert (await until_terminal(session.session, task_id))["status"] == "cancelled"
    if rest is not None:
        assert (await rest.get(f"/v1/jobs/{task_id}")).json()["status"] == "CANCELLED"


Scenario = Callable[[Client, Rest], Awaitable[None]]
SCENARIOS: list[Scenario] = [
    lists_every_enabled_tool,
    base64_image_call,
    bad_arguments,
    progress_notifications,
    task_polled_to_completion,
    task_cancelled_while_running,
]


@pytest.mark.parametrize("legacy", [False, True], ids=["stateless", "session"])
@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.__name__ for s in SCENARIOS])
def test_over_streamable_http(http_server: HttpServer, scenario: Scenario, legacy: bool) -> None:
    async def go() -> None:
        async with (
            http_server.client(legacy=legacy) as session,
            httpx.AsyncClient(base_url=http_server.url, timeout=10) as rest,
        ):
            assert (session.protocol_version == MODERN) is not legacy
            await scenario(session, rest)

    asyncio.run(go())


@pytest.mark.parametrize("legacy", [False, True], ids=["stateless", "session"])
def test_over_stdio(tmp_path: Path, legacy: bool) -> None:
    """One ``lensforge mcp`` process, every scenario in turn (each costs a process start)."""

    async def go() -> None:
        async with stdio_session(tmp_path, legacy=legacy) as session:
            assert (session.protocol_version == MODERN) is not legacy
            for scenario in SCENARIOS:
                await scenario(session, None)

    asyncio.run(go())
    # the stdio server wrote to the same store: every call is a job there too
    from lensforge.store import JobStore

    store = JobStore(f"sqlite:///{tmp_path / 'lensforge.db'}")
    try:
        jobs = asyncio.run(store.list(limit=100))
        assert {job.owner for job in jobs} == {"mcp"}
        assert {job.tool for job in jobs} >= {"size", "sleep"}
    finally:
        store.close()


def test_a_task_survives_a_server_restart(tmp_path: Path) -> None:
    first = HttpServer(tmp_path)
    second = HttpServer(tmp_path)
    try:
        first.start()

        async def begin() -> str:
            async with first.client() as session:
                created = await start_task(session.session, "testing_sleep", {"seconds": 4})
                return created.task_id

        task_id = asyncio.run(begin())
        first.kill()  # no goodbye: the job is RUNNING in the store, its server gone
        second.start()  # recovers the dead server's job and runs it again

        async def follow() -> tuple[str, dict[str, Any]]:
            async with second.client() as session:
                seen = (await get_task(session.session, task_id))["status"]
                done = await until_terminal(session.session, task_id)
                assert done["status"] == "completed"
                return seen, done["result"]

        seen, result = asyncio.run(follow())
        assert seen in ("working", "completed")
        assert result["structuredContent"] == {"slept": 4}
    finally:
        first.kill()
        second.kill()


def test_a_stateless_post_streams_only_when_progress_is_sent(http_server: HttpServer) -> None:
    """One self-contained POST per request, no session id: plain JSON unless progress flows."""
    headers = {
        "Accept": "application/json, text/event-stream",
        "MCP-Protocol-Version": MODERN,
    }
    meta = {
        "io.modelcontextprotocol/protocolVersion": MODERN,
        "io.modelcontextprotocol/clientCapabilities": {},
    }
    with httpx.Client(base_url=http_server.url, headers=headers, timeout=10) as http:
        call = {"jsonrpc": "2.0", "id": 2, "method": "tools/call"}
        plain = http.post(
            "/mcp",
            json={**call, "params": {"name": "testing_noop", "arguments": {}, "_meta": meta}},
            headers={"Mcp-Method": "tools/call", "Mcp-Name": "testing_noop"},
        )
        assert plain.status_code == 200, plain.text
        assert "mcp-session-id" not in plain.headers
        assert plain.headers["content-type"].startswith("application/json")
        assert plain.json()["result"]["structuredContent"] == {"ok": True}
        streamed = http.post(
            "/mcp",
            json={
                **call,
                "id": 3,
                "params": {
                    "name": "testing_sleep",
                    "arguments": {"seconds": 0.5},
                    "_meta": {**meta, "progressToken": "p1"},
                },
            },
            headers={"Mcp-Method": "tools/call", "Mcp-Name": "testing_sleep"},
        )
        assert streamed.headers["content-type"].startswith("text/event-stream")
        assert '"method":"notifications/progress"' in streamed.text
        assert '"structuredContent":{"slept":0.5}' in streamed.text


@pytest.mark.parametrize("legacy", [False, True], ids=["stateless", "session"])
def test_an_sdk_2_client_connects_over_stdio_without_a_warning(
    tmp_path: Path, legacy: bool
) -> None:
    """Issue 16: ``lensforge mcp`` printed a 94-line validation warning on every 2.x connect."""
    from mcp.client.stdio import stdio_client

    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "tests.launch_mcp", "stdio"],
        env=server_env(tmp_path),
        cwd=ROOT,
    )
    errlog = tmp_path / "stderr.txt"

    async def go() -> None:
        with errlog.open("w") as sink:
            mode = "legacy" if legacy else MODERN
            async with Client(stdio_client(params, errlog=sink), mode=mode) as client:
                await client.list_tools()
                assert (await client.call_tool("testing_noop", {})).structured_content == {
                    "ok": True
                }

    asyncio.run(go())
    assert errlog.read_text() == ""


def test_client_disconnects_log_no_error(tmp_path: Path) -> None:
    """Issue 16: an ordinary disconnect (mid-stream, or a dropped GET stream) is not an error."""
    log = tmp_path / "server.log"
    server = HttpServer(tmp_path, stderr=log)
    accept = "application/json, text/event-stream"
    call = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {"name": "testing_sleep", "arguments": {"seconds": 2}},
    }
    try:
        server.start()
        with httpx.Client(base_url=server.url, timeout=10) as http:
            modern = {
                "Accept": accept,
                "MCP-Protocol-Version": MODERN,
                "Mcp-Method": "tools/call",
                "Mcp-Name": "testing_sleep",
            }
            meta = {
                "io.modelcontextprotocol/protocolVersion": MODERN,
                "io.modelcontextprotocol/clientCapabilities": {},
                "progressToken": "p",
            }
            body = {**call, "params": {**call["params"], "_meta": meta}}
            with http.stream("POST", "/mcp", json=body, headers=modern) as streamed:
                next(streamed.iter_lines())  # the first progress event, then hang up
            init = {
                "jsonrpc": "2.0",
                "id": 1,
                "method": "initialize",
                "params": {
                    "protocolVersion": "2025-11-25",
                    "capabilities": {},
                    "clientInfo": {"name": "raw", "version": "0"},
                },
            }
            opened = http.post("/mcp", json=init, headers={"Accept": accept})
            session = {
                "Accept": accept,
                "mcp-session-id": opened.headers["mcp-session-id"],
                "mcp-protocol-version": "2025-11-25",
            }
            http.post(
                "/mcp",
                json={"jsonrpc": "2.0", "method": "notifications/initialized"},
                headers=session,
            )
            with (
                contextlib.suppress(httpx.ReadTimeout),
                http.stream(
                    "GET", "/mcp", headers={**session, "Accept": "text/event-stream"}, timeout=0.5
                ) as standalone,
            ):
                for _ in standalone.iter_lines():
                    pass
            legacy = {**call, "params": {**call["params"], "_meta": {"progressToken": "q"}}}
            with http.stream("POST", "/mcp", json=legacy, headers=session) as streamed:
                next(streamed.iter_lines())
            time.sleep(2.5)  # both jobs end after their callers left
            # the stateless call's closed stream cancelled its job
            jobs = http.get("/v1/jobs", params={"tool": "sleep"}).json()["jobs"]
            assert "CANCELLED" in {job["status"] for job in jobs}, jobs
    finally:
        assert server.process is not None
        server.process.terminate()
        server.process.wait(timeout=15)
    text = log.read_text()
    assert "Traceback" not in text and "ERROR" not in text, text[-3000:]


@pytest.mark.parametrize("legacy", [False, True], ids=["stateless", "session"])
@pytest.mark.parametrize(
    "header", [{"Host": "evil.example"}, {"Origin": "http://evil.example"}], ids=["host", "origin"]
)
def test_dns_rebinding_is_refused_on_both_revisions(
    http_server: HttpServer, legacy: bool, header: dict[str, str]
) -> None:
    headers = {"Accept": "application/json, text/event-stream", **header}
    if legacy:
        body = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {
                "protocolVersion": "2025-11-25",
                "capabilities": {},
                "clientInfo": {"name": "raw", "version": "0"},
            },
        }
    else:
        meta = {
            "io.modelcontextprotocol/protocolVersion": MODERN,
            "io.modelcontextprotocol/clientCapabilities": {},
        }
        headers |= {"MCP-Protocol-Version": MODERN, "Mcp-Method": "tools/list"}
        body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"_meta": meta}}
    refused = httpx.post(f"{http_server.url}/mcp", json=body, headers=headers, timeout=10)
    assert refused.status_code in (403, 421), refused.text
    assert "mcp-session-id" not in refused.headers
