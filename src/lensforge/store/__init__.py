"""The durable job store: tables, migrations and the one guarded transition function."""

from lensforge.store.engine import StoreBusy
from lensforge.store.store import Event, JobRecord, JobStore, NewJob
from lensforge.store.tables import TERMINAL, Status

__all__ = ["TERMINAL", "Event", "JobRecord", "JobStore", "NewJob", "Status", "StoreBusy"]
