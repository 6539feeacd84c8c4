"""Fixtures shared by the chaos tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.chaos.support import Postgres, postgres_missing


@pytest.fixture
def postgres() -> Iterator[Postgres]:
    """A throwaway PostgreSQL cluster of this test's own (stopped, paused or killed at will)."""
    reason = postgres_missing()
    if reason:
        pytest.skip(reason)
    cluster = Postgres()
    try:
        yield cluster
    finally:
        cluster.close()
