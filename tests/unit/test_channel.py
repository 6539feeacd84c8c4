"""The worker channel's framing: any split of the byte stream gives back the same messages."""

from __future__ import annotations

import socket
import threading

from hypothesis import given
from hypothesis import strategies as st

from lensforge.execution.channel import BlockingChannel, Frames, frame

MESSAGES = st.lists(
    st.tuples(st.sampled_from(["run", "done", "progress"]), st.text(max_size=50), st.integers()),
    min_size=1,
    max_size=20,
)


@given(MESSAGES, st.lists(st.integers(min_value=1, max_value=64), min_size=1, max_size=50))
def test_frames_survive_any_split(messages: list[tuple[str, str, int]], cuts: list[int]) -> None:
    stream = b"".join(frame(m) for m in messages)
    frames = Frames()
    received: list[object] = []
    position = 0
    for cut in cuts * (len(stream) // max(sum(cuts), 1) + 1):
        if position >= len(stream):
            break
        received += frames.feed(stream[position : position + cut])
        position += cut
    received += frames.feed(stream[position:])
    assert received == messages


def test_a_partial_frame_waits_for_the_rest() -> None:
    data = frame(("done", "job", 1))
    frames = Frames()
    assert frames.feed(data[:3]) == []
    assert frames.feed(data[3:-1]) == []
    assert frames.feed(data[-1:]) == [("done", "job", 1)]


def test_blocking_channel_returns_every_message_already_sent() -> None:
    a, b = socket.socketpair()
    left, right = BlockingChannel(a), BlockingChannel(b)
    try:
        left.send([("run", i) for i in range(5)])
        got: list[object] = []
        while len(got) < 5:
            got += right.receive()
        assert got == [("run", i) for i in range(5)]
        assert len(got) == 5
    finally:
        left.close()
        right.close()


def test_blocking_channel_raises_eof_when_the_other_end_closes() -> None:
    a, b = socket.socketpair()
    right = BlockingChannel(b)
    errors: list[BaseException] = []

    def read() -> None:
        try:
            right.receive()
        except EOFError as exc:
            errors.append(exc)

    reader = threading.Thread(target=read)
    reader.start()
    a.close()
    reader.join(timeout=10)
    assert not reader.is_alive()
    assert len(errors) == 1
    right.close()
