"""The audit trail read back directly: ordering, filters, limits, timestamps and the error
a broken database gives (focused tests that kill mutants of security/audit.py)."""

from __future__ import annotations

import logging
import time
from datetime import datetime

import pytest
from sqlalchemy import Engine, update

from lensforge.errors import StoreError
from lensforge.security.audit import AuditLog
from lensforge.store.tables import audit_events


def test_events_read_back_newest_first_with_their_time(engine: Engine) -> None:
    audit = AuditLog(engine)
    before = time.time()
    audit.record("key_created", "k1", name="a")
    audit.record("request_denied", None, path="/v1/keys")
    events = audit.list()
    assert [(e["event"], e["key_id"], e["detail"]) for e in events] == [
        ("request_denied", None, {"path": "/v1/keys"}),
        ("key_created", "k1", {"name": "a"}),
    ]
    assert events[0]["id"] > events[1]["id"]
    at = datetime.fromisoformat(events[1]["at"].replace("Z", "+00:00")).timestamp()
    assert before - 1 <= at <= time.time() + 1


def test_an_event_shows_the_time_it_was_recorded_at(engine: Engine) -> None:
    audit = AuditLog(engine)
    audit.record("key_revoked", "k1")
    with engine.begin() as conn:
        conn.execute(update(audit_events).values(at=86_400.5))
    assert audit.list()[0]["at"] == "1970-01-02T00:00:00.500Z"


def test_the_filter_the_cursor_and_the_limit(engine: Engine) -> None:
    audit = AuditLog(engine)
    for n in range(105):
        audit.record("even" if n % 2 == 0 else "odd", None, n=n)
    assert len(audit.list()) == 100  # the default page
    assert len(audit.list(limit=3)) == 3
    odd = audit.list(event="odd", limit=200)
    assert {e["event"] for e in odd} == {"odd"} and len(odd) == 52
    newest = audit.list(limit=1)[0]["id"]
    older = audit.list(before=newest, limit=200)
    assert len(older) == 104 and all(e["id"] < newest for e in older)


def test_a_broken_database_is_a_store_error_naming_what_failed(bare_engine: Engine) -> None:
    audit = AuditLog(bare_engine)
    with pytest.raises(StoreError) as read:
        audit.list()
    assert str(read.value).startswith("Reading the audit trail failed:")
    with pytest.raises(StoreError) as write:
        audit.record("key_created", "k1")
    assert str(write.value).startswith("Recording an audit event failed:")


def test_each_event_is_also_a_structured_log_line(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="lensforge.audit"):
        AuditLog(engine).record("key_created", "k1", name="a")
    (line,) = [r for r in caplog.records if r.name == "lensforge.audit"]
    assert line.getMessage() == "key_created key=k1 {'name': 'a'}"
    assert (line.event, line.key_id) == ("key_created", "k1")  # type: ignore[attr-defined]
