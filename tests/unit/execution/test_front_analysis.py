"""The front door (``execution/analysis.py``): video inputs checked and stored before a job
exists, the reads it passes on to the job layer, and how many workers it reports."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import pytest

from lensforge.errors import (
    BlobNotFound,
    JobNotFound,
    PayloadTooLarge,
    UnsupportedMediaType,
    ValidationError,
)
from lensforge.execution.analysis import AnalysisExecutionService, AnalysisRequest
from lensforge.execution.executors.local import LocalExecutor
from lensforge.execution.executors.ray import RayExecutor
from lensforge.execution.worker import WorkerConfig
from lensforge.media import MediaLimits
from lensforge.settings import Settings
from lensforge.store import Status
from lensforge.testing import InMemoryJobStore
from lensforge.video import VideoLimits
from tests.support import b64, png
from tests.unit.execution.front_support import analysis, mp4, registry


def clip_request(**fields: object) -> AnalysisRequest:
    return AnalysisRequest(plugin="front", tool="clip", **fields)  # type: ignore[arg-type]


def test_an_uploaded_video_is_probed_then_stored_as_a_blob(tmp_path: Path) -> None:
    data = mp4(tmp_path / "clip.mp4", frames=6)
    front = analysis(tmp_path)
    new = front.prepare(clip_request(uploads={"clip": data}))
    ref = "sha256:" + hashlib.sha256(data).hexdigest()
    assert new.inputs == {"clip": {"blob": ref}}
    assert front.blobs.get(ref) == data


def test_an_uploaded_video_past_the_byte_cap_is_refused_while_written(tmp_path: Path) -> None:
    data = mp4(tmp_path / "clip.mp4", frames=6)
    front = analysis(tmp_path, limits=MediaLimits(video=VideoLimits(max_bytes=1000)))
    with pytest.raises(PayloadTooLarge) as caught:
        front.prepare(clip_request(uploads={"clip": data}))
    # the spool's cap stops it (the probe, which would say "bytes", never runs)
    assert caught.value.details == {"max_bytes": 1000, "field": "clip"}
    assert (caught.value.plugin, caught.value.tool) == ("front", "clip")


def test_an_uploaded_video_is_checked_against_the_servers_video_limits(tmp_path: Path) -> None:
    data = mp4(tmp_path / "clip.mp4", frames=6)
    front = analysis(tmp_path, limits=MediaLimits(video=VideoLimits(max_frames=2)))
    with pytest.raises(PayloadTooLarge) as caught:
        front.prepare(clip_request(uploads={"clip": data}))
    assert caught.value.details["field"] == "clip"
    assert not list((tmp_path / "blobs").rglob("*.mp4"))


def test_a_video_sent_as_base64_is_refused_with_how_to_send_it(tmp_path: Path) -> None:
    with pytest.raises(ValidationError) as caught:
        analysis(tmp_path).prepare(clip_request(inputs={"clip": "AAAA"}))
    assert caught.value.message == (
        "Field 'clip' is a video: upload it (multipart, or POST /v1/blobs) and "
        'pass {"blob": "sha256:..."}; videos are not sent as base64.'
    )
    assert caught.value.details == {"field": "clip"}


def test_a_stored_video_is_named_in_one_canonical_spelling(tmp_path: Path) -> None:
    front = analysis(tmp_path)
    ref = front.blobs.put(mp4(tmp_path / "clip.mp4"))
    sent = "  " + ref.removeprefix("sha256:").upper() + " "
    new = front.prepare(clip_request(inputs={"clip": {"blob": sent}}))
    assert new.inputs == {"clip": {"blob": ref}}


def test_a_video_blob_the_server_does_not_hold_is_named_back_in_80_characters(
    tmp_path: Path,
) -> None:
    sent = " " * 20 + "sha256:" + "ab" * 32  # 91 characters that still parse
    with pytest.raises(BlobNotFound) as caught:
        analysis(tmp_path).prepare(clip_request(inputs={"clip": {"blob": sent}}))
    assert caught.value.message == "Field 'clip' names a blob this server does not hold."
    assert caught.value.details == {"blob": sent[:80], "field": "clip"}


def test_a_stored_blob_used_as_a_video_is_probed_where_it_lies(tmp_path: Path) -> None:
    front = analysis(tmp_path)
    image = front.blobs.put(png())
    with pytest.raises(UnsupportedMediaType) as caught:
        front.prepare(clip_request(inputs={"clip": {"blob": image}}))
    assert caught.value.details["field"] == "clip"


def test_a_stored_video_is_probed_against_the_servers_video_limits(tmp_path: Path) -> None:
    front = analysis(tmp_path, limits=MediaLimits(video=VideoLimits(max_frames=2)))
    ref = front.blobs.put(mp4(tmp_path / "clip.mp4", frames=6))
    with pytest.raises(PayloadTooLarge) as caught:
        front.prepare(clip_request(inputs={"clip": {"blob": ref}}))
    assert caught.value.details["field"] == "clip"


def test_a_missing_video_is_left_to_the_schema_check(tmp_path: Path) -> None:
    with pytest.raises(ValidationError) as caught:
        analysis(tmp_path).prepare(clip_request())
    assert "clip" in caught.value.message


# -- the reads passed on to the job layer ------------------------------------------------


async def running_job(front: AnalysisExecutionService, store: InMemoryJobStore) -> str:
    job, _ = await front.submit(AnalysisRequest(plugin="front", tool="steps", owner="alice"))
    (claimed,) = await store.claim("test-worker", 30.0, 1)
    assert claimed.id == job.id
    return job.id


def test_frames_are_read_after_a_seq_and_a_page_of_100_by_default(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = InMemoryJobStore()
        front = analysis(tmp_path, store=store)
        job_id = await running_job(front, store)
        items = [{"index": i} for i in range(130)]
        assert await store.save_checkpoint(job_id, {"at": 130}, items)
        assert [f.frame for f in await front.frames(job_id)] == list(range(100))
        page = await front.frames(job_id, owner="alice", after=9, limit=3)
        assert [f.seq for f in page] == [10, 11, 12]
        with pytest.raises(JobNotFound):
            await front.frames(job_id, owner="bob")

    asyncio.run(scenario())


def test_watch_is_the_owners_only(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = InMemoryJobStore()
        front = analysis(tmp_path, store=store)
        job_id = await running_job(front, store)
        with pytest.raises(JobNotFound):
            await anext(front.watch(job_id, owner="bob"))
        seen = await anext(front.watch(job_id, owner="alice"))
        assert (seen.id, seen.status) == (job_id, Status.RUNNING)

    asyncio.run(scenario())


def test_wait_starts_from_the_job_as_the_caller_saw_it(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = InMemoryJobStore()
        front = analysis(tmp_path, store=store)
        job, _ = await front.submit(AnalysisRequest(plugin="front", tool="steps"))
        await front.cancel(job.id)  # the store has moved on; the caller's copy has not
        assert (await front.wait(job.id, 0, current=job)).status is Status.PENDING
        assert (await front.wait(job.id, 0)).status is Status.CANCELLED

    asyncio.run(scenario())


# -- workers --------------------------------------------------------------------------------


def config() -> WorkerConfig:
    return WorkerConfig(Settings(), MediaLimits())


def test_workers_alive_counts_live_worker_processes(tmp_path: Path) -> None:
    local = LocalExecutor(config(), workers=3)  # not started: no process is alive yet
    assert local.capacity > 0
    assert analysis(tmp_path, executor=local).workers_alive() == 0


def test_workers_alive_is_an_executors_declared_workers_else_its_capacity(
    tmp_path: Path,
) -> None:
    ray = RayExecutor(config(), registry(), workers=2)  # not started: nothing connects
    assert ray.capacity != 2
    assert analysis(tmp_path, executor=ray).workers_alive() == 2
    assert analysis(tmp_path).workers_alive() == 1  # inline: one call at a time


@pytest.mark.parametrize("requested", [0.0, -1.0, 60.5])
def test_a_time_limit_outside_the_servers_range_is_refused(
    tmp_path: Path, requested: float
) -> None:
    with pytest.raises(ValidationError) as caught:
        analysis(tmp_path).prepare(
            AnalysisRequest(plugin="front", tool="steps", timeout_s=requested)
        )
    assert caught.value.message == "timeout_s must be between 0 and 60 seconds."
    assert caught.value.details == {"timeout_s": requested, "max_timeout_s": 60.0}
    assert (caught.value.plugin, caught.value.tool) == ("front", "steps")


def test_a_time_limit_up_to_the_maximum_is_the_jobs(tmp_path: Path) -> None:
    front = analysis(tmp_path)
    for requested in (0.001, 60.0):
        new = front.prepare(AnalysisRequest(plugin="front", tool="steps", timeout_s=requested))
        assert new.timeout_s == requested
    assert front.prepare(AnalysisRequest(plugin="front", tool="steps")).timeout_s == 60.0


# -- image inputs -----------------------------------------------------------------------------


def size_request(**fields: object) -> AnalysisRequest:
    return AnalysisRequest(plugin="front", tool="size", **fields)  # type: ignore[arg-type]


def test_an_image_uploaded_or_sent_as_base64_is_checked_then_stored(tmp_path: Path) -> None:
    front = analysis(tmp_path)
    data = png(7, 5)
    ref = "sha256:" + hashlib.sha256(data).hexdigest()
    assert front.prepare(size_request(uploads={"image": data})).inputs == {"image": {"blob": ref}}
    new = front.prepare(size_request(inputs={"image": b64(data)}))
    assert new.inputs == {"image": {"blob": ref}}
    assert front.blobs.get(ref) == data


def test_an_image_that_fails_its_check_names_its_field(tmp_path: Path) -> None:
    with pytest.raises(UnsupportedMediaType) as caught:
        analysis(tmp_path).prepare(size_request(uploads={"image": b"not an image at all"}))
    assert caught.value.details["field"] == "image"
    with pytest.raises(ValidationError) as bad:
        analysis(tmp_path).prepare(size_request(inputs={"image": "not base64!"}))
    assert bad.value.message == (
        "Field 'image' is not valid base64; send the file's bytes base64-encoded."
    )
    assert bad.value.details == {"field": "image"}


def test_a_stored_image_is_named_in_one_spelling_and_an_unknown_one_refused(
    tmp_path: Path,
) -> None:
    front = analysis(tmp_path)
    ref = front.blobs.put(png())
    sent = " " + ref.removeprefix("sha256:").upper()
    assert front.prepare(size_request(inputs={"image": {"blob": sent}})).inputs == {
        "image": {"blob": ref}
    }
    unknown = " " * 20 + "sha256:" + "cd" * 32
    with pytest.raises(BlobNotFound) as caught:
        front.prepare(size_request(inputs={"image": {"blob": unknown}}))
    assert caught.value.message == "Field 'image' names a blob this server does not hold."
    assert caught.value.details == {"field": "image", "blob": unknown[:80]}


def test_an_upload_for_a_field_that_takes_no_media_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValidationError) as caught:
        analysis(tmp_path).prepare(
            AnalysisRequest(plugin="front", tool="size", uploads={"n": b"x", "image": png()})
        )
    assert caught.value.message == (
        "Uploaded file field(s) ['n'] are not media inputs of this tool; "
        "its media inputs are ['image']."
    )
    assert caught.value.details == {"fields": ["n"]}


def test_a_missing_image_is_left_to_the_schema_check(tmp_path: Path) -> None:
    with pytest.raises(ValidationError) as caught:
        analysis(tmp_path).prepare(size_request())
    assert "image" in caught.value.message
