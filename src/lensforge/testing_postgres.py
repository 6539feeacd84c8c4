"""A throwaway PostgreSQL cluster on loopback, for the test suite and the benchmarks.

``initdb`` + ``pg_ctl`` in a temporary directory (as the ``postgres`` OS user when run as
root, since initdb refuses root), listening on 127.0.0.1 only with ``fsync=off``, stopped
and removed when the ``with`` block ends. It needs the PostgreSQL 15 server binaries (Debian
``postgresql``; another directory through ``LENSFORGE_TEST_PG_BIN``) and ``psycopg``.

    with throwaway_cluster() as cluster:
        url = cluster.url(cluster.create_database())
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

PG_BIN = Path(os.environ.get("LENSFORGE_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))


class PostgresCluster:
    """A running cluster: ``url(db)`` builds a SQLAlchemy URL, ``create_database`` a fresh DB."""

    def __init__(self, port: int, root: Path | None = None) -> None:
        self.port = port
        self.root = root  # its directory (data, socket and log), when known

    def conninfo(self, database: str = "postgres") -> str:
        """A libpq connection string (for psycopg)."""
        return f"host=127.0.0.1 port={self.port} user=postgres dbname={database}"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        import psycopg

        name = f"t_{secrets.token_hex(6)}"
        with psycopg.connect(self.conninfo(), autocommit=True, connect_timeout=10) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return name

    def truncate(self, database: str) -> None:
        """Empty every LensForge table of ``database`` (keeping the schema and its version)."""
        import psycopg

        with psycopg.connect(self.conninfo(database), autocommit=True, connect_timeout=10) as conn:
            tables = conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
                " AND tablename <> 'alembic_version'"
            ).fetchall()
            if tables:
                names = ", ".join(f'"{name}"' for (name,) in tables)
                conn.execute(f"TRUNCATE {names} RESTART IDENTITY CASCADE")

    def drop_database(self, name: str) -> None:
        import psycopg

        with psycopg.connect(self.conninfo(), autocommit=True, connect_timeout=10) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def as_postgres(args: list[str]) -> list[str]:
    """Run as the ``postgres`` OS user when we are root (initdb refuses to run as root)."""
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        runuser = shutil.which("runuser")
        if runuser:
            return [runuser, "-u", "postgres", "--", *args]
        return ["su", "postgres", "-s", "/bin/sh", "-c", " ".join(args)]
    return args


def missing_postgres() -> str | None:
    """Why no cluster can be started here, or None when one can."""
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


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def throwaway_cluster(
    prefix: str = "lensforge-pg-", settings: tuple[str, ...] = ()
) -> Iterator[PostgresCluster]:
    """Start a fresh cluster (``settings``: extra ``name=value`` server settings); stop it
    and delete its directory at the end. Raises RuntimeError when it cannot start."""
    reason = missing_postgres()
    if reason:
        raise RuntimeError(reason)
    root = Path(tempfile.mkdtemp(prefix=prefix))
    data = root / "data"
    try:
        if os.geteuid() == 0:
            import pwd

            pw = pwd.getpwnam("postgres")
            os.chown(root, pw.pw_uid, pw.pw_gid)
        port = _free_port()
        initdb = [str(PG_BIN / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust"]
        try:
            subprocess.run(as_postgres(initdb), check=True, capture_output=True, timeout=120)
        except subprocess.CalledProcessError as exc:
            raise RuntimeError(f"initdb failed: {exc.stderr!r}") from exc
        options = f"-c listen_addresses=127.0.0.1 -p {port} -k {root} -c fsync=off"
        options += "".join(f" -c {setting}" for setting in settings)
        log = root / "server.log"
        start = [str(PG_BIN / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(log)]
        try:
            subprocess.run(
                as_postgres([*start, "-w", "-t", "60", "start"]),
                check=True,
                capture_output=True,
                timeout=90,
            )
        except subprocess.CalledProcessError as exc:
            text = log.read_text(errors="replace") if log.exists() else ""
            raise RuntimeError(f"pg_ctl start failed: {exc.stderr!r}\n{text}") from exc
        try:
            yield PostgresCluster(port, root)
        finally:
            stop = [str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"]
            subprocess.run(as_postgres(stop), capture_output=True, timeout=60, check=False)
    finally:
        shutil.rmtree(root, ignore_errors=True)
