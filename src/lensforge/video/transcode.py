"""Rewriting a video frame by frame: decode, change the pixels, encode H.264 in MP4.

:func:`rewrite_video` streams: it demuxes the source packet by packet, hands each decoded
frame (RGB) to a callback, and encodes what the callback returns, so memory stays at a few
frames whatever the length. The output keeps the source's average frame rate (constant
rate) and size (cropped to even dimensions, which 4:2:0 chroma needs), in ``yuv420p``.

Audio is copied, not re-encoded: the first audio stream's packets go into the MP4 unchanged
when its codec is one MP4 carries (AAC, MP3, Opus, FLAC, ALAC, AC-3, E-AC-3); otherwise it
is dropped and the result says so. Subtitles and data streams are dropped.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from lensforge.video.frames import Frame
from lensforge.video.probe import fps_fraction

if TYPE_CHECKING:
    import numpy as np

# Encoders in order of preference; PyAV's wheel ships libx264 (FFmpeg's own "h264" name is a
# decoder-only build in some wheels, and MPEG-4 Part 2 is the fallback every build has).
ENCODERS = ("libx264", "h264", "mpeg4")
MP4_AUDIO = frozenset({"aac", "mp3", "opus", "flac", "alac", "ac3", "eac3"})
AudioPolicy = Literal["copy", "drop"]
AudioOutcome = Literal["copied", "dropped", "none"]


@dataclass(frozen=True)
class Rewritten:
    """What :func:`rewrite_video` wrote."""

    frames: int
    width: int
    height: int
    fps: float
    codec: str
    audio: AudioOutcome


def video_encoder() -> str:
    """The best H.264 encoder this PyAV build has (``mpeg4`` when it has none)."""
    import av

    available = av.codecs_available
    for name in ENCODERS:
        if name in available:
            try:
                av.Codec(name, "w")
            except Exception:  # listed, but no encoder of that name in this build
                continue
            return name
    raise RuntimeError("This PyAV build has no H.264 or MPEG-4 encoder.")


def rewrite_video(
    source: str | Path,
    target: str | Path,
    transform: Callable[[Frame], np.ndarray],
    *,
    audio: AudioPolicy = "copy",
    rotation: int = 0,
    crf: int = 23,
    preset: str = "veryfast",
) -> Rewritten:
    """Write ``target`` (MP4) with every frame of ``source``'s first video stream passed
    through ``transform`` (it gets the frame, returns RGB pixels of the same size; it may
    change the frame's array in place and return it). ``transform`` may raise to stop: the
    partly written ``target`` is then the caller's to delete. ``rotation`` (degrees, as
    :class:`~lensforge.video.probe.VideoInfo` gives it) is written as the output's display
    rotation: frames keep their stored orientation, players turn them as they did the
    source's."""
    import av
    import numpy as np

    with av.open(str(source)) as src:
        vin = src.streams.video[0]
        vin.thread_type = "AUTO"
        rate = vin.average_rate or vin.guessed_rate or 30
        fps = float(rate)
        width, height = vin.codec_context.width // 2 * 2, vin.codec_context.height // 2 * 2
        ain = src.streams.audio[0] if src.streams.audio else None
        copy_audio = audio == "copy" and ain is not None and ain.codec_context.name in MP4_AUDIO
        outcome: AudioOutcome = "none" if ain is None else ("copied" if copy_audio else "dropped")
        codec = video_encoder()
        options = {"movflags": "+faststart"}
        with av.open(str(target), mode="w", format="mp4", options=options) as out:
            vout: Any = out.add_stream(codec, rate=fps_fraction(fps))
            vout.width, vout.height, vout.pix_fmt = width, height, "yuv420p"
            if rotation % 360:
                vout.set_display_rotation(rotation % 360)
            if codec == "libx264":
                vout.options = {"crf": str(crf), "preset": preset}
            aout = out.add_stream_from_template(ain) if copy_audio and ain else None
            time_base = vin.time_base
            count = 0
            wanted = [vin, ain] if aout is not None else [vin]
            for packet in src.demux(*wanted):
                if packet.stream is ain:
                    if packet.dts is not None and aout is not None:  # None: a flush packet
                        packet.stream = aout
                        out.mux(packet)
                    continue
                for decoded in vin.decode(packet):
                    index = count
                    if decoded.pts is not None and time_base:
                        index = round(float(decoded.pts * time_base) * fps)
                    rgb = decoded.to_ndarray(format="rgb24")[:height, :width]
                    if not rgb.flags.writeable:
                        rgb = rgb.copy()
                    pixels = transform(Frame(index, round(index / fps, 6), rgb))
                    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(pixels), "rgb24")
                    for encoded in vout.encode(frame):
                        out.mux(encoded)
                    count += 1
            for encoded in vout.encode():
                out.mux(encoded)
    return Rewritten(count, width, height, fps, codec, outcome)
