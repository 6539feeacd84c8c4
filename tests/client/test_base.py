"""What both clients share, checked without a server: requests, errors, progress streams.

A mock transport answers as the server would; every behaviour is checked on :class:`Client`
and on :class:`AsyncClient`, which must differ only in I/O.
"""

from __future__ import annotations

import asyncio
import inspect
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from lensforge.client import AsyncClient, Client, ConnectionFailed, JobInfo, JobResult
from lensforge.client.progress import EventParser, ProgressWatch
from lensforge.errors import LensForgeError, PluginError, RateLimited
from tests.support import png

Handler = Callable[[httpx.Request], httpx.Response]


def job_view(status: str, progress: float = 0.0) -> dict[str, Any]:
    return {
        "id": "j1",
        "plugin": "testing",
        "tool": "sleep",
        "status": status,
        "progress": progress,
    }


def sse(*events: tuple[str, dict[str, Any]]) -> str:
    return "".join(
        f": keep-alive\nevent: {name}\ndata: {json.dumps(data)}\n\n" for name, data in events
    )


def call(kind: str, handler: Handler, use: Callable[[Any], Any]) -> Any:
    """``use(client)`` on a sync or an async client over ``handler`` (awaited when async)."""
    if kind == "sync":
        with Client("http://lf.test", transport=httpx.MockTransport(handler)) as client:
            answer = use(client)
            return list(answer) if inspect.isgenerator(answer) else answer

    async def go() -> Any:
        transport = httpx.MockTransport(handler)
        async with AsyncClient("http://lf.test", transport=transport) as client:
            answer = use(client)
            if asyncio.iscoroutine(answer):
                return await answer
            return [item async for item in answer]  # an async iterator

    return asyncio.run(go())


KINDS = pytest.mark.parametrize("kind", ["sync", "async"])


@KINDS
def test_inputs_go_as_json_and_images_as_multipart(kind: str) -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"job_id": "j1", "status": "SUCCESS", "result": {"n": 1}})

    done = call(kind, answer, lambda lf: lf.run("testing.echo", text="hi", opts={"a": 1}))
    assert done == JobResult("j1", "SUCCESS", {"n": 1})
    call(kind, answer, lambda lf: lf.run("testing.size", png(3, 2), timeout_s=5, times=2))
    plain, upload = seen
    assert plain.url.path == "/v1/analyze"
    assert json.loads(plain.content) == {
        "plugin": "testing.echo",
        "inputs": {"text": "hi", "opts": {"a": 1}},
    }
    assert upload.headers["Content-Type"].startswith("multipart/form-data")
    body = upload.read()
    assert b'name="image"' in body and png(3, 2) in body
    assert b'{"times": 2}' in body and b'name="timeout_s"\r\n\r\n5' in body


@KINDS
def test_submit_sends_the_idempotency_key_and_jobs_its_filters(kind: str) -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path == "/v1/jobs" and request.method == "GET":
            return httpx.Response(200, json={"jobs": [job_view("FAILED")]})
        return httpx.Response(202, json={"job_id": "j1", "status": "PENDING"})

    job = call(kind, answer, lambda lf: lf.submit("testing.noop", idempotency_key="k-1"))
    assert job.id == "j1"
    listed = call(kind, answer, lambda lf: lf.jobs(status="failed", tool="sleep", limit=5))
    assert listed == [JobInfo.from_view(job_view("FAILED"))]
    assert seen[0].headers["Idempotency-Key"] == "k-1"
    assert dict(seen[1].url.params) == {"limit": "5", "status": "FAILED", "tool": "sleep"}


