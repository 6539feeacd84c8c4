"""No leaks: error responses carry no traceback, file path, SQL or secret; keys never reach the
logs (checked on every record caplog captures, at DEBUG, for all loggers); job views never
carry inputs or the stored traceback.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
import sqlalchemy.exc
from typer.testing import CliRunner

from lensforge.cli import app as cli
from tests.security.conftest import (
    Secure,
    Tenant,
    assert_envelope,
    assert_no_leak,
    run_echo,
)
from tests.security.hostile import HOSTILE


def every_secret(secure: Secure, *more: str) -> list[str]:
    found = [t.secret for t in secure.tenants] + list(more)
    return found + [secret.split("_", 2)[2] for secret in found if secret.count("_") >= 2]


def test_an_unexpected_exception_is_masked(shared: Secure, monkeypatch: pytest.MonkeyPatch) -> None:
    jobs = shared.app.state.services.jobs

    async def explode(**_: Any) -> Any:
        raise RuntimeError(
            "boom in /work/main/src/lensforge/store/store.py: SELECT * FROM jobs WHERE owner = ?"
        )

    monkeypatch.setattr(jobs, "list_jobs", explode)
    response = shared.client.get("/v1/jobs", headers=shared.alice.headers)
    error = assert_envelope(response, 500, "internal_error")
    assert error["details"].keys() == {"request_id"}
    assert error["details"]["request_id"] in error["message"]
    assert_no_leak(response.text, every_secret(shared))
    assert "boom" not in response.text and "RuntimeError" not in response.text


def test_a_database_error_is_masked(shared: Secure, monkeypatch: pytest.MonkeyPatch) -> None:
    jobs = shared.app.state.services.jobs
    statement = "SELECT jobs.id, jobs.inputs FROM jobs WHERE jobs.owner = ?"

    async def locked(*_: Any, **__: Any) -> Any:
        raise sqlalchemy.exc.OperationalError(statement, ("alice",), Exception("database locked"))

    monkeypatch.setattr(jobs, "get", locked)
    response = shared.client.get(f"/v1/jobs/{'0' * 36}", headers=shared.alice.headers)
    assert response.status_code in (500, 503), response.text
    assert_no_leak(response.text, every_secret(shared))
    assert "database locked" not in response.text


def test_a_failing_tool_returns_its_type_never_its_text_or_traceback(shared: Secure) -> None:
    client = shared.client
    response = client.post(
        "/v1/analyze",
        json={"plugin": "testing", "tool": "fail", "inputs": {"message": "bad day"}},
        headers=shared.alice.headers,
    )
    error = assert_envelope(response, 502, "plugin_error")
    assert "bad day" not in response.text  # the text may hold secrets (issue 15, item 13)
    assert "RuntimeError" in error["message"]
    assert_no_leak(response.text, every_secret(shared))
    job_id = error["job_id"]
    for suffix in ("", "/result", "/events", "/stream"):
        view = client.get(f"/v1/jobs/{job_id}{suffix}", headers=shared.alice.headers)
        assert_no_leak(view.text, every_secret(shared))
        assert "traceback" not in view.text.lower()
        assert "bad day" not in view.text


def bad_requests(secure: Secure) -> list[tuple[str, str, dict[str, Any]]]:
    """Many ways to get a 4xx, each with the key of someone who may call the route."""
    a = secure.alice.headers
    admin = secure.admin.headers
    js = {**a, "content-type": "application/json"}
    wrong = {"Authorization": f"Bearer {secure.alice.secret[:-2]}zz"}
    cases: list[tuple[str, str, dict[str, Any]]] = [
        ("GET", "/v1/jobs", {"headers": wrong}),
        ("GET", "/v1/keys", {"headers": a}),
        ("GET", "/v1/jobs/nope", {"headers": a}),
        ("GET", "/v1/jobs?limit=0", {"headers": a}),
        ("GET", "/v1/jobs?status=EXPLODED", {"headers": a}),
        ("GET", "/v1/blobs/../../etc/passwd", {"headers": admin}),
        ("GET", "/v1/blobs/" + "f" * 64, {"headers": admin}),
        ("GET", "/v1/plugins/nope", {"headers": a}),
        ("GET", "/v1/nowhere", {"headers": a}),
        ("PUT", "/v1/jobs", {"headers": a}),
        ("POST", "/v1/jobs", {"headers": js, "content": b"{"}),
        ("POST", "/v1/jobs", {"headers": js, "content": b"[]"}),
        ("POST", "/v1/jobs", {"headers": js, "content": b'{"plugin": "nope"}'}),
        ("POST", "/v1/jobs", {"headers": js, "content": b'{"plugin":"testing","tool":"zz"}'}),
        ("POST", "/v1/jobs", {"headers": a, "json": {"plugin": "testing", "tool": "echo"}}),
        ("POST", "/v1/jobs", {"headers": a, "data": {"plugin": "testing", "inputs": "{"}}),
        ("POST", "/v1/keys", {"headers": admin, "json": {"name": "", "scopes": ["x"]}}),
        ("POST", "/v1/keys", {"headers": {**admin, "content-type": "application/json"}}),
        ("DELETE", "/v1/keys/nope", {"headers": admin}),
        ("GET", "/v1/audit?cursor=-1", {"headers": admin}),
        ("POST", "/v1/analyze-execution", {"headers": a, "json": {"image": "!!"}}),
        ("POST", "/v1/analyze-execution", {"headers": js, "content": b"\xff\xfe{"}),
        ("GET", "/v1/analyze-execution/jobs/nope", {"headers": a}),
    ]
    for case in HOSTILE:
        data = case.build()
        if case.kind == "json":
            cases.append(("POST", "/v1/jobs", {"headers": js, "content": data}))
        else:
            files = {"image": ("x.png", data, "image/png")}
            form = {"plugin": "testing", "tool": "size"}
            cases.append(("POST", "/v1/analyze", {"headers": a, "files": files, "data": form}))
    return cases


def test_no_error_response_leaks_a_path_sql_traceback_or_secret(shared: Secure) -> None:
    secrets = every_secret(shared)
    errors = 0
    for method, url, kwargs in bad_requests(shared):
        response = shared.client.request(method, url, **kwargs)
        if response.status_code < 400:
            continue
        errors += 1
        assert response.status_code < 500, (method, url, response.text)
        assert_no_leak(response.text, secrets)
        for name, value in response.headers.items():
            assert_no_leak(f"{name}: {value}", secrets)
    assert errors >= 25


def test_keys_never_reach_the_logs(
    secure: Secure, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Exercise every path a key travels, logging everything at DEBUG, then grep the records."""
    caplog.set_level(logging.DEBUG)  # the root logger and so every logger
    client = secure.client
    made = client.post(
        "/v1/keys", json={"name": "logged?", "scopes": ["analyze", "read"]}, **secure.admin.kw
    )
    new = Tenant("new", made.json()["id"], made.json()["key"], ("analyze", "read"))
    wrong = secure.alice.secret[:-3] + "abc"
    for tenant in (*secure.tenants, new):
        client.get("/v1/jobs", headers={"X-API-Key": tenant.secret})
        client.get("/v1/keys", headers=tenant.headers)  # 403 for most: audited
        client.post("/v1/jobs", json={"plugin": "testing", "tool": "noop"}, **tenant.kw)
    client.get("/v1/jobs", headers={"Authorization": f"Bearer {wrong}"})
    client.get("/v1/jobs", headers={"X-API-Key": f"{wrong}\n"})
    run_echo(client, secure.alice, "an ordinary job")
    client.post("/v1/jobs", json={"plugin": "nope"}, **secure.alice.kw)
    client.post(
        "/mcp",
        json={"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {}},
        headers={**secure.alice.headers, "Accept": "application/json, text/event-stream"},
    )
    client.delete(f"/v1/keys/{new.key_id}", **secure.admin.kw)
    client.get("/v1/jobs", **new.kw)  # a revoked key
    client.get("/v1/audit?limit=1000", **secure.admin.kw)
    monkeypatch.setenv("LENSFORGE_DATABASE_URL", secure.settings.database_url)
    cli_made = CliRunner().invoke(cli, ["keys", "create", "--name", "cli", "--json"])
    cli_secret = json.loads(cli_made.stdout)["key"]

    assert caplog.records, "nothing was logged: the check would prove nothing"
    secrets = every_secret(secure, new.secret, cli_secret, wrong)
    for record in caplog.records:
        rendered = " ".join(
            [record.getMessage(), repr(record.args), repr(record.__dict__), record.exc_text or ""]
        )
        for secret in secrets:
            assert secret not in rendered, f"{record.name}: {rendered[:300]}"
    audit_events = [r for r in caplog.records if r.name == "lensforge.audit"]
    assert len(audit_events) >= 8
