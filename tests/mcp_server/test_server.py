"""The MCP handlers in-process (the SDK's in-memory client over real services)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
from typing import Any

import pytest
from mcp import ClientSession, types
from mcp.shared.exceptions import McpError

from lensforge.api.mcp.catalog import MCP_IMAGE_SCHEMA, output_schema
from lensforge.settings import Settings
from lensforge.store import Status
from lensforge.wiring import Services
from tests.mcp_server.support import run, tasks, until_terminal
from tests.support import b64, png


def test_tools_are_listed_as_plugin_underscore_tool_with_schemas(settings: Settings) -> None:
    async def body(session: ClientSession, services: Services) -> None:
        listed = {tool.name: tool for tool in (await session.list_tools()).tools}
        expected = {
            f"{spec.plugin}_{spec.name}"
            for record in services.registry.records()
            if record.state.value not in ("UNAVAILABLE", "FAILED")
            for spec in record.tools.values()
        }
        assert set(listed) == expected
        size = listed["testing_size"]
        assert size.title == "testing.size"
        assert size.description == "Width and height of an image."
        assert size.inputSchema["properties"]["image"] == MCP_IMAGE_SCHEMA
        assert size.inputSchema["required"] == ["image"]
        assert size.outputSchema == {
            "type": "object",
            "additionalProperties": {"type": "integer"},
        }
        assert size.execution is not None and size.execution.taskSupport == "optional"
        assert listed["drawing_numbers"].outputSchema == {
            "type": "object",
            "properties": {"result": {"type": "array", "items": {"type": "integer"}}},
            "required": ["result"],
        }
        assert listed["testing_repeat"].inputSchema["required"] == ["word"]

    run(settings, body)


def test_call_with_a_base64_image_returns_structured_content_and_text(settings: Settings) -> None:
    async def body(session: ClientSession, services: Services) -> None:
        image = {"data": b64(png(40, 30)), "mimeType": "image/png"}
        result = await session.call_tool("testing_size", {"image": image})
        assert not result.isError
        assert result.structuredContent == {"width": 40, "height": 30}
        assert isinstance(result.content[0], types.TextContent)
        assert result.content[0].text == '{"width":40,"height":30}'
        job_id = (result.meta or {})["lensforge/job_id"]
        job = await services.jobs.get(job_id)
        assert job.owner == "mcp" and job.status is Status.SUCCESS
        # the dotted name is understood too, and a stored blob can be named by URI
        digest = hashlib.sha256(png(40, 30)).hexdigest()
        again = await session.call_tool(
            "testing.size", {"image": {"uri": f"lensforge://blobs/{digest}"}}
        )
        assert again.structuredContent == {"width": 40, "height": 30}

    run(settings, body)


@pytest.mark.parametrize(
    ("arguments", "field"),
    [
        ({"text": 5}, "text"),
        ({"times": 2}, "text"),
    ],
)
def test_bad_arguments_are_an_error_result_with_the_envelope(
    settings: Settings, arguments: dict[str, Any], field: str
) -> None:
    async def body(session: ClientSession, services: Services) -> None:
        result = await session.call_tool("testing_echo", arguments)
        assert result.isError
        error = (result.structuredContent or {})["error"]
        assert error["code"] == "validation_error"
        assert error["details"]["errors"][0]["field"] == field
        assert error["plugin"] == "testing" and error["tool"] == "echo"
        assert isinstance(result.content[0], types.TextContent)
        assert result.content[0].text.startswith("validation_error: ")

    run(settings, body)


@pytest.mark.parametrize(
    ("image", "code"),
    [
        ({"uri": "https://example.com/cat.png"}, "validation_error"),
        ({"uri": "file:///etc/passwd"}, "validation_error"),
        ("/etc/passwd", "validation_error"),
        ({"data": b64(b"not an image at all"), "mimeType": "image/png"}, "unsupported_media_type"),
        ({"data": b64(png()), "mimeType": "text/html"}, "validation_error"),
        ({"uri": "lensforge://blobs/" + "0" * 64}, "blob_not_found"),
    ],
)
def test_images_never_come_from_urls_or_paths(settings: Settings, image: Any, code: str) -> None:
    async def body(session: ClientSession, services: Services) -> None:
        result = await session.call_tool("testing_size", {"image": image})
        assert result.isError
        assert (result.structuredContent or {})["error"]["code"] == code

    run(settings, body)


def test_failures_unknown_tools_and_masked_exceptions(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def body(session: ClientSession, services: Services) -> None:
        failed = await session.call_tool("testing_fail", {"message": "secret detail"})
        assert failed.isError
        assert (failed.structuredContent or {})["error"]["code"] == "plugin_error"
        assert (failed.structuredContent or {})["error"]["job_id"]

        unknown = await session.call_tool("nope_nothing", {})
        assert unknown.isError
        assert (unknown.structuredContent or {})["error"]["code"] == "tool_not_found"

        async def explode(*args: Any, **kwargs: Any) -> Any:
            raise RuntimeError("database password is hunter2")

        monkeypatch.setattr(services.analysis, "submit", explode)
        masked = await session.call_tool("testing_noop", {})
        assert masked.isError
        error = (masked.structuredContent or {})["error"]
        assert error["code"] == "internal_error"
        assert "hunter2" not in str(masked.model_dump())

    run(settings, body)


def test_images_a_tool_makes_come_back_as_image_content_or_links(settings: Settings) -> None:
    async def body(session: ClientSession, services: Services) -> None:
        small = await session.call_tool("drawing_square", {"size": 20})
        assert not small.isError
        artifact = (small.structuredContent or {})["image"]
        images = [block for block in small.content if isinstance(block, types.ImageContent)]
        assert len(images) == 1 and images[0].mimeType == "image/png"
        data = base64.b64decode(images[0].data)
        assert f"sha256:{hashlib.sha256(data).hexdigest()}" == artifact["blob"]

        read = await session.read_resource(
            "lensforge://blobs/" + artifact["blob"].removeprefix("sha256:")  # type: ignore[arg-type]
        )
        contents = read.contents[0]
        assert isinstance(contents, types.BlobResourceContents)
        assert base64.b64decode(contents.blob) == data and contents.mimeType == "image/png"

        big = await session.call_tool("drawing_square", {"big": True})
        links = [block for block in big.content if isinstance(block, types.ResourceLink)]
        assert len(links) == 1 and str(links[0].uri).startswith("lensforge://blobs/")

        with pytest.raises(McpError):
            await session.read_resource("lensforge://blobs/" + "1" * 64)  # type: ignore[arg-type]
        templates = await session.list_resource_templates()
        assert templates.resourceTemplates[0].uriTemplate == "lensforge://blobs/{sha256}"

    run(settings, body)


def test_progress_notifications_rise(settings: Settings) -> None:
    async def body(session: ClientSession, services: Services) -> None:
        seen: list[float] = []

        async def on_progress(progress: float, total: float | None, message: str | None) -> None:
            seen.append(progress)

        result = await session.call_tool(
            "testing_sleep", {"seconds": 0.8}, progress_callback=on_progress
        )
        assert result.structuredContent == {"slept": 0.8}
        assert len(seen) >= 3
        assert seen == sorted(seen) and len(set(seen)) == len(seen)
        assert seen[-1] == 1.0

    run(settings, body)


def test_tasks_are_jobs(settings: Settings) -> None:
    async def body(session: ClientSession, services: Services) -> None:
        created = await tasks(session).call_tool_as_task("testing_sleep", {"seconds": 0.3})
        task_id = created.task.taskId
        job = await services.jobs.get(task_id)
        assert job.owner == "mcp"
        done = await until_terminal(session, task_id)
        assert done.status == "completed"
        result = await tasks(session).get_task_result(task_id, types.CallToolResult)
        assert result.structuredContent == {"slept": 0.3}
        assert (result.meta or {})["io.modelcontextprotocol/related-task"]["taskId"] == task_id
        listed = await tasks(session).list_tasks()
        assert task_id in {task.taskId for task in listed.tasks}

        failing = await tasks(session).call_tool_as_task("testing_fail", {})
        assert (await until_terminal(session, failing.task.taskId)).status == "failed"
        failure = await tasks(session).get_task_result(failing.task.taskId, types.CallToolResult)
        assert failure.isError
        assert (failure.structuredContent or {})["error"]["code"] == "plugin_error"

        with pytest.raises(McpError, match="validation_error"):
            await tasks(session).call_tool_as_task("testing_echo", {"text": 1})
        with pytest.raises(McpError, match="tool_not_found"):
            await tasks(session).call_tool_as_task("testing_nothing", {})
        with pytest.raises(McpError, match="Task not found"):
            await tasks(session).get_task("no-such-task")
        with pytest.raises(McpError, match="already finished"):
            await tasks(session).cancel_task(task_id)

    run(settings, body)


def test_a_cancelled_task_stops_its_job(settings: Settings) -> None:
    async def body(session: ClientSession, services: Services) -> None:
        created = await tasks(session).call_tool_as_task("testing_sleep", {"seconds": 20})
        task_id = created.task.taskId
        for _ in range(200):
            if (await services.jobs.get(task_id)).status is Status.RUNNING:
                break
            await asyncio.sleep(0.02)
        cancelled = await tasks(session).cancel_task(task_id)
        assert cancelled.status == "cancelled"
        assert (await services.jobs.get(task_id)).status is Status.CANCELLED

    run(settings, body)


def test_output_schemas_are_objects() -> None:
    assert output_schema({}) == (None, False)
    schema = {"type": "object", "properties": {}}
    assert output_schema(schema) == (schema, False)
    wrapped, is_wrapped = output_schema(
        {"anyOf": [{"$ref": "#/$defs/A"}, {"type": "null"}], "$defs": {"A": {"type": "string"}}}
    )
    assert is_wrapped and wrapped is not None
    assert wrapped["$defs"] == {"A": {"type": "string"}}
    assert "$defs" not in wrapped["properties"]["result"]
