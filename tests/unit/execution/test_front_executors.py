"""The in-process executor and the server's end of the worker channel
(``executors/inline.py``, ``channel.py``), with real sockets and a real tool."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from typing import Any

import pytest

from lensforge.blobs import BlobStore
from lensforge.execution.channel import BlockingChannel, ChannelProtocol
from lensforge.execution.executors import CallControl
from lensforge.execution.executors.inline import InlineExecutor
from lensforge.execution.tool_runner import ToolCall, ToolRunner
from lensforge.media import MediaLimits
from tests.unit.execution.front_support import registry


def inline(root: Path) -> InlineExecutor:
    return InlineExecutor(ToolRunner(registry(), BlobStore(root / "blobs"), MediaLimits()))


def test_the_inline_executor_hands_the_tool_its_calls_controls(tmp_path: Path) -> None:
    heard: list[tuple[float, str | None]] = []
    control = CallControl(lambda fraction, text: heard.append((fraction, text)))
    call = ToolCall(plugin="front", tool="steps", inputs={"n": 2}, job_id="j1")
    outcome = asyncio.run(inline(tmp_path).run(call, control))
    assert outcome.error is None and outcome.result == {"cancelled": False}
    assert heard == [(0.5, "step 1"), (1.0, "step 2")]
    control.cancel()
    outcome = asyncio.run(inline(tmp_path).run(call, control))
    assert outcome.result == {"cancelled": True}


async def connected(
    received: list[Any], lost: list[bool]
) -> tuple[ChannelProtocol, BlockingChannel]:
    """The server's protocol on one end of a socket pair, a worker's channel on the other."""
    server_end, worker_end = socket.socketpair()
    worker_end.settimeout(5)  # a channel that never closes fails the test instead of hanging
    protocol = ChannelProtocol(received.extend, lambda: lost.append(True))
    await asyncio.get_running_loop().connect_accepted_socket(lambda: protocol, server_end)
    return protocol, BlockingChannel(worker_end)


def test_the_server_end_closes_its_socket_and_hears_the_loss() -> None:
    async def scenario() -> None:
        received: list[Any] = []
        lost: list[bool] = []
        protocol, worker = await connected(received, lost)
        protocol.send([("run", 1), ("run", 2)])
        assert await asyncio.to_thread(worker.receive) == [("run", 1), ("run", 2)]
        await asyncio.to_thread(worker.send, [("done", 1)])
        for _ in range(200):
            if received:
                break
            await asyncio.sleep(0.005)
        assert received == [("done", 1)]
        protocol.close()
        with pytest.raises(EOFError):  # the worker sees the server's end close
            await asyncio.to_thread(worker.receive)
        for _ in range(200):
            if lost:
                break
            await asyncio.sleep(0.005)
        assert lost == [True]
        with pytest.raises(ConnectionError, match="the worker's channel is closed"):
            protocol.send([("run", 3)])
        protocol.close()  # closing twice is harmless
        worker.close()

    asyncio.run(scenario())


def test_a_worker_gone_is_heard_and_sending_to_it_fails_cleanly() -> None:
    async def scenario() -> None:
        lost: list[bool] = []
        protocol, worker = await connected([], lost)
        worker.close()
        for _ in range(200):
            if lost:
                break
            await asyncio.sleep(0.005)
        assert lost == [True]
        with pytest.raises(ConnectionError):
            protocol.send([("run", 1)])
        protocol.close()

    asyncio.run(scenario())


def test_a_calls_control_cancels_once_and_a_late_listener_hears_it_at_once() -> None:
    control = CallControl()
    heard: list[str] = []
    control.add_cancel_listener(lambda: heard.append("early"))
    assert control.cancelled is False
    control.cancel()
    control.cancel()
    assert control.cancelled and heard == ["early"]
    control.add_cancel_listener(lambda: heard.append("late"))
    assert heard == ["early", "late"]
    assert control.cancel_event.is_set()  # made after the cancel: set from the start


def test_a_cancel_event_made_before_the_cancel_is_set_by_it() -> None:
    control = CallControl()
    event = control.cancel_event
    assert not event.is_set() and control.cancel_event is event
    control.cancel()
    assert event.is_set()


def test_a_retried_call_resumes_from_its_jobs_state_and_checkpoints_reach_the_caller(
    tmp_path: Path,
) -> None:
    saved: list[tuple[dict[str, Any], list[dict[str, Any]]]] = []
    control = CallControl(on_checkpoint=lambda state, items: saved.append((state, items)))
    call = ToolCall(plugin="front", tool="resumes", inputs={}, job_id="j1")
    assert asyncio.run(inline(tmp_path).run(call, control)).result == {"resume": None}
    resumed = CallControl(on_checkpoint=lambda state, items: None, resume={"at": 7})
    assert asyncio.run(inline(tmp_path).run(call, resumed)).result == {"resume": {"at": 7}}
    assert saved == [({"at": 1}, [{"index": 0}])]
