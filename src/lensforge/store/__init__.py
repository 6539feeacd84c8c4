"""The durable job store: its domain API (a Protocol), the SQL implementation and row types.

Outside this package only these names are used; group commit, the DB-API layer, statements
and migrations stay private behind :class:`JobStore`'s async methods.
"""

from lensforge.store.engine import StoreBusy
from lensforge.store.notices import Notice
from lensforge.store.protocol import JobStoreProtocol
from lensforge.store.records import Checkpoint, Event, FrameItem, JobRecord, NewJob
from lensforge.store.store import JobStore
from lensforge.store.tables import TERMINAL, Status

__all__ = [
    "TERMINAL",
    "Checkpoint",
    "Event",
    "FrameItem",
    "JobRecord",
    "JobStore",
    "JobStoreProtocol",
    "NewJob",
    "Notice",
    "Status",
    "StoreBusy",
]
