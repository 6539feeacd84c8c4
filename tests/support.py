"""Test helpers: images made in code, and deterministic test plugins.

The test plugins are registered by the tests (``extra_plugins=``), never through entry
points, so a production install never enables them.
"""

from __future__ import annotations

import base64
import io
import os
import socket
import time
from typing import Any

from pydantic import BaseModel

from lensforge import Image, Plugin, ToolContext, schema_tool, tool


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def png(width: int = 32, height: int = 24, color: tuple[int, int, int] = (200, 10, 10)) -> bytes:
    from PIL import Image as PILImage

    buffer = io.BytesIO()
    PILImage.new("RGB", (width, height), color).save(buffer, "PNG")
    return buffer.getvalue()


def jpeg(
    width: int = 32, height: int = 24, color: tuple[int, int, int] = (10, 200, 10), **save: Any
) -> bytes:
    from PIL import Image as PILImage

    buffer = io.BytesIO()
    PILImage.new("RGB", (width, height), color).save(buffer, "JPEG", **save)
    return buffer.getvalue()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Echoed(BaseModel):
    text: str
    times: int


class Testing(Plugin):
    """Deterministic tools for exercising the execution path."""

    name = "testing"
    version = "0.0.1"

    @tool
    def noop(self) -> dict[str, bool]:
        """Do nothing, quickly."""
        return {"ok": True}

    @tool
    def echo(self, text: str, times: int = 1) -> Echoed:
        """Return the text and how many times it was asked for."""
        return Echoed(text=text, times=times)

    @tool
    def size(self, image: Image) -> dict[str, int]:
        """Width and height of an image."""
        return {"width": image.width, "height": image.height}

    @tool
    def fail(self, message: str = "boom") -> dict[str, str]:
        """Raise a RuntimeError."""
        raise RuntimeError(message)

    @tool
    def bad_output(self) -> Echoed:
        """Return the wrong shape."""
        return {"text": 5}  # type: ignore[return-value]

    @tool(timeout_s=30)
    def sleep(self, seconds: float = 0.1, ctx: ToolContext | None = None) -> dict[str, float]:
        """Sleep, checking for cancellation and reporting progress."""
        assert ctx is not None
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            ctx.check_cancelled()
            remaining = deadline - time.monotonic()
            ctx.progress(1 - remaining / seconds, "sleeping")
            time.sleep(min(0.02, max(remaining, 0)))
        return {"slept": seconds}

    @tool
    def pid(self) -> dict[str, int]:
        """The process id the tool runs in."""
        return {"pid": os.getpid()}

    @schema_tool(
        input_schema={
            "type": "object",
            "properties": {"word": {"type": "string", "minLength": 1}, "n": {"type": "integer"}},
            "required": ["word"],
            "additionalProperties": False,
        },
        output_schema={
            "type": "object",
            "properties": {"words": {"type": "array", "items": {"type": "string"}}},
            "required": ["words"],
        },
    )
    def repeat(self, inputs: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
        """Repeat a word n times (a tool declared as JSON Schema)."""
        return {"words": [inputs["word"]] * inputs.get("n", 2)}


class Single(Plugin):
    """A plugin with one tool: callers may omit the tool name."""

    name = "single"
    version = "1.0.0"

    @tool
    def only(self, value: int = 1) -> dict[str, int]:
        """Double a number."""
        return {"value": value * 2}


class Chaos(Plugin):
    """Tools that misbehave on purpose: hang, crash, exhaust memory, flake."""

    name = "chaos"
    version = "0.0.1"

    @tool(timeout_s=60)
    def hang(self, ctx: ToolContext | None = None) -> dict[str, bool]:
        """Never return, ignoring cancellation (only a kill stops it)."""
        while True:
            time.sleep(0.05)

    @tool
    def segfault(self) -> dict[str, bool]:
        """Crash the process with a segmentation fault."""
        import ctypes

        ctypes.string_at(0)
        return {"unreachable": True}

    @tool
    def exit(self) -> dict[str, bool]:
        """Leave the process at once, skipping every cleanup."""
        os._exit(3)

    @tool
    def crash_after(self, seconds: float = 0.5) -> dict[str, bool]:
        """Work a while, then leave the process at once."""
        time.sleep(seconds)
        os._exit(4)

    @tool
    def allocate(self, megabytes: int = 8192) -> dict[str, int]:
        """Allocate (and touch) far more memory than a worker may have."""
        block = bytearray(megabytes * 1024 * 1024)
        return {"allocated": len(block)}

    @tool(retry_on=("plugin_error",), max_attempts=3)
    def flaky(self, marker: str, failures: int = 2) -> dict[str, int]:
        """Fail `failures` times (counted in the marker file), then succeed."""
        with open(marker, "a+") as handle:
            handle.seek(0)
            seen = len(handle.read())
            handle.write("x")
        if seen < failures:
            raise RuntimeError(f"flake {seen + 1}")
        return {"attempt": seen + 1}

    @tool
    def record(self, path: str, pause: float = 0.02) -> dict[str, str]:
        """Sleep briefly, then append the job's marker to a file (to count completions)."""
        time.sleep(pause)
        with open(path, "a") as handle:
            handle.write("done\n")
        return {"path": path}
