"""Shared fixtures: real SQLite files in tmp_path, the real app with its lifespan."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from lensforge.api import create_app
from lensforge.settings import Settings
from tests.plugins_for_tests import TEST_PLUGINS

__all__ = ["TEST_PLUGINS"]  # tests/mcp_server imports it from here


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        database_url=f"sqlite:///{tmp_path / 'lensforge.db'}",
        data_dir=tmp_path / "data",
        workers=2,
        poll_interval_s=0.05,
    )


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    """The real app (lifespan included) over an in-process transport."""
    with TestClient(create_app(settings, extra_plugins=TEST_PLUGINS)) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def module_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """One real app (lifespan, default executor) shared by a module's tests, for speed."""
    root = tmp_path_factory.mktemp("module-app")
    shared = Settings(
        database_url=f"sqlite:///{root / 'lensforge.db'}",
        data_dir=root / "data",
        workers=2,
        poll_interval_s=0.05,
    )
    with TestClient(create_app(shared, extra_plugins=TEST_PLUGINS)) as test_client:
        yield test_client
