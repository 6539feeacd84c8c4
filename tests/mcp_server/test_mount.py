"""The /mcp mount loads the MCP SDK on the first MCP request, not at start-up."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

CODE = """
import json, sys, threading
from fastapi.testclient import TestClient
from lensforge.api import create_app
from lensforge.settings import Settings

root = sys.argv[1]
app = create_app(Settings(database_url=f"sqlite:///{root}/db", data_dir=f"{root}/data"))
facts = {}
meta = {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {}}
headers = {"Accept": "application/json, text/event-stream", "MCP-Protocol-Version": "2026-07-28",
           "Mcp-Method": "tools/list"}
with TestClient(app, base_url="http://127.0.0.1") as client:
    facts["healthz"] = client.get("/healthz").status_code
    facts["sdk_before"] = "mcp" in sys.modules
    answers = []

    def call(n):
        body = {"jsonrpc": "2.0", "id": n, "method": "tools/list", "params": {"_meta": meta}}
        answers.append(client.post("/mcp", json=body, headers=headers))

    first = [threading.Thread(target=call, args=(n,)) for n in range(3)]  # all wait for it
    for thread in first:
        thread.start()
    for thread in first:
        thread.join(60)
    call(9)
    facts["statuses"] = [a.status_code for a in answers]
    facts["tools"] = [len(a.json()["result"]["tools"]) for a in answers]
    facts["sdk_after"] = "mcp" in sys.modules
print(json.dumps(facts))
"""


def test_the_sdk_loads_on_the_first_mcp_request_and_every_early_request_is_served(
    tmp_path: Path,
) -> None:
    out = subprocess.run(
        [sys.executable, "-c", CODE, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    facts = json.loads(out.stdout.strip().splitlines()[-1])
    assert facts["healthz"] == 200
    assert facts["sdk_before"] is False  # a server nobody calls over MCP never loads it
    assert facts["statuses"] == [200, 200, 200, 200]
    assert len(set(facts["tools"])) == 1 and facts["tools"][0] > 5
    assert facts["sdk_after"] is True
