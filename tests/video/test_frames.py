"""Frame sampling, resuming mid-video, scene cuts and the tracker on generated clips."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lensforge.video import Detection, IouTracker, Sampling, detect_cuts, iou, iter_frames
from tests.video.clips import SCENE_COLOURS, write_scene_clip


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_scene_clip(tmp_path_factory.mktemp("clips") / "scenes.mp4")


def test_every_frame_in_order_with_its_time(clip: Path) -> None:
    frames = list(iter_frames(clip))
    assert [f.index for f in frames] == list(range(90))
    assert frames[45].timestamp_s == pytest.approx(1.5)
    # the content is the generated one: scene 2's background colour, lossy codec aside
    assert np.abs(frames[45].rgb[5, 5].astype(int) - SCENE_COLOURS[1]).max() < 12


def test_sampling_every_seconds_every_n_and_at_times(clip: Path) -> None:
    assert [f.index for f in iter_frames(clip, Sampling(every_s=0.5))] == list(range(0, 90, 15))
    assert [f.index for f in iter_frames(clip, Sampling(every_n=40))] == [0, 40, 80]
    assert [f.index for f in iter_frames(clip, Sampling(at_s=[2.5, 0.1, 99]))] == [3, 75, 89]


def test_resuming_starts_at_the_frame_asked_for(clip: Path) -> None:
    resumed = list(iter_frames(clip, Sampling(every_s=0.5), start_frame=31))
    assert [f.index for f in resumed] == [45, 60, 75]
    whole = {f.index: f.rgb for f in iter_frames(clip)}
    assert all(np.array_equal(f.rgb, whole[f.index]) for f in resumed)


def test_frames_are_downsized_on_request(clip: Path) -> None:
    frame = next(iter(iter_frames(clip, max_side=160)))
    assert frame.rgb.shape == (90, 160, 3)


def test_scene_cuts_are_found_within_one_frame_and_motion_is_not_a_cut(clip: Path) -> None:
    cuts = detect_cuts(iter_frames(clip))
    assert [c.frame for c in cuts] == [30, 60]
    assert [c.timestamp_s for c in cuts] == pytest.approx([1.0, 2.0])


def test_iou() -> None:
    assert iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert iou((0, 0, 10, 10), (5, 0, 10, 10)) == pytest.approx(50 / 150)
    assert iou((0, 0, 10, 10), (20, 20, 5, 5)) == 0.0


def test_the_tracker_keeps_one_id_along_a_fast_path_and_splits_two_objects() -> None:
    tracker = IouTracker()
    for frame in range(30):
        moving = Detection(frame, frame / 30, (10 + 12 * frame, 50, 30, 30), label="face")
        still = Detection(frame, frame / 30, (500, 300, 40, 40), label="face")
        tracker.update(frame, [still, moving] if frame % 2 else [moving, still])
    tracks = tracker.tracks()
    assert len(tracks) == 2
    assert sorted(len(t.detections) for t in tracks) == [30, 30]
    assert all(t.first_frame == 0 and t.last_frame == 29 for t in tracks)


def test_a_track_ends_after_a_long_gap_and_one_off_boxes_are_dropped() -> None:
    tracker = IouTracker(max_gap=2)
    for frame in range(10):
        dets = [Detection(frame, 0, (0, 0, 20, 20))] if frame < 4 or frame > 8 else []
        if frame == 5:
            dets.append(Detection(frame, 0, (300, 300, 20, 20)))  # a single false positive
        tracker.update(frame, dets)
    tracks = tracker.tracks()
    # the reappearance at frame 9 is a new track of one box, dropped like the false positive
    assert [(t.first_frame, t.last_frame) for t in tracks] == [(0, 3)]
