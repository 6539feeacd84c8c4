"""The audit trail: key creation and revocation, denied requests, admin actions.

Each event is a structured log line (``event`` name, key id, details) and a row that admins
read through ``GET /v1/audit``. Secrets never enter it.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from sqlalchemy import Engine, insert, select

from lensforge.errors import utc_timestamp
from lensforge.store.engine import database_errors
from lensforge.store.tables import audit_events

log = logging.getLogger("lensforge.audit")


class AuditLog:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def record(self, event: str, key_id: str | None = None, **detail: Any) -> None:
        log.info("%s key=%s %s", event, key_id, detail, extra={"event": event, "key_id": key_id})
        with database_errors("Recording an audit event"), self.engine.begin() as conn:
            conn.execute(
                insert(audit_events).values(
                    at=time.time(), event=event, key_id=key_id, detail=detail
                )
            )

    def list(
        self, *, event: str | None = None, before: int | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        query = select(audit_events).order_by(audit_events.c.id.desc()).limit(limit)
        if event is not None:
            query = query.where(audit_events.c.event == event)
        if before is not None:
            query = query.where(audit_events.c.id < before)
        with database_errors("Reading the audit trail"), self.engine.connect() as conn:
            rows = conn.execute(query).all()
        return [
            {
                "id": r.id,
                "at": utc_timestamp(r.at),
                "event": r.event,
                "key_id": r.key_id,
                "detail": r.detail,
            }
            for r in rows
        ]
