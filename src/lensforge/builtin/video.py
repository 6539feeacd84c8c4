"""The ``video`` plugin: facts about a video, frames as images, and scene cuts.

Every tool reads frames one at a time (memory stays at one frame), reports progress in
frames, and stops between frames when its job is cancelled. ``video.analyze`` and
``video.track`` run image tools over sampled frames through the same ToolRunner as any
call (see docs/video.md).
"""

from __future__ import annotations

from collections.abc import Iterator

from pydantic import BaseModel, Field

from lensforge.plugin import Plugin, ToolContext, tool
from lensforge.results import ImageArtifact
from lensforge.video import Frame, Sampling, detect_cuts
from lensforge.video.media import Video
from lensforge.video.scenes import DEFAULT_CONTRAST, DEFAULT_THRESHOLD

MAX_FRAMES_OUT = 500  # frames video.frames returns at most (each is a stored image)


class AudioStreamInfo(BaseModel):
    codec: str
    channels: int
    sample_rate: int


class VideoFacts(BaseModel):
    container: str = Field(description="mp4 (also MOV), webm, mkv or avi, read from the bytes.")
    media_type: str
    codec: str = Field(description="Video codec (FFmpeg's name: h264, hevc, vp9, av1, mpeg4).")
    width: int
    height: int
    fps: float = Field(description="Average frame rate.")
    duration_s: float
    frame_count: int
    rotation: int = Field(description="Display rotation in degrees from the file's metadata.")
    file_size: int
    audio: list[AudioStreamInfo]


class FrameImage(BaseModel):
    index: int = Field(description="Frame number, from 0.")
    timestamp_s: float
    image: ImageArtifact


class Frames(BaseModel):
    frames: list[FrameImage]


class SceneCut(BaseModel):
    frame: int = Field(description="The first frame of the new scene.")
    timestamp_s: float
    score: float = Field(description="Mean absolute difference of 64x36 thumbnails, 0-255.")


class Scene(BaseModel):
    start_frame: int
    end_frame: int = Field(description="Last frame of the scene (inclusive).")
    start_s: float
    end_s: float


class Scenes(BaseModel):
    cuts: list[SceneCut]
    scenes: list[Scene]
    method: str


def _progress(ctx: ToolContext | None, done: int, total: int) -> None:
    if ctx is not None:
        ctx.check_cancelled()
        if total:
            ctx.progress(min(1.0, done / total), f"frame {done} of {total}")


class VideoPlugin(Plugin):
    """Video facts, frames and scenes."""

    name = "video"
    version = "1.0.0"

    @tool(timeout_s=30)
    def info(self, video: Video) -> VideoFacts:
        """Container, codec, size, frame rate, duration, frame count, rotation and audio."""
        return VideoFacts.model_validate(video.info.as_dict())

    @tool(timeout_s=600)
    def frames(
        self,
        video: Video,
        every_s: float | None = Field(None, gt=0, description="One frame every N seconds."),
        at_s: list[float] = Field(default_factory=list, description="Frames at these times."),
        scenes: bool = Field(False, description="The first frame of every scene instead."),
        max_side: int | None = Field(None, ge=16, le=8192, description="Downsize to this."),
        format: str = Field("JPEG", pattern="^(JPEG|PNG|WEBP)$"),
        ctx: ToolContext | None = None,
    ) -> Frames:
        """Frames as stored images: every N seconds, at given times, or at scene cuts
        (the first frame of each scene); at most 500."""
        if scenes:
            cuts = detect_cuts(self._all(video, ctx))
            at_s = [0.0, *(cut.timestamp_s for cut in cuts)]
        sampling = Sampling(every_s=every_s, at_s=at_s)
        total = len(sampling.wanted(video.info.fps, video.info.frame_count) or ())
        total = total or video.info.frame_count
        out: list[FrameImage] = []
        for frame in video.frames(sampling, max_side=max_side):
            if len(out) >= MAX_FRAMES_OUT:
                break
            out.append(
                FrameImage(
                    index=frame.index,
                    timestamp_s=frame.timestamp_s,
                    image=ImageArtifact.from_pil(frame.to_pil(), format),
                )
            )
            _progress(ctx, len(out), min(total, MAX_FRAMES_OUT))
        return Frames(frames=out)

    @tool(timeout_s=600)
    def scenes(
        self,
        video: Video,
        threshold: float = Field(DEFAULT_THRESHOLD, gt=0, le=255),
        contrast: float = Field(DEFAULT_CONTRAST, ge=1),
        min_gap_s: float = Field(0.2, ge=0),
        ctx: ToolContext | None = None,
    ) -> Scenes:
        """Scene-cut timestamps, and the scenes between them (method in docs/video.md)."""
        cuts = detect_cuts(
            self._all(video, ctx), threshold=threshold, contrast=contrast, min_gap_s=min_gap_s
        )
        fps, count = video.info.fps or 30.0, video.info.frame_count
        starts = [0, *(cut.frame for cut in cuts)]
        ends = [*(cut.frame - 1 for cut in cuts), max(0, count - 1)]
        return Scenes(
            cuts=[SceneCut(frame=c.frame, timestamp_s=c.timestamp_s, score=c.score) for c in cuts],
            scenes=[
                Scene(
                    start_frame=s,
                    end_frame=e,
                    start_s=round(s / fps, 3),
                    end_s=round((e + 1) / fps, 3),
                )
                for s, e in zip(starts, ends, strict=True)
            ],
            method=f"thumbnail difference > {threshold:g} and > {contrast:g}x recent median",
        )

    @staticmethod
    def _all(video: Video, ctx: ToolContext | None) -> Iterator[Frame]:
        total = video.info.frame_count
        for frame in video.frames(max_side=320):
            if frame.index % 10 == 0:
                _progress(ctx, frame.index, total)
            yield frame
