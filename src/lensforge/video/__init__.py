"""Video support: probing (container, codec, limits), frame decoding, scene cuts, tracking,
and H.264 encoding. Built on PyAV (FFmpeg in its wheel); nothing here knows about jobs."""

from lensforge.video.encode import write_mp4
from lensforge.video.frames import Frame, Sampling, iter_frames
from lensforge.video.probe import VideoInfo, VideoLimits, probe_video, sniff_video
from lensforge.video.scenes import Cut, detect_cuts
from lensforge.video.tracker import Detection, IouTracker, Track, iou

__all__ = [
    "Cut",
    "Detection",
    "Frame",
    "IouTracker",
    "Sampling",
    "Track",
    "VideoInfo",
    "VideoLimits",
    "detect_cuts",
    "iou",
    "iter_frames",
    "probe_video",
    "sniff_video",
    "write_mp4",
]
