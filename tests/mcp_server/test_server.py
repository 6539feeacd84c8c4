"""The MCP handlers in-process (the SDK 2.x in-process client over real services)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
from typing import Any

import mcp_types as types
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError

from lensforge.api.mcp.catalog import MCP_IMAGE_SCHEMA, output_schema
from lensforge.settings import Settings
from lensforge.store import Status
from lensforge.wiring import Services
from tests.mcp_server.support import (
    cancel_task,
    error_of,
    get_task,
    run,
    start_task,
    until_terminal,
)
from tests.support import b64, png


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Calls still running after 0.5 s become tasks (2 s by default)."""
    return settings.model_copy(update={"mcp_task_after_s": 0.5})


def test_tools_are_listed_as_plugin_underscore_tool_with_schemas(settings: Settings) -> None:
    async def body(session: Client, services: Services) -> None:
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
        assert size.input_schema["properties"]["image"] == MCP_IMAGE_SCHEMA
        assert size.input_schema["required"] == ["image"]
        assert size.output_schema == {
            "type": "object",
            "additionalProperties": {"type": "integer"},
        }
        # the tasks extension has no per-tool flag: the legacy execution.taskSupport is gone
        assert size.execution is None
        assert listed["drawing_numbers"].output_schema == {
            "type": "object",
            "properties": {"result": {"type": "array", "items": {"type": "integer"}}},
            "required": ["result"],
        }
        assert listed["testing_repeat"].input_schema["required"] == ["word"]

    run(settings, body)


def test_call_with_a_base64_image_returns_structured_content_and_text(settings: Settings) -> None:
    async def body(session: Client, services: Services) -> None:
        image = {"data": b64(png(40, 30)), "mimeType": "image/png"}
        result = await session.call_tool("testing_size", {"image": image})
        assert not result.is_error
        assert result.structured_content == {"width": 40, "height": 30}
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
        assert again.structured_content == {"width": 40, "height": 30}
        # MCP image content ({"type": "image", ...}) is an image input too
        content = {"type": "image", **image}
        third = await session.call_tool("testing_size", {"image": content})
        assert third.structured_content == {"width": 40, "height": 30}

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
    async def body(session: Client, services: Services) -> None:
        result = await session.call_tool("testing_echo", arguments)
        error = error_of(result)
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
    async def body(session: Client, services: Services) -> None:
        result = await session.call_tool("testing_size", {"image": image})
        assert error_of(result)["code"] == code

    run(settings, body)


