"""The audit trail: key creation and revocation (API and CLI), denied requests and admin
actions are structured events (a log record with an ``event`` name, and a row) that admins
read through GET /v1/audit, newest first, filterable, paged, free of secrets.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from typer.testing import CliRunner

from lensforge.cli import app as cli
from tests.security.conftest import Secure, assert_envelope


def audit(secure: Secure, query: str = "") -> list[dict[str, Any]]:
    response = secure.client.get(f"/v1/audit?limit=1000{query}", headers=secure.admin.headers)
    assert response.status_code == 200, response.text
    return list(response.json()["events"])


def test_key_creation_and_revocation_are_audited(
    secure: Secure, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="lensforge.audit")
    client, admin = secure.client, secure.admin
    made = client.post("/v1/keys", json={"name": "svc", "scopes": ["read"]}, **admin.kw).json()
    client.delete(f"/v1/keys/{made['id']}", **admin.kw)

    created = [e for e in audit(secure, "&event=key_created")]
    assert created[0]["key_id"] == admin.key_id
    assert created[0]["detail"]["new_key"] == made["id"]
    assert created[0]["detail"]["scopes"] == ["read"]
    revoked = audit(secure, "&event=key_revoked")
    assert revoked[0]["key_id"] == admin.key_id
    assert revoked[0]["detail"]["revoked_key"] == made["id"]
    # The same events as structured log records.
    events = {getattr(r, "event", None): r for r in caplog.records}
    assert {"key_created", "key_revoked"} <= set(events)
    assert events["key_created"].key_id == admin.key_id  # type: ignore[attr-defined]
    assert made["key"] not in json.dumps(audit(secure))


def test_cli_key_changes_are_audited(secure: Secure, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LENSFORGE_DATABASE_URL", secure.settings.database_url)
    runner = CliRunner()
    made = json.loads(runner.invoke(cli, ["keys", "create", "--name", "c", "--json"]).stdout)
    assert runner.invoke(cli, ["keys", "revoke", made["id"]]).exit_code == 0
    created = audit(secure, "&event=key_created")[0]
    assert created["detail"] == {"new_key": made["id"], "scopes": ["analyze", "read"], "via": "cli"}
    revoked = audit(secure, "&event=key_revoked")[0]
    assert revoked["detail"] == {"revoked_key": made["id"], "via": "cli"}
    assert made["key"] not in json.dumps(audit(secure))


def test_denied_requests_are_audited(secure: Secure) -> None:
    client = secure.client
    client.get("/v1/jobs")
    client.get("/v1/jobs", headers={"X-API-Key": secure.alice.secret + "x"})
    client.get("/v1/keys", **secure.alice.kw)
    client.post("/v1/jobs", json={}, **secure.reader.kw)

    denied = audit(secure, "&event=auth_denied")
    assert len(denied) >= 2
    assert all(e["key_id"] is None for e in denied)
    reasons = {e["detail"]["reason"] for e in denied if e["detail"]["route"] == "/v1/jobs"}
    assert reasons == {"no key", "invalid key"}
    forbidden = audit(secure, "&event=auth_forbidden")
    by_key = {(e["key_id"], e["detail"]["route"]) for e in forbidden}
    assert (secure.alice.key_id, "/v1/keys") in by_key
    assert (secure.reader.key_id, "/v1/jobs") in by_key
    assert secure.alice.secret not in json.dumps(audit(secure))


def test_admin_actions_are_audited(secure: Secure) -> None:
    secure.client.get("/metrics", **secure.admin.kw)
    secure.client.get("/v1/keys", **secure.admin.kw)
    actions = {
        (e["key_id"], e["detail"]["method"], e["detail"]["route"])
        for e in audit(secure, "&event=admin_action")
    }
    assert (secure.admin.key_id, "GET", "/metrics") in actions
    assert (secure.admin.key_id, "GET", "/v1/keys") in actions


def test_only_admins_read_the_audit_trail(secure: Secure) -> None:
    for tenant in (secure.alice, secure.reader, secure.analyst):
        assert_envelope(secure.client.get("/v1/audit", **tenant.kw), 403, "forbidden")
    assert_envelope(secure.client.get("/v1/audit"), 401, "unauthorized")


def test_the_audit_trail_is_newest_first_and_pages(secure: Secure) -> None:
    for _ in range(7):
        secure.client.get("/v1/jobs")  # auth_denied, seven times
    first = secure.client.get("/v1/audit?limit=3", **secure.admin.kw).json()
    ids = [e["id"] for e in first["events"]]
    assert ids == sorted(ids, reverse=True) and len(ids) == 3
    second = secure.client.get(
        f"/v1/audit?limit=3&cursor={first['next_cursor']}", **secure.admin.kw
    ).json()
    assert max(e["id"] for e in second["events"]) < min(ids)
    assert all(e["at"].endswith("Z") for e in first["events"] + second["events"])


def test_an_out_of_range_audit_cursor_is_a_4xx(shared: Secure) -> None:
    response = shared.client.get(f"/v1/audit?cursor={2**63}", **shared.admin.kw)
    assert 400 <= response.status_code < 500, response.text


def test_a_wrong_key_is_audited_as_such(secure: Secure) -> None:
    secure.client.get("/v1/jobs", headers={"X-API-Key": secure.alice.secret[:-1] + "?"})
    denied = audit(secure, "&event=auth_denied")[0]
    assert denied["detail"]["reason"] != "no key"
