"""The adapter, through the real app: ForgeSyte plugins discovered from installed
distributions, listed with their schemas, run as jobs through the ToolRunner."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from lensforge.registry import load_registry
from lensforge.settings import Settings
from tests.support import b64, png


def _settings(tmp_path: Path, executor: str = "thread") -> Settings:
    return Settings(
        database_url=f"sqlite:///{tmp_path / 'lensforge.db'}",
        data_dir=tmp_path / "data",
        workers=2,
        poll_interval_s=0.05,
        executor=executor,  # type: ignore[arg-type]
    )


def _analyze(client: TestClient, plugin: str, tool: str, **inputs: object) -> dict[str, object]:
    response = client.post("/v1/analyze", json={"plugin": plugin, "tool": tool, "inputs": inputs})
    body: dict[str, object] = response.json()
    body["http_status"] = response.status_code
    return body


def test_each_plugin_is_listed_with_its_schemas_or_why_it_cannot_run(client: TestClient) -> None:
    listing = client.get("/v1/plugins").json()
    plugins = {entry["name"]: entry for entry in listing["plugins"]}
    shapes = plugins["fs_shapes"]  # ForgeSyte's "fs-shapes", named for LensForge
    assert shapes["version"] == "2.1.0"
    tools = {tool["name"]: tool for tool in shapes["tools"]}
    assert list(tools) == [
        "measure",
        "color",
        "broken_output",
        "steps",
        "hang",
        "crash",
        "video_track",
    ]
    assert tools["video_track"]["video_inputs"] == ["video_path"]  # a LensForge Video input
    measure = tools["measure"]
    assert measure["media_inputs"] == ["image_bytes"]
    assert measure["input_schema"]["properties"]["image_bytes"]["x-lensforge-media"] == "image"
    assert measure["output_schema"]["required"] == ["width", "height", "size", "unit", "loaded"]
    color = tools["color"]  # a flat ForgeSyte schema made a JSON Schema object
    assert color["input_schema"]["properties"]["channel"]["enum"] == ["red", "green", "blue"]
    assert color["description"] == "Mean of one colour channel"

    legacy = plugins["fs_legacy"]
    assert [tool["name"] for tool in legacy["tools"]] == ["analyze"]
    options = legacy["tools"][0]["input_schema"]["properties"]["options"]
    assert options["properties"]["scale"] == {
        "type": "integer",
        "minimum": 1,
        "maximum": 10,
        "default": 1,
    }
    assert legacy["description"] == "Counts the bytes of an image."  # from metadata()

    missing = plugins["fs_missing"]
    assert missing["state"] == "UNAVAILABLE"
    assert "missing Python module 'app'" in missing["reason"]

    # LensForge's own ocr kept its name; the ForgeSyte one is a load error saying what to do.
    assert [tool["name"] for tool in plugins["ocr"]["tools"]] != ["analyze"]
    assert "LENSFORGE_FORGESYTE_RENAME=ocr:" in listing["load_errors"]["forgesyte:ocr"]


def test_image_tools_receive_the_raw_bytes_and_their_options(client: TestClient) -> None:
    image = png(12, 7)
    measured = _analyze(
        client, "fs_shapes", "measure", image_bytes=b64(image), options={"unit": "mm"}
    )
    assert measured["http_status"] == 200, measured
    assert measured["result"] == {
        "width": 12,
        "height": 7,
        "size": len(image),
        "unit": "mm",
        "loaded": True,  # on_load ran
    }
    color = _analyze(
        client, "fs_shapes", "color", image_bytes=b64(png(color=(0, 60, 0))), channel="green"
    )
    assert color["result"] == {"channel": "green", "mean": 60}

    legacy = _analyze(client, "fs_legacy", "analyze", image_bytes=b64(image), options={"scale": 3})
    assert legacy["result"] == {"size": 3 * len(image), "scale": 3}
    flat = _analyze(client, "fs_legacy", "analyze", image_bytes=b64(image), scale=2)
    assert flat["result"] == {"size": 2 * len(image), "scale": 2}  # gathered into options


def test_inputs_and_outputs_are_held_to_the_declared_schemas(client: TestClient) -> None:
    bad_option = _analyze(client, "fs_shapes", "color", image_bytes=b64(png()), channel="purple")
    assert bad_option["http_status"] == 422
    assert bad_option["error"]["code"] == "validation_error"  # type: ignore[index]
    not_image = _analyze(client, "fs_shapes", "measure", image_bytes=b64(b"plain text"))
    assert not_image["error"]["code"] == "unsupported_media_type"  # type: ignore[index]
    scale = _analyze(client, "fs_legacy", "analyze", image_bytes=b64(png()), options={"scale": 11})
    assert scale["error"]["code"] == "validation_error"  # type: ignore[index]

    broken = _analyze(client, "fs_shapes", "broken_output", image_bytes=b64(png()))
    assert broken["error"]["code"] == "plugin_error"  # type: ignore[index]
    assert "output schema" in broken["error"]["message"]  # type: ignore[index]

    unavailable = _analyze(client, "fs_missing", "anything", image_bytes=b64(png()))
    assert unavailable["http_status"] == 503
    assert unavailable["error"]["code"] == "plugin_unavailable"  # type: ignore[index]
    assert "missing Python module 'app'" in unavailable["error"]["message"]  # type: ignore[index]


def test_a_progress_callback_reports_the_job_s_progress(client: TestClient) -> None:
    job = client.post(
        "/v1/jobs",
        json={"plugin": "fs_shapes", "tool": "steps", "inputs": {"image_bytes": b64(png())}},
    ).json()
    seen: set[str] = set()
    with client.stream("GET", f"/v1/jobs/{job['job_id']}/stream") as stream:
        for line in stream.iter_lines():
            if "frame " in line:
                seen.update(part for part in line.split('"') if part.startswith("frame "))
    assert {"frame 1/5", "frame 5/5"} <= seen


def test_renaming_resolves_a_collision_and_discovery_can_be_turned_off(
    installed: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LENSFORGE_FORGESYTE_RENAME", "ocr:forgesyte_ocr")
    renamed = load_registry()
    assert "forgesyte:ocr" not in renamed.load_errors
    assert renamed.get("forgesyte_ocr").plugin_cls.forgesyte.plugin_id == "ocr"  # type: ignore[attr-defined]

    monkeypatch.delenv("LENSFORGE_FORGESYTE_RENAME")
    blocked = load_registry(block=["forgesyte:ocr", "fs_legacy"])
    assert not blocked.load_errors
    assert "fs_legacy" not in blocked.names()
    assert blocked.get("ocr").plugin_cls.__module__ == "lensforge.builtin.ocr"

    monkeypatch.setenv("LENSFORGE_FORGESYTE_PLUGINS", "false")
    off = load_registry()
    assert not {"fs_shapes", "fs_legacy", "fs_missing"} & set(off.names())


def test_on_unload_runs_at_teardown(
    installed: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = tmp_path / "unloaded"
    monkeypatch.setenv("FS_SHAPES_UNLOAD_MARKER", str(marker))
    registry = load_registry(block=["forgesyte:ocr"])
    registry.initialize()
    assert registry.get("fs_shapes").state.value == "INITIALIZED"
    assert not marker.exists()
    registry.teardown()
    assert marker.read_text() == "unloaded"


def test_an_mcp_call_runs_a_forgesyte_tool(installed: Path, tmp_path: Path) -> None:
    from lensforge.wiring import Services
    from tests.mcp_server.support import run

    async def call(session: Any, services: Services) -> Any:
        listed = await session.list_tools()
        name = next(t.name for t in listed.tools if "fs_shapes" in t.name and "measure" in t.name)
        return await session.call_tool(name, {"image_bytes": b64(png(5, 6))})

    result = run(_settings(tmp_path), call)
    # The MCP SDK's result fields by either spelling (camelCase in 1.x, snake_case in 2.x).
    error = getattr(result, "is_error", None) or getattr(result, "isError", None)
    content = getattr(result, "structured_content", None) or getattr(
        result, "structuredContent", None
    )
    assert not error, result
    assert (content["width"], content["height"]) == (5, 6)
