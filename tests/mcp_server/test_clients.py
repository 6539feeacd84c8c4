"""Clients LensForge does not control, against a real server's /mcp: the official TypeScript
SDK (run by Node) and an existing agent on the Python SDK 1.x (its own venv).

Both are installed once into ``build/mcp-clients/`` (ignored by git) by the fixtures below, from
the npm registry and PyPI, and reused while that folder stays.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.mcp_server.support import ROOT, HttpServer

pytestmark = pytest.mark.slow

CLIENTS = ROOT / "build" / "mcp-clients"
SCRIPTS = Path(__file__).parent / "clients"
TS_SDK = "@modelcontextprotocol/sdk@1"
PY_SDK = "mcp>=1.30,<2"


def _install(command: list[str], cwd: Path, what: str) -> None:
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        pytest.fail(f"installing {what} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")


@pytest.fixture(scope="module")
def ts_sdk() -> Path:
    """A directory whose node_modules holds the TypeScript SDK (installed on first use)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("Node and npm are needed for the TypeScript SDK client")
    folder = CLIENTS / "ts"
    if not (folder / "node_modules" / "@modelcontextprotocol" / "sdk").is_dir():
        folder.mkdir(parents=True, exist_ok=True)
        _install(
            [npm, "install", "--no-audit", "--no-fund", "--silent", TS_SDK],
            folder,
            "the TypeScript SDK",
        )
    shutil.copy(SCRIPTS / "ts_client.mjs", folder / "ts_client.mjs")
    return folder


@pytest.fixture(scope="module")
def mcp1_python() -> Path:
    """The Python of a venv holding the ``mcp`` SDK 1.x (created on first use)."""
    venv = CLIENTS / "py-mcp1"
    python = venv / "bin" / "python"
    probe = [str(python), "-c", "import mcp.client.streamable_http"]
    if not python.exists() or subprocess.run(probe, capture_output=True).returncode != 0:
        CLIENTS.mkdir(parents=True, exist_ok=True)
        _install([sys.executable, "-m", "venv", str(venv)], CLIENTS, "a venv")
        _install([str(python), "-m", "pip", "install", "-q", PY_SDK], CLIENTS, "mcp 1.x")
    return python


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HttpServer]:
    running = HttpServer(tmp_path_factory.mktemp("mcp-clients"))
    running.start()
    try:
        yield running
    finally:
        running.kill()


def _run(command: list[str], cwd: Path) -> dict[str, object]:
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_the_typescript_sdk_client_reads_the_real_error_messages(
    ts_sdk: Path, server: HttpServer
) -> None:
    """Issue 16: a TypeScript client checks structuredContent against the outputSchema; an
    error result carries none, so the agent sees the real message, not a schema complaint."""
    seen = _run(["node", "ts_client.mjs", f"{server.url}/mcp"], ts_sdk)
    assert "testing_echo" in seen["tools"]  # type: ignore[operator]
    ok = seen["ok"]
    assert isinstance(ok, dict) and ok["isError"] is False, ok
    assert ok["structuredContent"] == {"text": "hi", "times": 2}
    for key, code, words in (
        ("badType", "validation_error", "times"),
        ("badImage", "validation_error", "base64"),
        ("failed", "plugin_error", ""),
    ):
        result = seen[key]
        assert isinstance(result, dict) and "thrown" not in result, result
        assert result["isError"] is True and result["structuredContent"] is None
        text = result["content"][0]["text"]
        assert text.startswith(f"{code}: ") and words in text, text
        assert "must have required property" not in json.dumps(result)
        assert result["meta"]["lensforge/error"]["code"] == code


def test_an_sdk_1x_agent_keeps_working_on_a_legacy_session(
    mcp1_python: Path, server: HttpServer
) -> None:
    seen = _run([str(mcp1_python), str(SCRIPTS / "mcp1_client.py"), f"{server.url}/mcp"], ROOT)
    assert seen["protocol"] == "2025-11-25"
    assert "testing_size" in seen["tools"]  # type: ignore[operator]
    assert seen["size"] == {"width": 30, "height": 20}
    bad = seen["bad"]
    assert isinstance(bad, dict) and bad["isError"] is True
    assert bad["text"].startswith("validation_error: ")
    assert bad["meta"]["lensforge/error"]["details"]["errors"][0]["field"] == "times"
    assert seen["slept"] == {"slept": 0.6}
    progress = seen["progress"]
    assert isinstance(progress, list) and len(progress) >= 2 and progress == sorted(progress)
