"""Live frame streams (``execution/streams.py``) in process: frames checked at the door, run
in order on the executor, dropped by policy or rate, and the hub's per-key counts, totals
and closing record."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable
from pathlib import Path

import pytest

from lensforge.blobs import BlobStore
from lensforge.errors import (
    PayloadTooLarge,
    PluginError,
    RateLimited,
    UnsupportedMediaType,
    ValidationError,
)
from lensforge.execution.executors import CallControl
from lensforge.execution.executors.inline import InlineExecutor
from lensforge.execution.streams import StreamHub, StreamLimits, StreamSession
from lensforge.execution.tool_runner import Outcome, ToolCall, ToolRunner
from lensforge.media import MediaLimits
from tests.support import png
from tests.unit.execution.front_support import registry
from tests.unit.execution.support import ScriptedExecutor, fail

REGISTRY = registry()
SIZE = REGISTRY.resolve("front", "size")


def inline_hub(root: Path) -> StreamHub:
    blobs = BlobStore(root / "blobs")
    return StreamHub(
        InlineExecutor(ToolRunner(REGISTRY, blobs, MediaLimits())), blobs, MediaLimits()
    )


def scripted_hub(root: Path, executor: ScriptedExecutor) -> StreamHub:
    return StreamHub(executor, BlobStore(root / "blobs"), MediaLimits(max_pixels=10_000))


async def drain(session: StreamSession) -> list[dict[str, object]]:
    await session.finish()
    return [message async for message in session.messages()]


class Gate:
    """A script that holds each call until released; records the frames' job ids."""

    def __init__(self) -> None:
        self.open = asyncio.Event()
        self.started: list[str] = []

    async def __call__(self, call: ToolCall, control: CallControl) -> Outcome:
        self.started.append(call.job_id or "")
        await self.open.wait()
        return Outcome(result={"job": call.job_id})


async def until(predicate: Callable[[], object]) -> None:
    for _ in range(200):
        if predicate():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("condition not reached")


def test_frames_run_in_order_and_the_hub_keeps_the_totals(tmp_path: Path) -> None:
    async def scenario() -> None:
        hub = inline_hub(tmp_path)
        session = hub.open(SIZE, {}, owner="alice")
        assert hub.snapshot() == {
            "open": 1,
            "opened": 1,
            "frames_in": 0,
            "dropped": 0,
            "results": 0,
            "errors": 0,
        }
        assert hub.open_by_owner == {"alice": 1}
        assert [await session.send(png(8, 6)), await session.send(png(4, 2))] == [0, 1]
        messages = await drain(session)
        assert [(m["type"], m.get("frame"), m.get("result")) for m in messages[:2]] == [
            ("result", 0, {"width": 8, "height": 6}),
            ("result", 1, {"width": 4, "height": 2}),
        ]
        assert all(
            isinstance(m["latency_ms"], float) and m["latency_ms"] >= 0 for m in messages[:2]
        )
        assert messages[2] == {
            "type": "closed",
            "stream_id": session.id,
            "frames_in": 2,
            "dropped": 0,
            "results": 2,
            "errors": 0,
        }
        assert hub.snapshot() == {
            "open": 0,
            "opened": 1,
            "frames_in": 2,
            "dropped": 0,
            "results": 2,
            "errors": 0,
        }
        assert hub.open_by_owner == {}
        assert hub.blobs.exists(hub.blobs.put(png(8, 6)))

    asyncio.run(scenario())


def test_each_frame_is_a_call_with_the_streams_inputs_and_time_limit(tmp_path: Path) -> None:
    async def scenario() -> None:
        executor = ScriptedExecutor()
        hub = scripted_hub(tmp_path, executor)
        spec = REGISTRY.resolve("front", "size")
        session = hub.open(spec, {}, owner="alice", limits=StreamLimits(timeout_s=7.0))
        frame = png(5, 5)
        await session.send(frame)
        await drain(session)
        (call,) = executor.calls
        ref = "sha256:" + hashlib.sha256(frame).hexdigest()
        assert (call.plugin, call.tool) == ("front", "size")
        assert call.inputs == {"image": {"blob": ref}}
        assert call.job_id == f"stream-{session.id}-0"
        assert call.timeout_s == 7.0
        assert hub.blobs.get(ref) == frame

    asyncio.run(scenario())


