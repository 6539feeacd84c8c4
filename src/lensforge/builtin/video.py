"""The ``video`` plugin: facts about a video, frames as images, and scene cuts.

Every tool reads frames one at a time (memory stays at one frame), reports progress in
frames, and stops between frames when its job is cancelled. ``video.analyze`` and
``video.track`` run image tools over sampled frames through the same ToolRunner as any
call (see docs/video.md). Both work in chunks of sampled frames and checkpoint after each
(``ctx.checkpoint``): a job whose worker or server dies resumes from its last checkpoint's
next frame, and its result equals an uninterrupted run's.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel, Field

from lensforge.plugin import Plugin, ToolContext, tool
from lensforge.results import Box, ImageArtifact
from lensforge.video import Detection, Frame, IouTracker, Sampling, detect_cuts
from lensforge.video.media import Video
from lensforge.video.scenes import DEFAULT_CONTRAST, DEFAULT_THRESHOLD

MAX_FRAMES_OUT = 500  # frames video.frames returns at most (each is a stored image)
CHUNK_FRAMES = 30  # sampled frames between two checkpoints of video.analyze and video.track
MAX_ERRORS = 100  # per-frame errors video.analyze lists in its result (all are counted)


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


class _Pace:
    """Progress of a chunked tool in frames done / total, with an ETA from this run's rate
    (a resumed run counts only the frames it processed itself)."""

    def __init__(self, ctx: ToolContext, done: int, total: int) -> None:
        self.ctx, self.total, self.first = ctx, total, done
        self.started = time.monotonic()

    def report(self, done: int) -> None:
        if not self.total:
            return
        elapsed, fresh = time.monotonic() - self.started, done - self.first
        message = f"frame {done} of {self.total}"
        if fresh > 0 and elapsed > 0:
            message += f", ETA {max(0.0, self.total - done) * elapsed / fresh:.0f} s"
        self.ctx.progress(min(1.0, done / self.total), message)


class FrameResult(BaseModel):
    index: int
    timestamp_s: float
    result: Any = Field(description="The image tool's result for this frame.")


class AnalysisSummary(BaseModel):
    tool: str
    frames_analyzed: int
    frames_total: int
    every_s: float | None
    fps: float
    duration_s: float
    failures: int = Field(description="Frames whose tool call failed (their error is listed).")


class VideoAnalysis(BaseModel):
    summary: AnalysisSummary
    frames: list[FrameResult] | None = Field(
        None,
        description="Per-frame results when the call is not a stored job (lensforge run); a "
        "job's are stored as it goes and paged at GET /v1/jobs/{id}/frames.",
    )
    errors: list[dict[str, Any]] = Field(
        default_factory=list, description=f"The first {MAX_ERRORS} per-frame errors."
    )


class TrackPoint(BaseModel):
    frame: int
    timestamp_s: float
    box: Box
    score: float


class TrackOut(BaseModel):
    id: int
    label: str | None
    first_frame: int
    last_frame: int
    first_s: float
    last_s: float
    points: list[TrackPoint]


class VideoTracks(BaseModel):
    tool: str
    frames_analyzed: int
    tracks: list[TrackOut]
    method: str


def _boxes(result: Any) -> list[tuple[tuple[float, float, float, float], float, str | None]]:
    """Every ``{"box": {x, y, width, height}}`` with its score and label in a tool's result
    (faces.detect's ``faces``, people/objects ``detections``: any result of shared types)."""
    found: list[tuple[tuple[float, float, float, float], float, str | None]] = []
    if isinstance(result, dict):
        box = result.get("box")
        if isinstance(box, dict) and {"x", "y", "width", "height"} <= set(box):
            score = result.get("score", result.get("confidence", 1.0))
            label = result.get("label")
            found.append(
                (
                    (float(box["x"]), float(box["y"]), float(box["width"]), float(box["height"])),
                    float(score) if isinstance(score, int | float) else 1.0,
                    label if isinstance(label, str) else None,
                )
            )
        for value in result.values():
            if value is not box:
                found.extend(_boxes(value))
    elif isinstance(result, list):
        for item in result:
            found.extend(_boxes(item))
    return found


class VideoPlugin(Plugin):
    """Video facts, frames and scenes."""

    name = "video"
    version = "1.0.0"

    @tool(timeout_s=30)
    def info(self, video: Video) -> VideoFacts:
        """Container, codec, size, frame rate, duration, frame count, rotation and audio."""
        return VideoFacts.model_validate(video.info.as_dict())

    @tool(timeout_s=600, long=True)
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

    @tool(timeout_s=600, long=True)
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

    @tool(timeout_s=3600, long=True)
    def analyze(
        self,
        video: Video,
        tool: str = Field(description="An image tool, e.g. faces.detect or codes.decode."),
        every_s: float | None = Field(1.0, gt=0, description="Sample a frame every N seconds."),
        inputs: dict[str, Any] = Field(
            default_factory=dict, description="The image tool's other inputs."
        ),
        max_side: int | None = Field(None, ge=16, le=8192, description="Downsize frames."),
        chunk_frames: int = Field(
            CHUNK_FRAMES, ge=1, le=10_000, description="Sampled frames between checkpoints."
        ),
        ctx: ToolContext | None = None,
    ) -> VideoAnalysis:
        """Run an image tool over sampled frames (each call governed by the ToolRunner like
        any other: inputs and output validated, measured); a summary, and per-frame results
        stored in chunks (a crashed job resumes from its last chunk)."""
        if ctx is None:
            raise ValueError("video.analyze needs its ToolContext")
        sampling = Sampling(every_s=every_s)
        wanted = sampling.wanted(video.info.fps, video.info.frame_count)
        total = len(wanted) if wanted is not None else video.info.frame_count
        state: dict[str, Any] = {"next_frame": 0, "analyzed": 0, "failures": 0, "errors": []}
        state.update(ctx.resume or {})
        kept: list[FrameResult] | None = None if ctx.durable else []
        items: list[dict[str, Any]] = []
        pace = _Pace(ctx, state["analyzed"], total)
        frames = video.frames(sampling, start_frame=state["next_frame"], max_side=max_side)
        for frame in frames:
            ctx.check_cancelled()
            outcome = ctx.call_tool(tool, {**inputs, "image": frame.image()})
            item: dict[str, Any] = {"index": frame.index, "timestamp_s": frame.timestamp_s}
            if outcome.ok:
                item["result"] = outcome.result
                if kept is not None:
                    kept.append(FrameResult(**item))
            else:
                item["error"] = outcome.error
                state["failures"] += 1
                if len(state["errors"]) < MAX_ERRORS:
                    state["errors"].append({"frame": frame.index, **(outcome.error or {})})
            items.append(item)
            state["analyzed"] += 1
            state["next_frame"] = frame.index + 1
            if len(items) >= chunk_frames:
                ctx.checkpoint(state, items)
                items = []
            pace.report(state["analyzed"])
        if items:
            ctx.checkpoint(state, items)
        return VideoAnalysis(
            summary=AnalysisSummary(
                tool=tool,
                frames_analyzed=state["analyzed"],
                frames_total=video.info.frame_count,
                every_s=every_s,
                fps=video.info.fps,
                duration_s=video.info.duration_s,
                failures=state["failures"],
            ),
            frames=kept,
            errors=state["errors"],
        )

    @tool(timeout_s=3600, long=True)
    def track(
        self,
        video: Video,
        tool: str = Field("faces.detect", description="An image tool that returns boxes."),
        every_s: float | None = Field(None, gt=0, description="Sample every N s (default: all)."),
        inputs: dict[str, Any] = Field(default_factory=dict),
        iou_threshold: float = Field(0.2, gt=0, lt=1),
        max_gap: int = Field(5, ge=0, description="Sampled frames a track may go unseen."),
        min_hits: int = Field(2, ge=1, description="Shortest track kept, in detections."),
        max_side: int | None = Field(None, ge=16, le=8192),
        chunk_frames: int = Field(
            CHUNK_FRAMES, ge=1, le=10_000, description="Sampled frames between checkpoints."
        ),
        ctx: ToolContext | None = None,
    ) -> VideoTracks:
        """Detections of an image tool linked across frames into tracks (an IoU tracker with
        constant-velocity prediction; see docs/video.md): track id, first and last frame,
        the box on every frame. Boxes are in the coordinates of the frames analysed. Each
        frame's boxes with their track ids are stored in chunks (see video.analyze)."""
        if ctx is None:
            raise ValueError("video.track needs its ToolContext")
        tracker = IouTracker(iou_threshold=iou_threshold, max_gap=max_gap, min_hits=min_hits)
        sampling = Sampling(every_s=every_s)
        wanted = sampling.wanted(video.info.fps, video.info.frame_count)
        total = len(wanted) if wanted is not None else video.info.frame_count
        resume = ctx.resume or {}
        next_frame, analysed = int(resume.get("next_frame", 0)), int(resume.get("analysed", 0))
        if "tracker" in resume:
            tracker.restore(resume["tracker"])
        items: list[dict[str, Any]] = []
        pace = _Pace(ctx, analysed, total)
        for frame in video.frames(sampling, start_frame=next_frame, max_side=max_side):
            ctx.check_cancelled()
            outcome = ctx.call_tool(tool, {**inputs, "image": frame.image()})
            detections = [
                Detection(frame.index, frame.timestamp_s, box, score, label)
                for box, score, label in (_boxes(outcome.result) if outcome.ok else [])
            ]
            assigned = tracker.update(frame.index, detections)
            items.append(
                {
                    "index": frame.index,
                    "timestamp_s": frame.timestamp_s,
                    "boxes": [
                        {"track": track_id, "box": list(d.box), "score": d.score, "label": d.label}
                        for track_id, d in assigned
                    ],
                }
            )
            analysed, next_frame = analysed + 1, frame.index + 1
            if len(items) >= chunk_frames:
                state = {"next_frame": next_frame, "analysed": analysed}
                ctx.checkpoint({**state, "tracker": tracker.state()}, items)
                items = []
            pace.report(analysed)
        if items:
            state = {"next_frame": next_frame, "analysed": analysed}
            ctx.checkpoint({**state, "tracker": tracker.state()}, items)
        return VideoTracks(
            tool=tool,
            frames_analyzed=analysed,
            tracks=[
                TrackOut(
                    id=t.id,
                    label=t.label,
                    first_frame=t.first_frame,
                    last_frame=t.last_frame,
                    first_s=t.detections[0].timestamp_s,
                    last_s=t.detections[-1].timestamp_s,
                    points=[
                        TrackPoint(
                            frame=d.frame,
                            timestamp_s=d.timestamp_s,
                            box=Box(x=d.box[0], y=d.box[1], width=d.box[2], height=d.box[3]),
                            score=max(0.0, min(1.0, d.score)),
                        )
                        for d in t.detections
                    ],
                )
                for t in tracker.tracks()
            ],
            method=f"IoU >= {iou_threshold:g} with constant-velocity prediction, "
            f"gap <= {max_gap} frames, >= {min_hits} detections",
        )

    @staticmethod
    def _all(video: Video, ctx: ToolContext | None) -> Iterator[Frame]:
        total = video.info.frame_count
        for frame in video.frames(max_side=320):
            if frame.index % 10 == 0:
                _progress(ctx, frame.index, total)
            yield frame
