"""MCP with API keys: the key is the caller, and one key cannot see another's tasks, blobs or
sessions."""

from __future__ import annotations

import asyncio
import base64
import hashlib
from pathlib import Path

import httpx
import pytest
from mcp.shared.exceptions import MCPError

from lensforge.security.keys import KeyStore
from lensforge.store import JobStore
from tests.mcp_server.support import HttpServer, error_of, get_task, start_task, until_terminal
from tests.support import png

pytestmark = pytest.mark.slow

LEGACY = "2025-11-25"


def _keys(tmp_path: Path) -> tuple[str, str, str]:
    store = JobStore(f"sqlite:///{tmp_path / 'lensforge.db'}")
    try:
        store.migrate()
        keys = KeyStore(store.engine)
        alice, alice_key = keys.create("alice", ("analyze", "read"))
        _, bob_key = keys.create("bob", ("analyze", "read"))
    finally:
        store.close()
    return alice.id, alice_key, bob_key


def test_keys_own_their_jobs_tasks_and_blobs(tmp_path: Path) -> None:
    alice_id, alice_key, bob_key = _keys(tmp_path)
    server = HttpServer(tmp_path)
    try:
        server.start()
        refused = httpx.post(f"{server.url}/mcp", json={}, timeout=10)
        assert refused.status_code == 401

        image = png(21, 13)
        uri = f"lensforge://blobs/{hashlib.sha256(image).hexdigest()}"

        async def go() -> None:
            async with server.client(key=alice_key) as mine:
                data = {"data": base64.b64encode(image).decode(), "mimeType": "image/png"}
                done = await mine.call_tool("testing_size", {"image": data})
                assert done.structured_content == {"width": 21, "height": 13}
                created = await start_task(mine.session, "testing_sleep", {"seconds": 2.5})
                task_id = created.task_id
                assert (await until_terminal(mine.session, task_id))["status"] == "completed"
                assert (await mine.read_resource(uri)).contents
            async with server.client(key=bob_key) as theirs:
                with pytest.raises(MCPError, match="Task not found"):
                    await get_task(theirs.session, task_id)
                with pytest.raises(MCPError):
                    await theirs.read_resource(uri)
                borrowed = await theirs.call_tool("testing_size", {"image": {"uri": uri}})
                assert error_of(borrowed)["code"] == "blob_not_found"

        asyncio.run(go())
        store = JobStore(f"sqlite:///{tmp_path / 'lensforge.db'}")
        try:
            owners = {job.owner for job in asyncio.run(store.list(limit=50))}
        finally:
            store.close()
        assert alice_id in owners and "mcp" not in owners
    finally:
        server.kill()


def test_a_session_belongs_to_the_key_that_opened_it(tmp_path: Path) -> None:
    """Issue 15 item 12: another key knowing the session id can neither use nor end it."""
    _, alice_key, bob_key = _keys(tmp_path)
    server = HttpServer(tmp_path)
    try:
        server.start()
        base = {"Accept": "application/json, text/event-stream"}
        with httpx.Client(base_url=server.url, timeout=10) as http:
            opened = http.post(
                "/mcp",
                headers={**base, "Authorization": f"Bearer {alice_key}"},
                json={
                    "jsonrpc": "2.0",
                    "id": 1,
                    "method": "initialize",
                    "params": {
                        "protocolVersion": LEGACY,
                        "capabilities": {},
                        "clientInfo": {"name": "raw", "version": "0"},
                    },
                },
            )
            assert opened.status_code == 200, opened.text
            session = {"mcp-session-id": opened.headers["mcp-session-id"]}
            session["mcp-protocol-version"] = LEGACY
            alice = {**base, **session, "Authorization": f"Bearer {alice_key}"}
            bob = {**base, **session, "Authorization": f"Bearer {bob_key}"}
            initialized = {"jsonrpc": "2.0", "method": "notifications/initialized"}
            assert http.post("/mcp", json=initialized, headers=alice).status_code == 202
            listing = {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}
            assert http.post("/mcp", json=listing, headers=bob).status_code == 404
            assert http.delete("/mcp", headers=bob).status_code == 404
            # still Alice's, still open
            assert http.post("/mcp", json=listing, headers=alice).status_code == 200
            assert http.delete("/mcp", headers=alice).status_code == 200
            assert http.post("/mcp", json=listing, headers=alice).status_code == 404
    finally:
        server.kill()