def test_a_tool_error_answers_that_frame_and_the_stream_goes_on(tmp_path: Path) -> None:
    async def scenario() -> None:
        hub = scripted_hub(tmp_path, ScriptedExecutor(script=fail(PluginError)))
        session = hub.open(SIZE, {}, owner="alice")
        await session.send(png())
        await session.send(png())
        messages = await drain(session)
        assert [(m["type"], m.get("frame")) for m in messages] == [
            ("error", 0),
            ("error", 1),
            ("closed", None),
        ]
        error = messages[0]["error"]
        assert isinstance(error, dict)
        assert (error["code"], error["message"]) == ("plugin_error", "it broke")
        assert messages[2]["errors"] == 2 and messages[2]["results"] == 0
        assert hub.totals["errors"] == 2 and hub.totals["results"] == 0

    asyncio.run(scenario())


def test_a_failing_executor_is_an_internal_error_for_that_frame(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(call: ToolCall, control: CallControl) -> Outcome:
        raise OSError("the executor is gone")

    async def scenario() -> None:
        hub = scripted_hub(tmp_path, ScriptedExecutor(script=broken))
        session = hub.open(SIZE, {}, owner="alice")
        await session.send(png())
        first, summary = await drain(session)
        assert (first["type"], first["frame"]) == ("error", 0)
        error = first["error"]
        assert isinstance(error, dict)
        assert error["code"] == "internal_error"
        assert error["message"] == "The frame could not be run; see the server log."
        assert (error["plugin"], error["tool"]) == ("front", "size")
        assert summary["errors"] == 1 and hub.totals["errors"] == 1
        (logged,) = [r for r in caplog.records if r.exc_info is not None]
        assert logged.getMessage() == f"stream {session.id} frame 0 failed"

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("policy", "dropped", "ran"), [("drop_oldest", 1, 2), ("drop_newest", 2, 1)]
)
def test_a_full_queue_drops_by_policy(tmp_path: Path, policy: str, dropped: int, ran: int) -> None:
    async def scenario() -> None:
        gate = Gate()
        hub = scripted_hub(tmp_path, ScriptedExecutor(script=gate))
        session = hub.open(SIZE, {}, owner="a", policy=policy, limits=StreamLimits(queue=1))
        await session.send(png())
        await until(lambda: gate.started)  # frame 0 runs; the queue holds one more
        await session.send(png())
        await session.send(png())
        gate.open.set()
        messages = await drain(session)
        assert messages[0] == {
            "type": "dropped",
            "frames": [dropped],
            "reason": "queue_full",
            "total": 1,
        }
        assert [m["frame"] for m in messages if m["type"] == "result"] == [0, ran]
        assert messages[-1]["dropped"] == 1 and messages[-1]["frames_in"] == 3
        assert hub.totals["dropped"] == 1 and hub.totals["results"] == 2

    asyncio.run(scenario())


def test_the_block_policy_makes_the_sender_wait_for_room(tmp_path: Path) -> None:
    async def scenario() -> None:
        gate = Gate()
        hub = scripted_hub(tmp_path, ScriptedExecutor(script=gate))
        session = hub.open(SIZE, {}, owner="a", policy="block", limits=StreamLimits(queue=1))
        await session.send(png())
        await until(lambda: gate.started)
        await session.send(png())
        third = asyncio.ensure_future(session.send(png()))
        await asyncio.sleep(0.05)
        assert not third.done()  # the queue is full: the sender waits
        gate.open.set()
        assert await third == 2
        messages = await drain(session)
        assert [m["frame"] for m in messages if m["type"] == "result"] == [0, 1, 2]
        assert messages[-1]["dropped"] == 0

    asyncio.run(scenario())


