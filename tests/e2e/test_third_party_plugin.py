"""A plugin written only from the documented contract, installed as its own distribution.

The package below is the README's "Writing a plugin" example plus a JSON-Schema tool, placed
on ``PYTHONPATH`` with a ``.dist-info`` of its own whose ``entry_points.txt`` names it in the
``lensforge.plugins`` group: what ``pip install`` of a package with that ``pyproject.toml``
leaves behind. Nothing registers it by hand, so these tests pass only if discovery, the worker
processes (which find plugins again on their own) and every interface honour the contract.
"""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.test_server import Server, lensforge_command
from tests.support import b64, png

pytestmark = pytest.mark.slow

PLUGIN_SOURCE = '''
from pydantic import BaseModel

from lensforge import Image, Plugin, ToolContext, schema_tool, tool


class Size(BaseModel):
    width: int
    height: int


class Measure(Plugin):
    """Measures images."""

    name = "measure"
    version = "1.2.3"

    def setup(self) -> None:
        self.unit = "px"

    @tool(timeout_s=5)
    def size(self, image: Image, ctx: ToolContext | None = None) -> Size:
        """Width and height of the image in pixels."""
        if ctx is not None:
            ctx.progress(0.5, "measuring")
        return Size(width=image.width, height=image.height)

    @schema_tool(
        input_schema={
            "type": "object",
            "properties": {
                "image": {"type": "string", "contentMediaType": "image/png"},
                "factor": {"type": "integer", "minimum": 1},
            },
            "required": ["image", "factor"],
        },
        output_schema={
            "type": "object",
            "properties": {"area": {"type": "integer"}, "unit": {"type": "string"}},
            "required": ["area", "unit"],
        },
    )
    def area(self, inputs, ctx):
        """Pixel area of the image, times a factor."""
        image = inputs["image"]
        return {"area": image.width * image.height * inputs["factor"], "unit": self.unit}
'''


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding the package and its dist-info, as pip would install them."""
    root = tmp_path_factory.mktemp("site")
    (root / "measure_plugin").mkdir()
    (root / "measure_plugin" / "__init__.py").write_text(textwrap.dedent(PLUGIN_SOURCE))
    info = root / "measure_plugin-1.2.3.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: measure-plugin\nVersion: 1.2.3\n")
    (info / "entry_points.txt").write_text(
        "[lensforge.plugins]\nmeasure = measure_plugin:Measure\n"
    )
    return root


def _env(site: Path, tmp_path: Path) -> dict[str, str]:
    path = os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))
    return {
        "PYTHONPATH": path,
        "LENSFORGE_PLUGINS_ALLOW": "measure,image",
        "LENSFORGE_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}",
        "LENSFORGE_DATA_DIR": str(tmp_path / "data"),
    }


def _cli(site: Path, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*lensforge_command(), *args],
        env={**os.environ, **_env(site, tmp_path)},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_cli_lists_and_runs_the_installed_plugin(site: Path, tmp_path: Path) -> None:
    listed = _cli(site, tmp_path, "plugins", "--json")
    assert listed.returncode == 0, listed.stderr
    plugins = {entry["name"]: entry for entry in json.loads(listed.stdout)["plugins"]}
    assert set(plugins) == {"measure", "image"}  # the allow-list holds
    assert plugins["measure"]["version"] == "1.2.3"
    assert [tool["name"] for tool in plugins["measure"]["tools"]] == ["size", "area"]

    image = tmp_path / "in.png"
    image.write_bytes(png(37, 11))
    ran = _cli(site, tmp_path, "run", "measure.size", "--image", str(image), "--json")
    assert ran.returncode == 0, ran.stderr
    assert json.loads(ran.stdout)["result"] == {"width": 37, "height": 11}


@pytest.fixture(scope="module")
def server(site: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp_path = tmp_path_factory.mktemp("server")
    env = _env(site, tmp_path)
    del env["LENSFORGE_DATABASE_URL"], env["LENSFORGE_DATA_DIR"]  # the server's own
    running = Server(tmp_path, "third-party", **env).start()
    try:
        yield running
    finally:
        running.kill()


def test_the_manifest_comes_from_the_type_hints_and_docstrings(server: Server) -> None:
    manifest = httpx.get(f"{server.url}/v1/plugins/measure", timeout=10).json()
    tools = {tool["name"]: tool for tool in manifest["tools"]}
    assert tools["size"]["description"] == "Width and height of the image in pixels."
    assert tools["size"]["output_schema"]["required"] == ["width", "height"]
    assert tools["area"]["description"] == "Pixel area of the image, times a factor."
    assert tools["area"]["input_schema"]["required"] == ["image", "factor"]


def test_the_server_runs_both_tools_in_its_workers(server: Server) -> None:
    upload = httpx.post(
        f"{server.url}/v1/analyze",
        data={"plugin": "measure", "tool": "size"},
        files={"image": ("a.png", png(20, 30), "image/png")},
        timeout=30,
    )
    assert upload.status_code == 200, upload.text
    assert upload.json()["result"] == {"width": 20, "height": 30}

    job = httpx.post(
        f"{server.url}/v1/jobs",
        json={
            "plugin": "measure",
            "tool": "area",
            "inputs": {"image": b64(png(4, 5)), "factor": 3},
        },
        timeout=30,
    )
    assert job.status_code == 202, job.text
    job_id = job.json()["job_id"]
    result = httpx.get(f"{server.url}/v1/jobs/{job_id}/result", timeout=30)
    for _ in range(100):
        if result.status_code != 409:
            break
        result = httpx.get(f"{server.url}/v1/jobs/{job_id}/result", timeout=30)
    assert result.status_code == 200, result.text
    assert result.json()["result"] == {"area": 60, "unit": "px"}  # setup() ran in the worker


def test_bad_input_to_a_schema_tool_is_a_validation_error(server: Server) -> None:
    answer = httpx.post(
        f"{server.url}/v1/analyze",
        json={"plugin": "measure", "tool": "area", "inputs": {"image": b64(png()), "factor": 0}},
        timeout=30,
    )
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["code"] == "validation_error"
