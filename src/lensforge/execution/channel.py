"""The wire between the server and a worker process: length-prefixed pickle frames.

Many frames travel in one write and arrive in one read: when jobs are short, the server
hands a worker several calls at once and the worker answers several at once, so a context
switch (the dearest part of a short job) is paid per batch rather than per job. The server
side is an asyncio protocol (non-blocking writes, buffered by the transport); the worker side
is a plain blocking socket.
"""

from __future__ import annotations

import asyncio
import pickle
import socket
import struct
from collections.abc import Callable, Iterable
from typing import Any, cast

_HEADER = struct.Struct("!I")
_READ_SIZE = 1 << 16


def frame(message: Any) -> bytes:
    payload = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return _HEADER.pack(len(payload)) + payload


class Frames:
    """Reassembles frames from a byte stream."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[Any]:
        """The messages completed by ``data``, in order."""
        buffer = self._buffer
        buffer += data
        messages = []
        start = 0
        while len(buffer) - start >= _HEADER.size:
            (size,) = _HEADER.unpack_from(buffer, start)
            end = start + _HEADER.size + size
            if len(buffer) < end:
                break
            messages.append(pickle.loads(memoryview(buffer)[start + _HEADER.size : end]))
            start = end
        if start:
            del buffer[:start]
        return messages


class BlockingChannel:
    """The worker's end: blocking reads that return every message already here."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._frames = Frames()

    def receive(self) -> list[Any]:
        """Wait for at least one message; return it with any others that came with it."""
        while True:
            data = self.sock.recv(_READ_SIZE)
            if not data:
                raise EOFError("the other end closed the channel")
            messages = self._frames.feed(data)
            if messages:
                return messages

    def send(self, messages: Iterable[Any]) -> None:
        self.sock.sendall(b"".join(frame(m) for m in messages))

    def close(self) -> None:
        self.sock.close()


class ChannelProtocol(asyncio.Protocol):
    """The server's end: messages are handed to ``on_messages``; ``on_lost`` at EOF."""

    def __init__(
        self, on_messages: Callable[[list[Any]], None], on_lost: Callable[[], None]
    ) -> None:
        self._frames = Frames()
        self.on_messages = on_messages
        self.on_lost = on_lost
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses

    def data_received(self, data: bytes) -> None:
        messages = self._frames.feed(data)
        if messages:
            self.on_messages(messages)

    def eof_received(self) -> bool:
        return False  # close our end too; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.on_lost()

    def send(self, messages: Iterable[Any]) -> None:
        """Queue the messages for writing; never blocks (the transport buffers)."""
        if self.transport is None or self.transport.is_closing():
            raise ConnectionError("the worker's channel is closed")
        self.transport.write(b"".join(frame(m) for m in messages))

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
