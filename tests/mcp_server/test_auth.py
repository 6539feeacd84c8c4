"""MCP with API keys: the key is the caller, and one key cannot see another's tasks or blobs."""

from __future__ import annotations

import asyncio
import base64
import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import McpError

from lensforge.security.keys import KeyStore
from lensforge.store import JobStore
from tests.mcp_server.support import HttpServer, tasks, until_terminal
from tests.support import png

pytestmark = pytest.mark.slow


@asynccontextmanager
async def session_as(url: str, key: str) -> AsyncIterator[ClientSession]:
    http = httpx.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=30)
    async with (
        http,
        streamable_http_client(f"{url}/mcp", http_client=http) as (read, write, _),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        yield session


def test_keys_own_their_jobs_tasks_and_blobs(tmp_path: Path) -> None:
    store = JobStore(f"sqlite:///{tmp_path / 'lensforge.db'}")
    try:
        store.migrate()
        keys = KeyStore(store.engine)
        alice, alice_key = keys.create("alice", ("analyze", "read"))
        _, bob_key = keys.create("bob", ("analyze", "read"))
    finally:
        store.close()
    server = HttpServer(tmp_path)
    try:
        server.start()
        refused = httpx.post(f"{server.url}/mcp", json={}, timeout=10)
        assert refused.status_code == 401

        image = png(21, 13)
        uri = f"lensforge://blobs/{hashlib.sha256(image).hexdigest()}"

        async def go() -> None:
            async with session_as(server.url, alice_key) as mine:
                data = {"data": base64.b64encode(image).decode(), "mimeType": "image/png"}
                done = await mine.call_tool("testing_size", {"image": data})
                assert done.structuredContent == {"width": 21, "height": 13}
                created = await tasks(mine).call_tool_as_task("testing_noop", {})
                task_id = created.task.taskId
                assert (await until_terminal(mine, task_id)).status == "completed"
                assert task_id in {t.taskId for t in (await tasks(mine).list_tasks()).tasks}
                assert (await mine.read_resource(uri)).contents  # type: ignore[arg-type]
            async with session_as(server.url, bob_key) as theirs:
                with pytest.raises(McpError, match="Task not found"):
                    await tasks(theirs).get_task(task_id)
                assert (await tasks(theirs).list_tasks()).tasks == []
                with pytest.raises(McpError):
                    await theirs.read_resource(uri)  # type: ignore[arg-type]
                borrowed = await theirs.call_tool("testing_size", {"image": {"uri": uri}})
                assert borrowed.isError
                assert (borrowed.structuredContent or {})["error"]["code"] == "blob_not_found"

        asyncio.run(go())
        store = JobStore(f"sqlite:///{tmp_path / 'lensforge.db'}")
        try:
            owners = {job.owner for job in store.list_jobs(limit=50)}
        finally:
            store.close()
        assert alice.id in owners and "mcp" not in owners
    finally:
        server.kill()
