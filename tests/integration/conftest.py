"""A throwaway PostgreSQL 15 cluster for the store contract suite.

One cluster per test session (per xdist worker), started with ``initdb`` + ``pg_ctl`` in a
temporary directory and stopped at the end; each test gets a fresh database in it.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import free_port

PG_BIN = Path(os.environ.get("LENSFORGE_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))


class PostgresCluster:
    """A running cluster: ``url(db)`` builds a SQLAlchemy URL, ``create_database`` a fresh DB."""

    def __init__(self, port: int) -> None:
        self.port = port

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        import psycopg

        name = f"t_{secrets.token_hex(6)}"
        conninfo = f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres"
        with psycopg.connect(conninfo, autocommit=True, connect_timeout=10) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return name

    def truncate(self, database: str) -> None:
        """Empty every LensForge table of ``database`` (keeping the schema and its version)."""
        import psycopg

        conninfo = f"host=127.0.0.1 port={self.port} user=postgres dbname={database}"
        with psycopg.connect(conninfo, autocommit=True, connect_timeout=10) as conn:
            tables = conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
                " AND tablename <> 'alembic_version'"
            ).fetchall()
            if tables:
                names = ", ".join(f'"{name}"' for (name,) in tables)
                conn.execute(f"TRUNCATE {names} RESTART IDENTITY CASCADE")

    def drop_database(self, name: str) -> None:
        import psycopg

        conninfo = f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres"
        with psycopg.connect(conninfo, autocommit=True, connect_timeout=10) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _as_postgres(args: list[str]) -> list[str]:
    """Run as the ``postgres`` OS user when we are root (initdb refuses to run as root)."""
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        runuser = shutil.which("runuser")
        if runuser:
            return [runuser, "-u", "postgres", "--", *args]
        return ["su", "postgres", "-s", "/bin/sh", "-c", " ".join(args)]
    return args


def _missing_postgres() -> str | None:
    for binary in ("initdb", "pg_ctl"):
        if not (PG_BIN / binary).is_file():
            return f"PostgreSQL 15 binaries not found in {PG_BIN} (install the postgresql package)"
    if os.geteuid() == 0:
        import pwd

        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root but there is no 'postgres' OS user to run initdb as"
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "psycopg is not installed (pip install 'psycopg[binary]')"
    return None


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PostgresCluster]:
    reason = _missing_postgres()
    if reason:
        pytest.skip(reason)
    root = Path(tempfile.mkdtemp(prefix="lensforge-pg-"))
    data = root / "data"
    if os.geteuid() == 0:
        import pwd

        pw = pwd.getpwnam("postgres")
        os.chown(root, pw.pw_uid, pw.pw_gid)
    port = free_port()
    initdb = [str(PG_BIN / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust"]
    try:
        subprocess.run(_as_postgres(initdb), check=True, capture_output=True, timeout=120)
    except subprocess.CalledProcessError as exc:
        shutil.rmtree(root, ignore_errors=True)
        pytest.fail(f"initdb failed: {exc.stderr!r}")
    options = f"-c listen_addresses=127.0.0.1 -p {port} -k {root} -c fsync=off"
    start = [
        str(PG_BIN / "pg_ctl"),
        "-D",
        str(data),
        "-o",
        options,
        "-l",
        str(root / "server.log"),
        "-w",
        "-t",
        "60",
        "start",
    ]
    try:
        subprocess.run(_as_postgres(start), check=True, capture_output=True, timeout=90)
    except subprocess.CalledProcessError as exc:
        log = (
            (root / "server.log").read_text(errors="replace")
            if (root / "server.log").exists()
            else ""
        )
        shutil.rmtree(root, ignore_errors=True)
        pytest.fail(f"pg_ctl start failed: {exc.stderr!r}\n{log}")
    try:
        yield PostgresCluster(port)
    finally:
        stop = [str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"]
        subprocess.run(_as_postgres(stop), capture_output=True, timeout=60, check=False)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_database(postgres_cluster: PostgresCluster) -> str:
    """One database for the session; tests that use it empty it first (``truncate``)."""
    return postgres_cluster.create_database()
