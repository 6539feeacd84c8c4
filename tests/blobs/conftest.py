"""The blob stores under test: a local directory and a real S3-compatible server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from lensforge.blobs import Blobs, BlobStore, S3BlobStore, S3Options
from tests.blobs.seaweed import BUCKET, seaweedfs


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Options]:
    with seaweedfs(tmp_path_factory.mktemp("seaweedfs")) as options:
        yield options


@pytest.fixture(params=["local", "s3"])
def blobs(request: pytest.FixtureRequest, tmp_path: Path) -> Blobs:
    if request.param == "local":
        return BlobStore(tmp_path / "blobs")
    options: S3Options = request.getfixturevalue("s3_server")
    return S3BlobStore(f"s3://{BUCKET}/{tmp_path.name}", tmp_path / "spool", options)
