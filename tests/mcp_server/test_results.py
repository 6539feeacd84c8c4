"""How a finished job's media come back to an MCP client (Results, on a real blob store)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import mcp_types as types

from lensforge.api.mcp.results import Results
from lensforge.blobs import BlobStore
from lensforge.store import JobRecord, Status
from tests.support import png
from tests.video.clips import write_scene_clip


def _job(result: object) -> JobRecord:
    now = 1_700_000_000.0
    fields = {f.name: None for f in dataclasses.fields(JobRecord)}
    fields |= {
        "id": "job1",
        "plugin": "faces",
        "tool": "redact_video",
        "status": Status.SUCCESS,
        "inputs": {},
        "result": result,
        "attempts": 1,
        "max_attempts": 1,
        "progress": 1.0,
        "owner": "anonymous",
        "cancel_requested": False,
        "created_at": now,
        "updated_at": now,
        "retry_on": [],
    }
    return JobRecord(**fields)


def test_a_video_artifact_is_a_resource_link_and_a_small_image_is_inline(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path / "blobs")
    video = blobs.put(write_scene_clip(tmp_path / "clip.mp4", scenes=1, scene_s=0.5).read_bytes())
    image = blobs.put(png(8, 8))
    result = {
        "video": {"blob": video, "media_type": "video/mp4", "frames": 15},
        "preview": {"blob": image, "media_type": "image/png", "width": 8, "height": 8},
    }
    rendered = Results(blobs).result(None, _job(result))
    links = [b for b in rendered.content if isinstance(b, types.ResourceLink)]
    inline = [b for b in rendered.content if isinstance(b, types.ImageContent)]
    assert [(link.mime_type, link.uri) for link in links] == [
        ("video/mp4", "lensforge://blobs/" + video.removeprefix("sha256:"))
    ]
    assert links[0].size == blobs.size(video)  # small, but never inlined as an image
    assert [block.mime_type for block in inline] == ["image/png"]