def test_frames_past_the_rate_limit_are_dropped_until_tokens_refill(tmp_path: Path) -> None:
    async def scenario() -> None:
        hub = scripted_hub(tmp_path, ScriptedExecutor())
        limits = StreamLimits(max_fps=2.0, queue=10)
        session = hub.open(SIZE, {}, owner="a", limits=limits)
        for _ in range(3):
            await session.send(png())
        await asyncio.sleep(0.6)  # 1.2 frames' worth of tokens
        await session.send(png())
        await session.send(png())
        messages = await drain(session)
        drops = [m for m in messages if m["type"] == "dropped"]
        assert drops == [
            {"type": "dropped", "frames": [2], "reason": "rate", "total": 1},
            {"type": "dropped", "frames": [4], "reason": "rate", "total": 2},
        ]
        assert [m["frame"] for m in messages if m["type"] == "result"] == [0, 1, 3]
        assert hub.totals["dropped"] == 2

    asyncio.run(scenario())


def test_a_slow_rate_still_lets_one_frame_through(tmp_path: Path) -> None:
    async def scenario() -> None:
        hub = scripted_hub(tmp_path, ScriptedExecutor())
        session = hub.open(SIZE, {}, owner="a", limits=StreamLimits(max_fps=0.5))
        await session.send(png())
        await session.send(png())
        messages = await drain(session)
        assert [m["type"] for m in messages] == ["dropped", "result", "closed"]
        assert messages[0]["frames"] == [1]

    asyncio.run(scenario())


def test_an_idle_stream_saves_up_at_most_one_seconds_worth_of_frames(tmp_path: Path) -> None:
    async def scenario() -> None:
        hub = scripted_hub(tmp_path, ScriptedExecutor())
        session = hub.open(SIZE, {}, owner="a", limits=StreamLimits(max_fps=1.5, queue=10))
        frame = png()
        await asyncio.sleep(0.4)  # idle: the bucket stays capped at 1.5 tokens
        await session.send(frame)
        await session.send(frame)
        messages = await drain(session)
        assert [m["type"] for m in messages] == ["dropped", "result", "closed"]
        assert messages[0]["frames"] == [1]

    asyncio.run(scenario())


# -- at the door: opening a stream, checking a frame ----------------------------------------


def test_open_refuses_an_unknown_policy_a_tool_without_one_image_and_the_frames_field(
    tmp_path: Path,
) -> None:
    hub = scripted_hub(tmp_path, ScriptedExecutor())
    with pytest.raises(ValidationError) as caught:
        hub.open(SIZE, {}, owner="a", policy="drop_all")
    assert caught.value.message == (
        "Unknown back-pressure policy 'drop_all'; one of drop_oldest, drop_newest, block."
    )
    assert caught.value.details == {"policy": "drop_all"}
    with pytest.raises(ValidationError) as caught:
        hub.open(REGISTRY.resolve("front", "steps"), {}, owner="a")
    assert caught.value.message == (
        "front.steps does not take exactly one image, so it cannot run on a stream's frames; "
        "stream an image tool (e.g. image.info)."
    )
    assert caught.value.details == {"media_fields": []}
    with pytest.raises(ValidationError) as caught:
        hub.open(SIZE, {"image": "AAAA"}, owner="a")
    assert caught.value.message == (
        "'image' comes from each frame; do not pass it when opening the stream."
    )
    assert caught.value.details == {"field": "image"}
    assert hub.snapshot()["opened"] == 0 and hub.open_by_owner == {}


