"""A throwaway PostgreSQL 15 cluster for the store contract suite.

One cluster per test session (per xdist worker), started by
:func:`lensforge.testing_postgres.throwaway_cluster` (``initdb`` + ``pg_ctl`` in a temporary
directory, shared with the benchmarks) and stopped at the end; each test gets a fresh
database in it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest

from lensforge.testing_postgres import (
    PG_BIN,
    PostgresCluster,
    as_postgres,
    missing_postgres,
    throwaway_cluster,
)

# The names other test packages import from here (tests/chaos, tests/e2e).
_as_postgres = as_postgres
_missing_postgres = missing_postgres
__all__ = ["PG_BIN", "PostgresCluster", "_as_postgres", "_missing_postgres"]


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PostgresCluster]:
    reason = missing_postgres()
    if reason:
        pytest.skip(reason)
    with contextlib.ExitStack() as stack:
        try:
            cluster = stack.enter_context(throwaway_cluster())
        except RuntimeError as exc:
            pytest.fail(str(exc))
        yield cluster


@pytest.fixture(scope="session")
def postgres_database(postgres_cluster: PostgresCluster) -> str:
    """One database for the session; tests that use it empty it first (``truncate``)."""
    return postgres_cluster.create_database()
