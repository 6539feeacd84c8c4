"""Video through the client and the CLI, against a real server: uploads by streaming, live
frame streams (sync and async), ``lensforge submit --video`` and ``lensforge stream``."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from lensforge.client import AsyncClient, Client, ConnectionFailed
from lensforge.errors import ValidationError
from tests.client.test_cli import lensforge
from tests.mcp_server.support import HttpServer
from tests.support import png
from tests.video.clips import write_scene_clip

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """90 frames of 320x180 at 30 fps (three scenes of one second)."""
    return write_scene_clip(tmp_path_factory.mktemp("clips") / "scenes.mp4")


def test_upload_streams_a_video_and_submit_passes_its_blob(server: HttpServer, clip: Path) -> None:
    with Client(server.url) as lf:
        stored = lf.upload(clip)
        assert stored["kind"] == "video" and stored["size"] == clip.stat().st_size
        assert stored["video"]["frame_count"] == 90
        job = lf.submit("video.info", video=clip)
        info = job.result(timeout=60)
        assert info["frame_count"] == 90 and info["width"] == 320
        with clip.open("rb") as handle:  # an open file; and the blob reference as is
            assert lf.analyze("video.info", video=handle)["fps"] == pytest.approx(30)
        assert lf.analyze("video.info", video={"blob": stored["blob"]})["frame_count"] == 90


def test_a_file_that_is_not_a_video_is_refused_at_upload(
    server: HttpServer, tmp_path: Path
) -> None:
    fake = tmp_path / "fake.mp4"
    fake.write_bytes(b"PK\x03\x04" + b"\0" * 4096)
    with Client(server.url) as lf, pytest.raises(Exception) as refused:
        lf.submit("video.info", video=fake)
    assert getattr(refused.value, "status", None) in (415, 422)
    with Client(server.url) as lf, pytest.raises(ValidationError, match="Cannot read video"):
        lf.submit("video.info", video=tmp_path / "missing.mp4")


def test_async_client_uploads_a_video(server: HttpServer, clip: Path) -> None:
    async def go() -> int:
        async with AsyncClient(server.url) as lf:
            result = await lf.analyze("video.info", video=clip)
            return int(result["frame_count"])

    assert asyncio.run(go()) == 90


def test_sync_stream_results_in_frame_order(server: HttpServer) -> None:
    frames = [png(20 + i, 10) for i in range(12)]
    with Client(server.url) as lf, lf.stream("image.info", policy="block") as live:
        events = list(live.play(frames, fps=60))
    results = [e for e in events if e.type == "result"]
    assert [e.frame for e in results] == list(range(12))
    assert [e.result["width"] for e in results] == [20 + i for i in range(12)]
    assert events[-1].type == "closed" and live.summary == events[-1].raw
    assert live.dropped == 0 and live.summary["frames_in"] == 12


def test_async_stream_accounts_for_every_frame(server: HttpServer) -> None:
    async def go() -> tuple[list[int], list[int], dict[str, Any]]:
        async with AsyncClient(server.url) as lf, lf.stream("image.info") as live:
            for i in range(40):  # all at once: faster than the tool answers
                await live.send(png(64, 48, (i, 0, 0)))
            await live.finish()
            done: list[int] = []
            dropped: list[int] = []
            async for event in live:
                if event.type == "result":
                    done.append(event.frame or 0)
                elif event.type == "dropped":
                    dropped.extend(event.frames)
            assert live.summary is not None
            return done, dropped, live.summary

    done, dropped, summary = asyncio.run(go())
    assert summary["frames_in"] == 40 and summary["dropped"] == len(dropped)
    assert done == sorted(done) and sorted(done + dropped) == list(range(40))


def test_stream_refusals_raise_typed_errors(server: HttpServer) -> None:
    with Client(server.url) as lf:
        with pytest.raises(ValidationError, match="exactly one image"), lf.stream("testing.echo"):
            pass
        with lf.stream("image.info") as live:
            live.send(b"not an image at all")
            with pytest.raises(Exception) as refused:
                list(live)
            assert getattr(refused.value, "status", None) in (415, 422)
    with (
        Client("http://127.0.0.1:9") as nowhere,
        pytest.raises(ConnectionFailed),
        nowhere.stream("image.info"),
    ):
        pass


def test_cli_submit_video_with_a_frames_bar(server: HttpServer, clip: Path) -> None:
    done = lensforge(
        server.url,
        "submit",
        "video.analyze",
        "--video",
        str(clip),
        "--input",
        "tool=testing.size",
        "--input",
        "every_s=0.5",
        "--wait",
        "--json",
    )
    assert done.returncode == 0, done.stderr
    body = json.loads(done.stdout)
    assert body["status"] == "SUCCESS"
    assert body["result"]["summary"]["frames_analyzed"] == 6
    job_id = body["job_id"]
    page = httpx.get(f"{server.url}/v1/jobs/{job_id}/frames").json()  # paged, not inline
    frames = [item["item"] for item in page["frames"]]
    assert [f["index"] for f in frames] == list(range(0, 90, 15))
    assert {f["result"]["width"] for f in frames} == {320}


def test_cli_stream_plays_a_file_and_prints_the_dropped_count(
    server: HttpServer, clip: Path
) -> None:
    done = lensforge(server.url, "stream", "image.info", "--video", str(clip), "--fps", "120")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    results = [json.loads(line) for line in lines if line.startswith("{")]
    assert results and all(r["result"]["width"] == 320 for r in results)
    assert [r["frame"] for r in results] == sorted(r["frame"] for r in results)
    summary = lines[-1]
    assert summary.startswith("90 frames sent") and "dropped" in summary
    dropped = int(summary.split(", ")[2].split()[0])
    assert len(results) + dropped == 90


def test_a_video_job_s_stored_frames_are_read_page_by_page(
    server: HttpServer, clip: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import lensforge.client.base as base

    monkeypatch.setattr(base, "FRAMES_PAGE", 25)  # 90 frames: four pages
    with Client(server.url) as lf:
        job = lf.submit("video.analyze", video=clip, tool="image.info", every_s=None)
        job.result(timeout=120)
        frames = list(job.frames())
    assert [f["frame"] for f in frames] == list(range(90))
    assert [f["item"]["index"] for f in frames] == list(range(90))
    assert all(f["item"]["result"]["width"] == 320 for f in frames)
    assert [f["seq"] for f in frames] == sorted({f["seq"] for f in frames})  # in order, once

    async def read() -> list[int]:
        async with AsyncClient(server.url) as lf:
            return [f["frame"] async for f in lf.job(job.id).frames()]

    assert asyncio.run(read()) == list(range(90))
