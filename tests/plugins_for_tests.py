"""Every plugin the tests register, in one place.

They are registered by the tests (``extra_plugins=``), never through entry points, so a
production install never enables them. They live at module level so that worker processes
can import them by their path (``tests.plugins_for_tests:Testing``).

- :class:`Testing`, :class:`Single`: deterministic tools for the execution path
  (:data:`TEST_PLUGINS`); :class:`Chaos`: tools that hang, crash, exhaust memory or flake.
- :class:`Shapes`: free-form JSON input, to reach the front door's shape caps.
- :class:`Artist`: produces an image (an artifact) and names blobs it did not produce.
- :class:`Typed`, :class:`Ported`, :class:`Unstorable`: the spec machinery's cases (schemas
  from hints, JSON-Schema tools, results the store cannot hold).
- :class:`NeedsPackage`, :class:`NeedsBinary`, :class:`BrokenSetup`,
  :class:`SetupImportError`: the lifecycle's UNAVAILABLE and FAILED states.
"""

from __future__ import annotations

import os
import time
from typing import Any

from pydantic import BaseModel, Field

from lensforge import Image, ImageArtifact, Plugin, ToolContext, schema_tool, tool

MISSING_PACKAGE = "lensforge_surely_missing_package_xyz"
MISSING_BINARY = "lensforge-surely-missing-binary"


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


TEST_PLUGINS: list[type[Plugin]] = [Testing, Single]


class Shapes(Plugin):
    """A tool that takes free-form JSON, to reach the shape caps (depth, string length)."""

    name = "shapes"
    version = "0.0.1"

    @tool
    def count(self, data: dict[str, Any]) -> dict[str, int]:
        """How many keys the object has."""
        return {"keys": len(data)}


class Artist(Plugin):
    """Produces an image (an artifact), and names a blob it did not produce."""

    name = "artist"

    @tool
    def tint(self, image: Image) -> ImageArtifact:
        """A copy of the image in one colour."""
        from PIL import Image as PILImage

        return ImageArtifact.from_pil(PILImage.new("RGB", (image.width, image.height), (1, 2, 3)))

    @tool
    def name_blob(self, digest: str) -> dict[str, Any]:
        """A result that names a blob by its digest."""
        return {"copy": {"blob": f"sha256:{digest}"}}


class Found(BaseModel):
    label: str
    score: float = Field(ge=0, le=1)


class Typed(Plugin):
    """A plugin whose schemas come from its hints."""

    name = "typed"
    version = "2.0.0"

    @tool(timeout_s=5)
    def detect(
        self,
        image: Image,
        threshold: float = 0.5,
        labels: list[str] | None = None,
        ctx: ToolContext | None = None,
    ) -> list[Found]:
        """Find things in an image.

        The first paragraph and the rest both belong to the description.
        """
        return []

    @tool(name="count_words", description="Count the words.")
    def words(self, text: str) -> int:
        """Ignored: the decorator's description wins."""
        return len(text.split())


class Ported(Plugin):
    """Tools declared as JSON Schema dicts plus a handler, as ported from an MCP server."""

    name = "ported"

    @schema_tool(
        input_schema={
            "type": "object",
            "properties": {
                "picture": {"type": "string", "contentMediaType": "image/png"},
                "k": {"type": "integer", "minimum": 1},
            },
            "required": ["picture"],
        },
        output_schema={
            "type": "object",
            "properties": {"width": {"type": "integer"}, "k": {"type": "integer"}},
            "required": ["width", "k"],
        },
        description="Ported from a JSON Schema system.",
    )
    def run(self, inputs: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
        return {"width": inputs["picture"].width, "k": inputs.get("k", 1)}

    @schema_tool(
        input_schema={"type": "object", "properties": {"words": {}}},
        output_schema={
            "type": "object",
            "properties": {"words": {"type": "array", "items": {"type": "string"}}},
            "required": ["words"],
        },
    )
    def echo_words(self, inputs: dict[str, Any], ctx: ToolContext) -> Any:
        """Return ``words`` as given, whether or not it fits the output schema."""
        return {"words": inputs.get("words")}


class Unstorable(Plugin):
    """Returns a valid result that the job store cannot serialize."""

    name = "unstorable"

    @tool
    def huge(self) -> int:
        """An integer past 64 bits."""
        return 2**70


class NeedsPackage(Plugin):
    """Needs a Python package that is not installed."""

    name = "needs_package"
    requires_packages = (MISSING_PACKAGE,)
    install_hint = f"pip install {MISSING_PACKAGE}"

    @tool
    def go(self) -> dict[str, bool]:
        """Never runs here."""
        return {"ran": True}


class NeedsBinary(Plugin):
    """Needs a program that is not installed."""

    name = "needs_binary"
    requires_binaries = (MISSING_BINARY,)

    @tool
    def go(self) -> dict[str, bool]:
        """Never runs here."""
        return {"ran": True}


class BrokenSetup(Plugin):
    """setup() raises."""

    name = "broken_setup"

    def setup(self) -> None:
        raise RuntimeError("model file is corrupt")

    @tool
    def go(self) -> dict[str, bool]:
        """Never runs."""
        return {"ran": True}


class SetupImportError(Plugin):
    """setup() finds a dependency missing at run time."""

    name = "setup_import_error"

    def setup(self) -> None:
        import lensforge_surely_missing_package_xyz  # type: ignore[import-not-found]  # noqa: F401

    @tool
    def go(self) -> dict[str, bool]:
        """Never runs."""
        return {"ran": True}
