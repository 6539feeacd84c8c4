"""Structured logs: formatters, context (request and job), request ids and the access log."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from lensforge.logs import (
    ContextFilter,
    JsonFormatter,
    RequestContextMiddleware,
    TextFormatter,
    configure_logging,
    current_request_id,
    job_context,
    resolve_format,
)


@pytest.fixture
def restore_root() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        logging.getLogger("uvicorn.access").disabled = False


def record(msg: str = "hello %s", *args: object, **extra: object) -> logging.LogRecord:
    made = logging.LogRecord(
        "lensforge.test", logging.INFO, __file__, 1, msg, args or ("you",), None
    )
    for name, value in extra.items():
        setattr(made, name, value)
    return made


def test_a_json_line_has_the_event_context_first_then_extras() -> None:
    line = json.loads(
        JsonFormatter().format(
            record(event="job_claimed", tool="decode", job_id="j1", plugin="codes", pid=7)
        )
    )
    assert line["event"] == "job_claimed" and line["message"] == "hello you"
    assert line["level"] == "info" and line["logger"] == "lensforge.test"
    assert line["ts"].endswith("Z")
    keys = list(line)
    assert keys[keys.index("message") + 1 :] == ["job_id", "plugin", "tool", "pid"]


def test_a_line_without_an_event_is_named_log_and_keeps_its_traceback() -> None:
    try:
        raise ValueError("bad")
    except ValueError:
        import sys

        made = record()
        made.exc_info = sys.exc_info()
    line = json.loads(JsonFormatter().format(made))
    assert line["event"] == "log"
    assert "ValueError: bad" in line["exc"]


def test_text_lines_read_as_one_line_with_key_value_pairs() -> None:
    text = TextFormatter().format(record(event="job_failed", job_id="j2"))
    assert text.endswith("INFO    lensforge.test job_failed: hello you job_id=j2")


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_auto_format_is_text_on_a_terminal_and_json_otherwise() -> None:
    assert resolve_format("auto", _Terminal()) == "text"
    assert resolve_format("auto", io.StringIO()) == "json"
    assert resolve_format("text", io.StringIO()) == "text"


def test_configuring_again_replaces_the_handler_and_tool_lines_carry_the_job(
    restore_root: None,
) -> None:
    configure_logging("info", "json", io.StringIO())
    stream = io.StringIO()
    configure_logging("info", "json", stream)
    ours = [
        h
        for h in logging.getLogger().handlers
        if any(isinstance(f, ContextFilter) for f in h.filters)
    ]
    assert len(ours) == 1
    plugin_logger = logging.getLogger("lensforge.plugins.codes")  # what ctx.logger returns
    with job_context("job-9", "codes", "decode"):
        plugin_logger.info("found %d codes", 2)
    plugin_logger.info("outside")
    plugin_logger.debug("below the level")
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert (first["job_id"], first["plugin"], first["tool"]) == ("job-9", "codes", "decode")
    assert first["message"] == "found 2 codes"
    assert "job_id" not in second


def _app(seen: list[str | None]) -> RequestContextMiddleware:
    async def item(request: Request) -> PlainTextResponse:
        seen.append(current_request_id())
        logging.getLogger("lensforge.test").warning("inside", extra={"event": "inside"})
        return PlainTextResponse("ok", status_code=201)

    return RequestContextMiddleware(Starlette(routes=[Route("/items/{item_id}", item)]))


def test_each_request_gets_an_id_returned_and_logged_with_its_route_template(
    restore_root: None,
) -> None:
    stream = io.StringIO()
    configure_logging("info", "json", stream)
    seen: list[str | None] = []
    client = TestClient(_app(seen))
    fresh = client.get("/items/123")
    given = client.get("/items/456", headers={"X-Request-ID": "abc-123"})
    hostile = client.get("/items/7", headers={"X-Request-ID": "x" * 65})
    missing = client.get("/nowhere")
    assert fresh.status_code == 201 and len(fresh.headers["x-request-id"]) == 16
    assert given.headers["x-request-id"] == "abc-123"
    assert hostile.headers["x-request-id"] != "x" * 65
    assert seen == [fresh.headers["x-request-id"], "abc-123", hostile.headers["x-request-id"]]
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    inside = [line for line in lines if line["event"] == "inside"]
    assert [line["request_id"] for line in inside] == seen
    access = [line for line in lines if line["event"] == "http_request"]
    assert [(a["route"], a["status"]) for a in access] == [
        ("/items/{item_id}", 201),
        ("/items/{item_id}", 201),
        ("/items/{item_id}", 201),
        ("(no route)", 404),
    ]
    assert [a["request_id"] for a in access] == [
        r.headers["x-request-id"] for r in (fresh, given, hostile, missing)
    ]
    assert all(a["duration_ms"] >= 0 and a["method"] == "GET" for a in access)
    assert not any("123" in a["route"] for a in access)  # never the raw path


def test_the_app_returns_a_request_id_on_every_answer(restore_root: None) -> None:
    from lensforge.api import create_app
    from lensforge.settings import Settings

    app = create_app(Settings(database_url="sqlite://", executor="inline"))
    with TestClient(app) as client:
        for response in (client.get("/healthz"), client.get("/v1/jobs/nope"), client.get("/")):
            assert len(response.headers["x-request-id"]) == 16
