"""A migrated SQLite job store whose engine the security modules use directly."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from lensforge.store import JobStore


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    store = JobStore(f"sqlite:///{tmp_path / 'security.db'}")
    store.migrate()
    try:
        yield store.engine
    finally:
        store.close()


@pytest.fixture
def bare_engine(tmp_path: Path) -> Iterator[Engine]:
    """An engine on a database with no tables: every query fails as a database error."""
    store = JobStore(f"sqlite:///{tmp_path / 'empty.db'}")
    try:
        yield store.engine
    finally:
        store.close()


class Clock:
    """``time.monotonic`` as the test sets it (``clock.now``)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    """A fake monotonic clock for the key cache and the token bucket (both read
    ``time.monotonic``)."""
    fake = Clock()
    monkeypatch.setattr(time, "monotonic", fake)
    return fake
