"""The store's engine helpers: a database URL's password never reaches a message, the libpq
limits that keep a hung PostgreSQL from holding a caller, and a driver error turned into a
503 whose message quotes nothing of the database's."""

from __future__ import annotations

import logging

import pytest

from lensforge.errors import StoreError
from lensforge.store.database import Database
from lensforge.store.engine import postgres_timeouts, redact_url, store_failed


@pytest.mark.parametrize(
    ("url", "redacted"),
    [
        ("postgresql://lens:s3cret@db:5432/jobs", "postgresql://lens:***@db:5432/jobs"),
        ("postgresql://lens@db/jobs", "postgresql://lens:***@db/jobs"),
        # the password may itself hold '@' and ':'; the host is after the last '@'
        ("postgresql://lens:p@ss:w@db/jobs", "postgresql://lens:***@db/jobs"),
        (
            "postgresql+psycopg://a:b@h/d?sslmode=require",
            "postgresql+psycopg://a:***@h/d?sslmode=require",
        ),
        ("sqlite:///./lensforge.db", "sqlite:///./lensforge.db"),
        ("not a url @ all", "not a url @ all"),
        ("user:pw@host", "user:pw@host"),
    ],
)
def test_a_database_url_loses_its_password(url: str, redacted: str) -> None:
    assert redact_url(url) == redacted


def test_a_store_that_cannot_be_opened_names_the_url_without_its_password() -> None:
    with pytest.raises(StoreError) as caught:
        Database("postgresql+nosuchdriver://lens:s3cret@db.internal/jobs")
    message = caught.value.message
    assert message.startswith(
        "Cannot open the job store at postgresql+nosuchdriver://lens:***@db.internal/jobs: "
    )
    assert "s3cret" not in message


def test_postgres_connections_are_bounded_in_every_way_a_server_can_hang() -> None:
    assert postgres_timeouts(5.0, 30.0) == {
        "connect_timeout": 5,
        "options": "-c statement_timeout=30000",
        "keepalives": 1,
        "keepalives_idle": 5,
        "keepalives_interval": 2,
        "keepalives_count": 3,
        "tcp_user_timeout": 35000,  # connect plus statement: a dead peer is noticed by then
    }
    fractional = postgres_timeouts(0.2, 1.5)
    assert fractional["connect_timeout"] == 1  # libpq reads whole seconds; 0 would mean forever
    assert fractional["options"] == "-c statement_timeout=1500"
    assert fractional["tcp_user_timeout"] == 1700
    assert postgres_timeouts(2.6, 0.0)["connect_timeout"] == 3


def test_a_driver_error_becomes_a_503_and_its_text_goes_to_the_log_only(
    caplog: pytest.LogCaptureFixture,
) -> None:
    driver_error = RuntimeError('relation "jobs" does not exist: SELECT secret_column FROM jobs')
    with caplog.at_level(logging.ERROR, logger="lensforge.store"):
        error = store_failed(driver_error)
    assert isinstance(error, StoreError)
    assert (error.status, error.code, error.retryable) == (503, "store_unavailable", True)
    assert error.message == (
        "The job store failed; the server log has the details. Try again shortly."
    )
    (record,) = caplog.records
    assert record.name == "lensforge.store.store"
    assert record.getMessage() == f"job store failure: {driver_error}"
    assert record.event == "store_failed"  # type: ignore[attr-defined]