def test_each_key_has_its_limit_of_open_streams(tmp_path: Path) -> None:
    async def scenario() -> None:
        hub = scripted_hub(tmp_path, ScriptedExecutor())
        limits = StreamLimits(max_per_key=2)
        first = hub.open(SIZE, {}, owner="alice", limits=limits)
        second = hub.open(SIZE, {}, owner="alice", limits=limits)
        with pytest.raises(RateLimited) as caught:
            hub.open(SIZE, {}, owner="alice", limits=limits)
        assert caught.value.message == (
            "This key already has 2 open streams (the limit); close one first."
        )
        assert caught.value.details == {"max_streams_per_key": 2}
        other = hub.open(SIZE, {}, owner="bob", limits=limits)  # another key is spared
        assert hub.open_by_owner == {"alice": 2, "bob": 1}
        await drain(first)
        assert hub.open_by_owner == {"alice": 1, "bob": 1}
        hub.closed(first)  # a second close changes nothing
        assert hub.open_by_owner == {"alice": 1, "bob": 1} and hub.active == 2
        third = hub.open(SIZE, {}, owner="alice", limits=limits)
        for session in (second, other, third):
            await drain(session)
        assert hub.open_by_owner == {} and hub.snapshot()["opened"] == 4

    asyncio.run(scenario())


def test_a_frame_is_checked_for_size_then_for_being_an_image(tmp_path: Path) -> None:
    async def scenario() -> None:
        hub = scripted_hub(tmp_path, ScriptedExecutor())
        frame = png(6, 6)
        session = hub.open(SIZE, {}, owner="a", limits=StreamLimits(max_frame_bytes=len(frame)))
        with pytest.raises(PayloadTooLarge) as caught:
            await session.send(frame + b"\x00")
        assert caught.value.message == (
            f"A frame of {len(frame) + 1} bytes is over this stream's limit of {len(frame)} bytes."
        )
        assert caught.value.details == {
            "bytes": len(frame) + 1,
            "max_frame_bytes": len(frame),
        }
        with pytest.raises(UnsupportedMediaType):
            await session.send(b"not an image at all")
        with pytest.raises(PayloadTooLarge):  # the hub's media limits: 10,000 pixels
            await session.send(png(101, 100)[: len(frame)])
        assert await session.send(frame) == 0  # exactly at the limit: accepted
        messages = await drain(session)
        assert messages[-1]["frames_in"] == 1 and hub.totals["frames_in"] == 1

    asyncio.run(scenario())


def test_a_closed_stream_is_logged_with_its_figures(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def scenario() -> StreamSession:
        hub = scripted_hub(tmp_path, ScriptedExecutor())
        session = hub.open(SIZE, {}, owner="alice")
        await session.send(png())
        await drain(session)
        return session

    with caplog.at_level(logging.INFO, logger="lensforge.execution.streams"):
        session = asyncio.run(scenario())
    (record,) = [r for r in caplog.records if getattr(r, "event", None) == "stream_closed"]
    assert record.getMessage() == (
        f"stream {session.id} closed: front.size by alice, 1 frames in, 0 dropped, 1 results"
    )
    facts = {k: getattr(record, k) for k in ("stream_id", "tool", "owner", "frames_in")}
    assert facts == {
        "stream_id": session.id,
        "tool": "front.size",
        "owner": "alice",
        "frames_in": 1,
    }
    assert (record.dropped, record.results) == (0, 1)  # type: ignore[attr-defined]
    assert 0 <= record.duration_s < 60  # type: ignore[attr-defined]


def test_an_aborted_stream_stops_and_frees_its_place(tmp_path: Path) -> None:
    async def scenario() -> None:
        gate = Gate()
        hub = scripted_hub(tmp_path, ScriptedExecutor(script=gate))
        session = hub.open(SIZE, {}, owner="alice", limits=StreamLimits(max_per_key=1))
        await session.send(png())
        await until(lambda: gate.started)
        session.abort()
        await until(lambda: hub.active == 0)
        assert hub.open_by_owner == {}
        assert [m async for m in session.messages()] == []  # the reader is released
        hub.open(SIZE, {}, owner="alice", limits=StreamLimits(max_per_key=1)).abort()

    asyncio.run(scenario())
