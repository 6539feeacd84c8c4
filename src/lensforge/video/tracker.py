"""Linking per-frame detections into tracks (an IoU tracker in the manner of SORT).

Roboflow's ``trackers`` (ByteTrack/SORT) depends on the non-headless ``opencv-python`` and on
``supervision``, which would install a second package owning ``cv2`` beside LensForge's
``opencv-python-headless``; this small tracker does what video.track needs instead:

- each track keeps its last box and a constant-velocity estimate (the box's centre moved
  per frame), so a moving object is matched where it is expected to be, not where it was;
- detections are matched to tracks greedily by IoU with the predicted box, highest first,
  above ``iou_threshold`` and only within the same label;
- an unmatched detection starts a new track; a track unmatched for more than ``max_gap``
  sampled frames ends; tracks seen on fewer than ``min_hits`` frames are dropped at the end.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

BoxT = tuple[float, float, float, float]  # x, y, width, height


@dataclass(frozen=True)
class Detection:
    frame: int
    timestamp_s: float
    box: BoxT
    score: float = 1.0
    label: str | None = None


@dataclass
class Track:
    id: int
    label: str | None
    detections: list[Detection] = field(default_factory=list)
    velocity: tuple[float, float] = (0.0, 0.0)

    @property
    def first_frame(self) -> int:
        return self.detections[0].frame

    @property
    def last_frame(self) -> int:
        return self.detections[-1].frame

    def predicted(self, frame: int) -> BoxT:
        last = self.detections[-1]
        steps = frame - last.frame
        x, y, w, h = last.box
        return (x + self.velocity[0] * steps, y + self.velocity[1] * steps, w, h)

    def add(self, detection: Detection) -> None:
        if self.detections:
            last = self.detections[-1]
            steps = max(1, detection.frame - last.frame)
            vx = (detection.box[0] - last.box[0]) / steps
            vy = (detection.box[1] - last.box[1]) / steps
            # a light smoothing: one noisy box must not throw the estimate off
            self.velocity = (0.5 * self.velocity[0] + 0.5 * vx, 0.5 * self.velocity[1] + 0.5 * vy)
        self.detections.append(detection)


def iou(a: BoxT, b: BoxT) -> float:
    ax2, ay2, bx2, by2 = a[0] + a[2], a[1] + a[3], b[0] + b[2], b[1] + b[3]
    w = min(ax2, bx2) - max(a[0], b[0])
    h = min(ay2, by2) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


class IouTracker:
    """Feed it each sampled frame's detections in order with :meth:`update`."""

    def __init__(self, *, iou_threshold: float = 0.2, max_gap: int = 3, min_hits: int = 2):
        self.iou_threshold = iou_threshold
        self.max_gap = max_gap
        self.min_hits = min_hits
        self._active: list[Track] = []
        self._done: list[Track] = []
        self._next_id = 1
        self._seen_frames: list[int] = []

    def update(self, frame: int, detections: Sequence[Detection]) -> list[tuple[int, Detection]]:
        """Match this frame's detections; returns (track id, detection) for each."""
        self._seen_frames.append(frame)
        pairs = sorted(
            (
                (iou(track.predicted(frame), det.box), t, d)
                for t, track in enumerate(self._active)
                for d, det in enumerate(detections)
                if track.label == det.label
            ),
            reverse=True,
        )
        used_tracks: set[int] = set()
        used_dets: set[int] = set()
        assigned: list[tuple[int, Detection]] = []
        for overlap, t, d in pairs:
            if overlap < self.iou_threshold:
                break
            if t in used_tracks or d in used_dets:
                continue
            used_tracks.add(t)
            used_dets.add(d)
            self._active[t].add(detections[d])
            assigned.append((self._active[t].id, detections[d]))
        for d, det in enumerate(detections):
            if d not in used_dets:
                track = Track(self._next_id, det.label)
                self._next_id += 1
                track.add(det)
                self._active.append(track)
                assigned.append((track.id, det))
        self._retire(frame)
        return assigned

    def _retire(self, frame: int) -> None:
        recent = self._seen_frames[-(self.max_gap + 1) :]
        keep = []
        for track in self._active:
            if track.last_frame in recent or track.last_frame == frame:
                keep.append(track)
            else:
                self._done.append(track)
        self._active = keep

    def state(self) -> dict[str, Any]:
        """What the tracker needs to go on after a restart, as JSON (a video job's
        checkpoint)."""

        def track(t: Track) -> dict[str, Any]:
            return {
                "id": t.id,
                "label": t.label,
                "velocity": list(t.velocity),
                "detections": [
                    [d.frame, d.timestamp_s, list(d.box), d.score, d.label] for d in t.detections
                ],
            }

        return {
            "active": [track(t) for t in self._active],
            "done": [track(t) for t in self._done],
            "next_id": self._next_id,
            "seen": self._seen_frames[-(self.max_gap + 1) :],  # all _retire ever reads
        }

    def restore(self, state: dict[str, Any]) -> None:
        """Go on from a :meth:`state`."""

        def track(data: dict[str, Any]) -> Track:
            detections = [
                Detection(frame, timestamp, (box[0], box[1], box[2], box[3]), score, label)
                for frame, timestamp, box, score, label in data["detections"]
            ]
            velocity = (float(data["velocity"][0]), float(data["velocity"][1]))
            return Track(data["id"], data["label"], detections, velocity)

        self._active = [track(t) for t in state["active"]]
        self._done = [track(t) for t in state["done"]]
        self._next_id = int(state["next_id"])
        self._seen_frames = list(state["seen"])

    def tracks(self) -> list[Track]:
        """Every track so far with at least ``min_hits`` detections, by id."""
        every = self._done + self._active
        return sorted((t for t in every if len(t.detections) >= self.min_hits), key=lambda t: t.id)
