"""Helpers shared by the REST API's tests."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from lensforge.api import create_app
from lensforge.settings import Settings
from tests.conftest import TEST_PLUGINS
from tests.support import wait_for_job


def thread_app(root: Path) -> FastAPI:
    """The real app on a SQLite file under ``root``, tools on threads (jobs end in ms)."""
    settings = Settings(
        database_url=f"sqlite:///{root / 'lensforge.db'}",
        data_dir=root / "data",
        executor="thread",
        workers=2,
        poll_interval_s=0.05,
    )
    return create_app(settings, extra_plugins=TEST_PLUGINS)


wait_for = wait_for_job  # the name these tests use
