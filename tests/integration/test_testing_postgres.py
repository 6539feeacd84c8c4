"""The throwaway cluster the tests and benchmarks share: it takes extra settings, serves on
loopback, and leaves nothing behind."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import psycopg
import pytest

from lensforge.testing_postgres import missing_postgres, throwaway_cluster

pytestmark = pytest.mark.skipif(missing_postgres() is not None, reason=str(missing_postgres()))


def test_a_cluster_takes_settings_and_is_removed_when_done() -> None:
    with throwaway_cluster(prefix="lensforge-pg-test-", settings=("max_connections=37",)) as pg:
        assert pg.root is not None and (pg.root / "data" / "postmaster.pid").exists()
        with psycopg.connect(pg.conninfo(pg.create_database()), connect_timeout=10) as conn:
            assert conn.execute("SHOW max_connections").fetchone() == ("37",)
            assert conn.execute("SHOW listen_addresses").fetchone() == ("127.0.0.1",)
        root = pg.root
    assert not root.exists()
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(pg.conninfo(), connect_timeout=3)


def test_a_setting_the_server_refuses_is_a_clear_error_and_leaves_nothing() -> None:
    prefix = f"lensforge-pg-refused-{os.getpid()}-"
    with (
        pytest.raises(RuntimeError, match="pg_ctl start failed"),
        throwaway_cluster(prefix=prefix, settings=("no_such_setting=1",)),
    ):
        pass
    assert list(Path(tempfile.gettempdir()).glob(f"{prefix}*")) == []
