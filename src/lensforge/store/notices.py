"""Job notices between servers on one PostgreSQL: ``NOTIFY`` on commit, ``LISTEN`` in a thread.

A transaction that ends jobs (SUCCESS, FAILED, CANCELLED) or leaves jobs PENDING for anyone
to claim sends one notice on the ``lensforge_jobs`` channel as it commits (PostgreSQL
delivers it only if the transaction commits). Every server keeps one connection listening on
that channel (:class:`NoticeListener`, a daemon thread on psycopg's ``notifies()``) and hands
each notice to its event loop: waiters of a job finished elsewhere read it again at once, and
the dispatcher of a server with free capacity claims the new jobs without waiting for a poll.

A payload is ``"<pending count> <job id> <job id> ..."`` (the ids of the jobs that ended),
split across notices under PostgreSQL's 8,000-byte limit. SQLite has no notices: there the
waiters and the dispatcher poll as before. Private to the store package.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy.engine import make_url

log = logging.getLogger(__name__)

CHANNEL = "lensforge_jobs"
MAX_PAYLOAD = 7_900  # bytes; PostgreSQL refuses 8,000 and more
RECONNECT_S = 1.0
NOTIFY = "SELECT pg_notify(%s, %s)"


@dataclass(frozen=True, slots=True)
class Notice:
    """What another transaction committed: jobs that ended, and how many jobs became PENDING.

    ``resync`` says notices may have been missed (the listening connection was re-made):
    every waiter should look again, and the dispatcher try a claim.
    """

    finished: tuple[str, ...] = ()
    pending: int = 0
    resync: bool = False


def payloads(finished: Sequence[str], pending: int) -> list[str]:
    """The notice payloads for one transaction (several when many jobs ended in it)."""
    chunks: list[str] = []
    current = str(pending)
    for job_id in finished:
        if len(current) + 1 + len(job_id) > MAX_PAYLOAD:
            chunks.append(current)
            current = "0"
        current += " " + job_id
    chunks.append(current)
    return chunks


def parse(payload: str) -> Notice:
    head, *ids = payload.split()
    return Notice(finished=tuple(ids), pending=int(head))


def psycopg_conninfo(url: str) -> str:
    """A libpq connection string for a SQLAlchemy PostgreSQL URL (any driver suffix)."""
    parsed = make_url(url).set(drivername="postgresql")
    return parsed.render_as_string(hide_password=False)


class NoticeListener:
    """One listening connection per server; calls ``deliver`` on ``loop`` for each notice."""

    def __init__(
        self, url: str, loop: asyncio.AbstractEventLoop, deliver: Callable[[Notice], None]
    ) -> None:
        self._conninfo = psycopg_conninfo(url)
        self._loop, self._deliver = loop, deliver
        self._stopping = threading.Event()
        self._listening = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lensforge-listen", daemon=True)

    def start(self, timeout_s: float = 10.0) -> None:
        """Start listening; returns once the channel is listened to (or ``timeout_s`` ran)."""
        self._thread.start()
        self._listening.wait(timeout_s)

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(timeout=5.0)

    def _run(self) -> None:
        import psycopg

        first = True
        while not self._stopping.is_set():
            try:
                with psycopg.connect(self._conninfo, autocommit=True, connect_timeout=10) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    self._listening.set()
                    if not first:  # what was sent while we were away is lost: look again
                        self._post(Notice(resync=True))
                    first = False
                    while not self._stopping.is_set():
                        for notify in conn.notifies(timeout=1.0):
                            self._post(parse(notify.payload))
            except Exception as exc:
                if self._stopping.is_set():
                    return
                log.warning(
                    "job notices lost their connection (%s); reconnecting",
                    exc,
                    extra={"event": "notices_reconnect"},
                )
                self._stopping.wait(RECONNECT_S)

    def _post(self, notice: Notice) -> None:
        try:
            self._loop.call_soon_threadsafe(self._deliver, notice)
        except RuntimeError:  # the loop closed under us: the server is stopping
            self._stopping.set()
