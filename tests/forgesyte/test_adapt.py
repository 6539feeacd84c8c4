"""adapt() on its own: what makes a ForgeSyte plugin unfit, said at registration."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

import pytest

from lensforge.errors import RegistrationError, ValidationError
from lensforge.forgesyte import adapt, frame_progress, parse_frame_progress
from lensforge.forgesyte.adapter import bind
from lensforge.forgesyte.schemas import read_only_copy, with_media
from lensforge.media import Video
from lensforge.plugin import ToolContext
from lensforge.tools import collect_tools
from tests.video.clips import write_scene_clip, write_with

IMAGE = {"type": "string", "format": "binary"}


def _plugin(name: str = "demo", **tools: dict[str, Any]) -> type:
    class Demo:
        def __init__(self) -> None:
            self.name = name
            self.tools = tools

        def count(self, image_bytes: bytes, times: int = 1) -> dict[str, int]:
            return {"count": len(image_bytes) * times}

    return Demo


def test_a_handler_naming_no_method_is_refused_with_plugin_and_tool() -> None:
    broken = _plugin(
        x={"description": "x", "input_schema": {}, "output_schema": {}, "handler": "nope"}
    )
    with pytest.raises(RegistrationError, match=r"ForgeSyte plugin 'demo', tool 'x': .*'nope'"):
        adapt(broken)


def test_an_input_the_handler_cannot_take_is_refused() -> None:
    odd = _plugin(
        x={
            "description": "x",
            "input_schema": {"image_bytes": IMAGE, "colour": {"type": "string"}},
            "output_schema": {},
            "handler": "count",
        }
    )
    with pytest.raises(RegistrationError, match=r"takes no argument\(s\) \['colour'\]"):
        adapt(odd)


def test_a_video_tool_takes_a_video_and_gets_a_read_only_copy_removed_afterwards(
    tmp_path: Path,
) -> None:
    seen: dict[str, Any] = {}

    def track(video_path: str, progress_callback: Any = None) -> dict[str, Any]:
        path = Path(video_path)
        seen.update(path=path, mode=path.stat().st_mode & 0o777, data=path.read_bytes())
        progress_callback(1, 4)
        progress_callback(3)  # ForgeSyte's worker lets the total default to the video's
        return {"frames": []}

    video = _plugin(
        v={
            "description": "v",
            "input_schema": {"video_path": {"type": "string"}},
            "output_schema": {"frames": {"type": "array"}},
            "handler": track,
        }
    )
    plugin_cls = adapt(video)
    spec = collect_tools(plugin_cls)["v"]
    assert spec.video_fields == ("video_path",) and spec.media_fields == ()
    assert spec.long  # a video runs long: MCP clients get a task at once
    assert spec.input_schema["properties"]["video_path"]["x-lensforge-media"] == "video"
    assert plugin_cls.forgesyte.tools["v"].video
    assert plugin_cls.forgesyte.manifest["tools"][0]["input_types"] == ["video"]

    clip = write_scene_clip(tmp_path / "clip.mp4", scenes=1, scene_s=0.2)  # 6 frames
    progress: list[tuple[float, str | None]] = []
    ctx = ToolContext(on_progress=lambda fraction, message: progress.append((fraction, message)))
    result = plugin_cls().call_forgesyte(
        plugin_cls.forgesyte.tools["v"], {"video_path": Video.open(clip)}, ctx
    )
    assert result == {"frames": []}
    assert seen["path"] != clip and seen["path"].suffix == ".mp4"
    assert seen["mode"] == 0o444 and seen["data"] == clip.read_bytes()
    assert not seen["path"].exists() and not seen["path"].parent.exists()
    assert progress == [(0.25, "frame 1/4"), (0.5, "frame 3/6")]
    assert clip.stat().st_mode & 0o200  # the original is left as it was


@pytest.mark.parametrize(
    ("container", "codec", "suffix"), [("avi", "mpeg4", ".avi"), ("matroska", "libx264", ".mkv")]
)
def test_the_copy_keeps_the_container_s_extension(
    tmp_path: Path, container: str, codec: str, suffix: str
) -> None:
    clip = write_with(tmp_path / "clip", container, codec, frames=5)
    with contextlib.ExitStack() as files:
        copy = Path(read_only_copy(Video.open(clip), files))
        assert copy.suffix == suffix and copy.read_bytes() == clip.read_bytes()
    assert not copy.exists()


def test_a_manifest_saying_video_adds_the_video_path_argument() -> None:
    schema, media = with_media(None, ["video"])
    assert media == ("video_path",) and schema["required"] == ["video_path"]
    assert schema["properties"]["video_path"]["x-lensforge-media"] == "video"
    schema, media = with_media({"type": "object", "properties": {"n": {}}}, ["image_bytes"])
    assert media == ("image_bytes",) and list(schema["properties"]) == ["n", "image_bytes"]


def test_a_name_that_cannot_be_a_lensforge_name_points_at_the_rename_setting() -> None:
    tool = {
        "description": "c",
        "input_schema": {"image_bytes": IMAGE},
        "output_schema": {},
        "handler": "count",
    }
    with pytest.raises(RegistrationError, match="LENSFORGE_FORGESYTE_RENAME=9lives:new_name"):
        adapt(_plugin("9lives", c=tool))
    renamed = adapt(_plugin("9lives", c=tool), rename={"9lives": "nine_lives"})
    assert renamed.name == "nine_lives"
    assert renamed.forgesyte.plugin_id == "9lives"


def test_an_object_entry_point_and_an_async_handler_run() -> None:
    class Async:
        name = "async-demo"

        def __init__(self) -> None:
            self.tools = {
                "wait": {
                    "description": "waits",
                    "input_schema": {"image_bytes": IMAGE},
                    "output_schema": {"n": {"type": "integer"}},
                    "handler": self.wait,
                }
            }

        async def wait(self, image_bytes: bytes) -> dict[str, int]:
            return {"n": len(image_bytes)}

    plugin_cls = adapt(Async())  # an object, not a class
    spec = collect_tools(plugin_cls)["wait"]
    assert not spec.long  # an image tool answers in the call
    instance = plugin_cls()
    pending = spec.function(instance, {"image_bytes": b"abc"}, ToolContext())
    assert asyncio.run(pending) == {"n": 3}


def test_binding_gathers_unnamed_inputs_into_options_and_wires_progress() -> None:
    seen: list[tuple[float, str | None]] = []

    def handler(
        image_bytes: bytes, options: dict[str, Any] | None = None, progress_callback: Any = None
    ) -> None:
        return None

    kwargs = bind(
        handler,
        {"image_bytes": b"x", "options": {"a": 1}, "b": 2},
        lambda c, t: seen.append((c, t)),
    )
    assert kwargs["options"] == {"a": 1, "b": 2}
    kwargs["progress_callback"](2, 4)
    assert seen == [(2, 4)]

    def strict(image_bytes: bytes) -> None:
        return None

    with pytest.raises(ValidationError, match="takes no input"):
        bind(strict, {"image_bytes": b"x", "extra": 1}, lambda c, t: None)


def test_frame_progress_round_trips() -> None:
    fraction, message = frame_progress(3, 12)
    assert fraction == 0.25
    assert parse_frame_progress(message) == (3, 12)
    assert parse_frame_progress("half way") is None
    assert frame_progress(1, 0) == (0.0, "frame 1/0")