@KINDS
def test_error_envelopes_become_typed_errors(kind: str) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/plugins":
            envelope = {"error": {"code": "rate_limited", "message": "slow down", "details": {}}}
            return httpx.Response(429, json=envelope, headers={"Retry-After": "3"})
        if request.url.path == "/v1/analyze":
            envelope = {"error": {"code": "plugin_error", "message": "boom", "job_id": "j9"}}
            return httpx.Response(502, json=envelope)
        return httpx.Response(502, text="<html>bad gateway</html>")

    with pytest.raises(RateLimited) as limited:
        call(kind, answer, lambda lf: lf.plugins())
    assert limited.value.headers == {"Retry-After": "3"}
    with pytest.raises(PluginError) as failed:
        call(kind, answer, lambda lf: lf.analyze("testing.fail"))
    assert (failed.value.message, failed.value.job_id) == ("boom", "j9")
    with pytest.raises(LensForgeError) as other:
        call(kind, answer, lambda lf: lf.job("j1").info())
    assert other.value.code == "internal_error" and other.value.details == {"status": 502}


@KINDS
def test_an_unreachable_server_is_connection_failed(kind: str) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    with pytest.raises(ConnectionFailed) as failed:
        call(kind, refuse, lambda lf: lf.plugins())
    assert failed.value.details == {"server": "http://lf.test"}
    with pytest.raises(ConnectionFailed):
        call(kind, refuse, lambda lf: lf.job("j1").progress())


@KINDS
def test_a_slow_analysis_is_followed_to_its_result(kind: str) -> None:
    """The server's wait ran out: the client follows the stream, then reads the result."""

    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/analyze":
            return httpx.Response(200, json={"job_id": "j1", "status": "RUNNING"})
        if request.url.path == "/v1/jobs/j1/stream":
            events = sse(("update", job_view("RUNNING", 0.5)), ("done", job_view("SUCCESS", 1)))
            return httpx.Response(200, text=events + sse(("update", job_view("FAILED"))))
        assert request.url.path == "/v1/jobs/j1/result"
        return httpx.Response(200, json={"result": {"slept": 1}})

    assert call(kind, answer, lambda lf: lf.run("testing.sleep")) == JobResult(
        "j1", "SUCCESS", {"slept": 1}
    )
    updates = call(kind, answer, lambda lf: lf.job("j1").progress())
    assert [(u.status, u.progress) for u in updates] == [("RUNNING", 0.5), ("SUCCESS", 1)]


@KINDS
def test_a_stream_that_ends_early_is_reopened(kind: str) -> None:
    opened: list[int] = []

    def answer(request: httpx.Request) -> httpx.Response:
        opened.append(1)
        if len(opened) == 1:
            return httpx.Response(200, text=sse(("update", job_view("PENDING"))))
        return httpx.Response(200, text=sse(("update", job_view("CANCELLED"))))

    updates = call(kind, answer, lambda lf: lf.job("j1").progress(timeout=10))
    assert [u.status for u in updates] == ["PENDING", "CANCELLED"] and len(opened) == 2


def test_the_event_parser_and_the_watch() -> None:
    parser = EventParser()
    lines = [": comment", "event: update", 'data: {"a":', "data: 1}", "", "", 'data: {"b": 2}', ""]
    assert list(parser.events(lines)) == [("update", {"a": 1}), ("message", {"b": 2})]
    watch = ProgressWatch("j1", 0)
    with pytest.raises(TimeoutError, match="j1 did not finish within 0 s"):
        watch.read_timeout()
    assert 0 < ProgressWatch("j1", None).read_timeout() <= 30
    assert watch.update(("update", job_view("SUCCESS"))).terminal and watch.done


def test_outcome_is_a_deprecated_name_of_job_result() -> None:
    import lensforge.client

    with pytest.warns(DeprecationWarning, match="JobResult"):
        assert lensforge.client.Outcome is JobResult
    with pytest.raises(AttributeError):
        lensforge.client.Nothing  # noqa: B018


def test_the_progress_bar_counts_frames_for_a_video_tool() -> None:
    from lensforge.cli.remote_call import bar_position
    from lensforge.client import JobInfo

    video = JobInfo("j", "video", "analyze", "RUNNING", 0.4, "frame 36 of 90")
    assert bar_position(video) == (36, 90, "36/90 frames")
    image = JobInfo("j", "image", "quality", "RUNNING", 0.25, "scoring")
    assert bar_position(image) == (0.25, 1.0, "25%")