def test_failures_unknown_tools_and_masked_exceptions(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def body(session: Client, services: Services) -> None:
        failed = await session.call_tool("testing_fail", {"message": "secret detail"})
        assert error_of(failed)["code"] == "plugin_error"
        assert error_of(failed)["job_id"]
        # the envelope is the text too, for clients that read only text
        assert isinstance(failed.content[1], types.TextContent)
        assert json.loads(failed.content[1].text)["error"]["code"] == "plugin_error"

        unknown = await session.call_tool("nope_nothing", {})
        assert error_of(unknown)["code"] == "tool_not_found"

        async def explode(*args: Any, **kwargs: Any) -> Any:
            raise RuntimeError("database password is hunter2")

        monkeypatch.setattr(services.analysis, "submit", explode)
        masked = await session.call_tool("testing_noop", {})
        error = error_of(masked)
        assert error["code"] == "internal_error"
        assert "hunter2" not in str(masked.model_dump())

    run(settings, body)


def test_images_a_tool_makes_come_back_as_image_content_or_links(settings: Settings) -> None:
    async def body(session: Client, services: Services) -> None:
        small = await session.call_tool("drawing_square", {"size": 20})
        assert not small.is_error
        artifact = (small.structured_content or {})["image"]
        images = [block for block in small.content if isinstance(block, types.ImageContent)]
        assert len(images) == 1 and images[0].mime_type == "image/png"
        data = base64.b64decode(images[0].data)
        assert f"sha256:{hashlib.sha256(data).hexdigest()}" == artifact["blob"]

        read = await session.read_resource(
            "lensforge://blobs/" + artifact["blob"].removeprefix("sha256:")
        )
        contents = read.contents[0]
        assert isinstance(contents, types.BlobResourceContents)
        assert base64.b64decode(contents.blob) == data and contents.mime_type == "image/png"

        # a big image is a resource_link with its type and size, not inline base64
        big = await session.call_tool("drawing_square", {"big": True})
        assert not any(isinstance(block, types.ImageContent) for block in big.content)
        links = [block for block in big.content if isinstance(block, types.ResourceLink)]
        assert len(links) == 1 and links[0].mime_type == "image/png"
        ref = (big.structured_content or {})["image"]["blob"]
        assert links[0].uri == "lensforge://blobs/" + ref.removeprefix("sha256:")
        linked = (await session.read_resource(links[0].uri)).contents[0]
        assert isinstance(linked, types.BlobResourceContents)
        raw = base64.b64decode(linked.blob)
        assert links[0].size == len(raw) >= 5_000_000  # a 5 MB image, linked, not inlined
        assert f"sha256:{hashlib.sha256(raw).hexdigest()}" == ref

        with pytest.raises(MCPError):
            await session.read_resource("lensforge://blobs/" + "1" * 64)
        templates = await session.list_resource_templates()
        assert templates.resource_templates[0].uri_template == "lensforge://blobs/{sha256}"

    run(settings, body)


def test_progress_notifications_rise(settings: Settings) -> None:
    async def body(session: Client, services: Services) -> None:
        seen: list[float] = []

        async def on_progress(progress: float, total: float | None, message: str | None) -> None:
            seen.append(progress)

        result = await session.call_tool(
            "testing_sleep", {"seconds": 0.8}, progress_callback=on_progress
        )
        assert result.structured_content == {"slept": 0.8}
        assert len(seen) >= 3
        assert seen == sorted(seen) and len(set(seen)) == len(seen)
        assert seen[-1] == 1.0

    run(settings, body, legacy=True)  # JSON-RPC framing: the token travels in _meta


def test_a_long_call_becomes_a_task_that_is_its_job(settings: Settings) -> None:
    async def body(session: Client, services: Services) -> None:
        # quick calls stay synchronous, even for a client that declares tasks
        quick = await session.call_tool("testing_sleep", {"seconds": 0.1})
        assert quick.structured_content == {"slept": 0.1}

        created = await start_task(session.session, "testing_sleep", {"seconds": 1.5})
        assert created.status == "working" and created.ttl_ms is None
        job = await services.jobs.get(created.task_id)
        assert job.owner == "mcp"
        messages = set()
        while (state := await get_task(session.session, created.task_id))["status"] == "working":
            messages.add(state["statusMessage"])
            progress = state["_meta"]["lensforge/progress"]
            assert 0 <= progress <= 1
            await asyncio.sleep(0.05)
        assert "sleeping" in messages
        assert state["status"] == "completed" and state["resultType"] == "complete"
        assert state["result"]["structuredContent"] == {"slept": 1.5}
        assert state["result"]["_meta"]["lensforge/job_id"] == created.task_id

        # the client's extension resolves tasks transparently: call_tool returns the result
        resolved = await session.call_tool("testing_sleep", {"seconds": 0.7})
        assert resolved.structured_content == {"slept": 0.7}

        # a tool failure is a completed task whose result is the isError result
        failing = await start_task(session.session, "drawing_slow_fail", {})
        failed = await until_terminal(session.session, failing.task_id)
        assert failed["status"] == "completed" and failed["result"]["isError"]

        with pytest.raises(MCPError, match="Task not found"):
            await get_task(session.session, "no-such-task")
        # cancelling a finished task is acknowledged (cancellation is eventually consistent)
        assert (await cancel_task(session.session, created.task_id))["resultType"] == "complete"

    run(settings, body)


def test_a_long_tool_is_always_a_task(settings: Settings) -> None:
    async def body(session: Client, services: Services) -> None:
        services.registry.resolve("testing", "noop").long = True
        created = await start_task(session.session, "testing_noop", {})
        done = await until_terminal(session.session, created.task_id)
        assert done["result"]["structuredContent"] == {"ok": True}

    run(settings, body)


def test_a_cancelled_task_stops_its_job(settings: Settings) -> None:
    async def body(session: Client, services: Services) -> None:
        created = await start_task(session.session, "testing_sleep", {"seconds": 20})
        task_id = created.task_id
        for _ in range(200):
            if (await services.jobs.get(task_id)).status is Status.RUNNING:
                break
            await asyncio.sleep(0.02)
        assert (await cancel_task(session.session, task_id))["resultType"] == "complete"
        done = await until_terminal(session.session, task_id)
        assert done["status"] == "cancelled"
        assert (await services.jobs.get(task_id)).status is Status.CANCELLED

    run(settings, body)


def test_a_client_without_the_extension_gets_plain_calls(settings: Settings) -> None:
    async def go() -> None:
        from tests.mcp_server.support import in_memory

        async with in_memory(settings, tasks=False) as (session, _):
            result = await session.call_tool("testing_sleep", {"seconds": 0.8})
            assert result.structured_content == {"slept": 0.8}  # waited, no task
            with pytest.raises(MCPError, match="Task not found"):
                await get_task(session.session, "x")  # no capability: still served, unknown
        async with in_memory(settings, legacy=True) as (session, _):
            result = await session.call_tool("testing_sleep", {"seconds": 0.8})
            assert result.structured_content == {"slept": 0.8}
            with pytest.raises(MCPError, match="Method not found"):
                await get_task(session.session, "x")  # tasks/* exist at 2026-07-28 only

    asyncio.run(go())


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
