"""Video probing: what a file is, checked from its header before any frame is decoded.

A video reaches a tool only after :func:`probe_video` has said yes: the container is sniffed
from the leading bytes (MP4/MOV, WebM/Matroska, AVI; never the file name), opened with PyAV
(FFmpeg), and its first video stream's duration, size and frame count are checked against
:class:`VideoLimits`. A truncated file is caught by decoding one frame at the start and one
near the end, which reads a few packets, not the whole file.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from fractions import Fraction
from pathlib import Path
from typing import Any, BinaryIO

from lensforge.errors import PayloadTooLarge, UnsupportedMediaType, ValidationError

# (magic, offset, container family, media type): what the first bytes of each container say.
_SIGNATURES: tuple[tuple[bytes, int, str, str], ...] = (
    (b"ftyp", 4, "mp4", "video/mp4"),  # MP4 and QuickTime MOV (ISO base media file format)
    (b"\x1a\x45\xdf\xa3", 0, "matroska", "video/x-matroska"),  # MKV and WebM (EBML)
    (b"RIFF", 0, "avi", "video/x-msvideo"),  # checked for "AVI " at 8 below
)
SUPPORTED_CONTAINERS = ("MP4", "MOV", "WebM", "MKV", "AVI")
SNIFF_BYTES = 64  # enough for an EBML header's DocType (webm or matroska)


@dataclass(frozen=True)
class VideoLimits:
    """What a server accepts; each is checked from the container header."""

    max_bytes: int = 4 * 1024**3
    max_duration_s: float = 3 * 3600.0
    max_pixels: int = 3840 * 2160  # per frame (4K)
    max_frames: int = 1_000_000


@dataclass(frozen=True)
class AudioStream:
    codec: str
    channels: int
    sample_rate: int


@dataclass(frozen=True)
class VideoInfo:
    """A probed video: container, codec, geometry and timing of its first video stream."""

    container: str
    media_type: str
    codec: str
    width: int
    height: int
    fps: float
    duration_s: float
    frame_count: int
    rotation: int
    file_size: int
    audio: list[AudioStream] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def sniff_video(head: bytes) -> tuple[str, str]:
    """(container family, media type) from the leading bytes, or UnsupportedMediaType."""
    if not head:
        raise ValidationError("The video is empty (zero bytes).")
    for magic, offset, family, media_type in _SIGNATURES:
        if head[offset : offset + len(magic)] == magic:
            if family == "avi" and head[8:12] != b"AVI ":
                continue
            return family, media_type
    raise UnsupportedMediaType(
        "The bytes are not a video in a supported container "
        f"({', '.join(SUPPORTED_CONTAINERS)}); the format is read from the bytes themselves.",
        details={"supported": list(SUPPORTED_CONTAINERS)},
    )


def probe_video(source: str | Path | BinaryIO, limits: VideoLimits | None = None) -> VideoInfo:
    """Check a video file (a path, or a seekable binary file read from its start) and
    describe it.

    Raises UnsupportedMediaType (415) for a file that is no video or has no video stream,
    ValidationError (422) for a corrupt or truncated one, PayloadTooLarge (413) past a limit.
    """
    import av

    limits = limits or VideoLimits()
    file = open(source, "rb") if isinstance(source, str | Path) else source  # noqa: SIM115
    try:
        start = file.tell()  # given back as it was; the file is read from its beginning
        size = file.seek(0, 2)
        file.seek(0)
        head = file.read(SNIFF_BYTES)
        file.seek(0)
        family, media_type = sniff_video(head)
        if size > limits.max_bytes:
            raise PayloadTooLarge(
                f"The video is {size} bytes; this server accepts at most {limits.max_bytes}.",
                details={"bytes": size, "max_bytes": limits.max_bytes},
            )
        try:
            container = av.open(file, mode="r")
        except (av.FFmpegError, ValueError, OSError) as exc:
            raise ValidationError(
                f"The video cannot be read: {_reason(exc)} (is the file truncated or corrupt?)."
            ) from None
        with container:
            info = _describe(container, family, media_type, size, webm=b"webm" in head)
            _check_limits(info, limits)
            rotation = _check_decodable(container, info)
        return replace(info, rotation=rotation)
    finally:
        if isinstance(source, str | Path):
            file.close()
        else:
            file.seek(start)


def _describe(container: Any, family: str, media_type: str, size: int, webm: bool) -> VideoInfo:
    streams = container.streams
    if not streams.video:
        raise UnsupportedMediaType("The file holds no video stream (audio only, or data).")
    stream = streams.video[0]
    ctx = stream.codec_context
    width, height = int(ctx.width or 0), int(ctx.height or 0)
    if width <= 0 or height <= 0:
        raise ValidationError("The video stream declares no frame size: the file is corrupt.")
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    fps = float(rate) if rate else 0.0
    if stream.duration is not None and stream.time_base is not None:
        duration = float(stream.duration * stream.time_base)
    elif container.duration is not None:
        duration = container.duration / 1_000_000  # microseconds (AV_TIME_BASE)
    else:
        duration = 0.0
    frames = int(stream.frames or 0)
    if frames <= 0 and fps > 0:
        frames = round(duration * fps)
    name = _container_name(family, webm, media_type)
    return VideoInfo(
        container=name[0],
        media_type=name[1],
        codec=str(ctx.name),
        width=width,
        height=height,
        fps=round(fps, 3),
        duration_s=round(duration, 3),
        frame_count=frames,
        rotation=0,  # read from the first frame's display matrix (see _check_decodable)
        file_size=size,
        audio=[
            AudioStream(
                codec=str(a.codec_context.name),
                channels=int(a.codec_context.channels or 0),
                sample_rate=int(a.codec_context.sample_rate or 0),
            )
            for a in streams.audio
        ],
    )


def _container_name(family: str, webm: bool, media_type: str) -> tuple[str, str]:
    if family == "matroska":
        return ("webm", "video/webm") if webm else ("mkv", media_type)
    if family == "mp4":
        return ("mp4", media_type)  # MOV files are the same family; FFmpeg reads both
    return (family, media_type)


def _check_limits(info: VideoInfo, limits: VideoLimits) -> None:
    problems: list[tuple[str, dict[str, Any]]] = []
    if info.width * info.height > limits.max_pixels:
        problems.append(
            (
                f"{info.width}x{info.height} frames exceed {limits.max_pixels} pixels",
                {"width": info.width, "height": info.height, "max_pixels": limits.max_pixels},
            )
        )
    if info.duration_s > limits.max_duration_s:
        problems.append(
            (
                f"{info.duration_s:g} s exceeds {limits.max_duration_s:g} s",
                {"duration_s": info.duration_s, "max_duration_s": limits.max_duration_s},
            )
        )
    if info.frame_count > limits.max_frames:
        problems.append(
            (
                f"{info.frame_count} frames exceed {limits.max_frames}",
                {"frame_count": info.frame_count, "max_frames": limits.max_frames},
            )
        )
    if problems:
        details: dict[str, Any] = {}
        for _, facts in problems:
            details.update(facts)
        raise PayloadTooLarge(
            "The video is over this server's limits: " + "; ".join(p for p, _ in problems) + ".",
            details=details,
        )


def _check_decodable(container: Any, info: VideoInfo) -> int:
    """Decode the first frame, and one near the end: a truncated file fails here.

    Returns the clockwise display rotation (0, 90, 180, 270) the first frame carries."""
    import av

    stream = container.streams.video[0]
    try:
        first = next(container.decode(stream), None)
        if first is None:
            raise ValidationError("The video has no decodable frame (empty or corrupt).")
        rotation = int(getattr(first, "rotation", 0) or 0) % 360
        if info.duration_s > 0 and stream.time_base:
            # Demux (not decode) from the keyframe before the last second to the end: the
            # packets of a truncated file stop short of the declared duration.
            target = max(0.0, info.duration_s - 1.0)
            container.seek(int(target / stream.time_base), stream=stream, backward=True)
            last = 0.0
            for packet in container.demux(stream):
                if packet.pts is not None and packet.size:
                    last = max(
                        last, float((packet.pts + (packet.duration or 0)) * stream.time_base)
                    )
            slack = 2 / info.fps if info.fps else 0.1
            if last + slack < info.duration_s - float(stream.start_time or 0) * float(
                stream.time_base
            ):
                raise ValidationError(
                    f"The video stops at {last:.2f} s although it declares "
                    f"{info.duration_s:.2f} s: the file is truncated.",
                    details={"decodable_s": round(last, 3), "duration_s": info.duration_s},
                )
    except av.FFmpegError as exc:
        raise ValidationError(
            f"The video cannot be decoded: {_reason(exc)} (is the file truncated or corrupt?)."
        ) from None
    return rotation


def _reason(exc: BaseException) -> str:
    text = getattr(exc, "strerror", None) or str(exc)
    return str(text).split(":")[-1].strip() or type(exc).__name__


def fps_fraction(fps: float) -> Fraction:
    """A frame rate as the exact fraction encoders want (29.97 → 30000/1001)."""
    if math.isclose(fps, 30000 / 1001, rel_tol=1e-4):
        return Fraction(30000, 1001)
    return Fraction(fps).limit_denominator(1001)
