"""``Video``: the media input type of video tools.

Callers upload a video (streamed to the blob store and probed there) or name a stored blob;
a job holds ``{"blob": "sha256:..."}``. The ToolRunner turns that reference into a
:class:`Video`: a read-only local file, already probed (:class:`VideoInfo`), whose frames a
tool reads one at a time with :meth:`Video.frames`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import core_schema

from lensforge.video.frames import Frame, Sampling, iter_frames
from lensforge.video.probe import VideoInfo, VideoLimits, probe_video

VIDEO_JSON_SCHEMA: dict[str, Any] = {
    "title": "Video",
    "description": "A video (MP4, MOV, WebM, MKV, AVI): a reference to a stored blob "
    "(upload it with POST /v1/blobs), or a multipart upload.",
    "type": "object",
    "properties": {"blob": {"type": "string", "pattern": "^sha256:[0-9a-f]{64}$"}},
    "required": ["blob"],
    "x-lensforge-media": "video",
}


class Video:
    """A checked video handed to a tool: ``path`` (read-only), ``info``, ``frames()``."""

    def __init__(self, path: Path, info: VideoInfo, *, blob: str | None = None) -> None:
        self.path = path
        self.info = info
        self.blob = blob

    @classmethod
    def open(
        cls, path: Path, limits: VideoLimits | None = None, *, blob: str | None = None
    ) -> Video:
        """Probe ``path`` with every check applied (see :mod:`lensforge.video.probe`)."""
        return cls(path, probe_video(path, limits), blob=blob)

    def frames(
        self,
        sampling: Sampling | None = None,
        *,
        start_frame: int = 0,
        max_side: int | None = None,
    ) -> Iterator[Frame]:
        """Decoded frames, one at a time (see :func:`lensforge.video.frames.iter_frames`)."""
        return iter_frames(self.path, sampling, start_frame=start_frame, max_side=max_side)

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: type[Any], handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        # Inside a job a video is a blob reference; the ToolRunner swaps it for a Video.
        return core_schema.no_info_plain_validator_function(_validate_video_ref)

    @classmethod
    def __get_pydantic_json_schema__(
        cls, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return VIDEO_JSON_SCHEMA


def _validate_video_ref(value: Any) -> Any:
    from lensforge.blobs import parse_digest
    from lensforge.media import MediaRef

    if isinstance(value, Video | MediaRef):
        return value
    if isinstance(value, dict) and set(value) <= {"blob", "media_type"} and "blob" in value:
        return MediaRef(f"sha256:{parse_digest(value['blob'])}")
    raise ValueError("expected a video: {'blob': 'sha256:<hex>'} (upload it first)")
