"""Schemathesis against the app's own OpenAPI document, over real HTTP.

The app runs under uvicorn in a background thread on a free 127.0.0.1 port (auth on, three
keys). Every operation gets generated requests (positive and negative data, derandomized,
bounded counts) three ways: with no key, with a tenant's key and with an admin key. The
checks: no 5xx, and every response matches the schema documented for its status.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
import uvicorn
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import response_schema_conformance

from lensforge.api import create_app
from tests.security.conftest import (
    PLUGINS,
    PUBLIC,
    Tenant,
    b64,
    make_settings,
    record_figure,
    sha256,
)
from tests.support import free_port, png

pytestmark = pytest.mark.slow

# Examples per operation (positive, negative data), by key. Without a key nearly every
# answer is an immediate 401, so fewer examples say as much.
EXAMPLES = {"no key": (4, 3), "tenant key": (10, 6), "admin key": (10, 6)}
CHECKS = [not_a_server_error, response_schema_conformance]
MODEL_BODIED = {"/v1/keys", "/v1/analyze-execution", "/v1/analyze-execution/async"}


def known_bug(method: str, path: str, status: int, keyed: bool) -> str | None:
    """The xfail regression test of a failure already reported, if this is one."""
    if (method, path, status) == ("GET", "/v1/audit", 500):
        return "test_audit.py::test_an_out_of_range_audit_cursor_is_a_4xx"
    if not keyed and path in MODEL_BODIED and status in (400, 422):
        return "test_auth.py::test_a_malformed_body_without_a_key_is_still_401"
    return None


@dataclass
class Live:
    """A real server in this process: its URL, app and keys."""

    url: str
    app: Any
    keys: dict[str, Tenant]
    ids: dict[str, str] = field(default_factory=dict)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    root: Path = tmp_path_factory.mktemp("schemathesis")
    port = free_port()
    app = create_app(make_settings(root), extra_plugins=PLUGINS)
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="critical", ws="none")
    )
    thread = threading.Thread(target=server.run, name="schemathesis-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline and thread.is_alive():
        time.sleep(0.05)
    assert server.started, "the server did not start"
    try:
        store = app.state.services.keys
        made = {}
        for name, scopes in (("alice", ("analyze", "read")), ("root", ("admin",))):
            info, secret = store.create(name, scopes)
            made[name] = Tenant(name, info.id, secret, scopes)
        url = f"http://127.0.0.1:{port}"
        # Real ids, so "own resource" paths are reached too (not only 404s).
        image = png(31, 17)
        answer = requests.post(
            f"{url}/v1/analyze",
            json={"plugin": "testing", "tool": "size", "inputs": {"image": b64(image)}},
            headers=made["alice"].headers,
            timeout=30,
        )
        assert answer.status_code == 200, answer.text
        ids = {"job": answer.json()["job_id"], "blob": sha256(image)}
        yield Live(url, app, made, ids)
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@dataclass
class Tally:
    cases: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    known: list[str] = field(default_factory=list)


def fuzz_operation(
    operation: Any,
    live: Live,
    auth: dict[str, str],
    tally: Tally,
    session: requests.Session,
    examples: tuple[int, int],
) -> None:
    """Run one operation's generated cases; failures are tallied, not raised (no shrinking)."""
    path_parameters = {}
    for name, value in (("job_id", live.ids.get("job")), ("digest", live.ids.get("blob"))):
        if "{" + name + "}" in operation.path and value:
            path_parameters[name] = value

    positive, negative = examples
    for mode, count in (
        (schemathesis.GenerationMode.POSITIVE, positive),
        (schemathesis.GenerationMode.NEGATIVE, negative),
    ):
        strategies = [operation.as_strategy(generation_mode=mode)]
        if path_parameters and mode is schemathesis.GenerationMode.POSITIVE:
            strategies.append(
                operation.as_strategy(generation_mode=mode, path_parameters=path_parameters)
            )
        for strategy in strategies:
            run = settings(
                max_examples=count,
                derandomize=True,
                deadline=None,
                database=None,
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=list(HealthCheck),
            )(given(case=strategy)(lambda case: check_case(case, live, auth, tally, session)))
            try:
                run()
            except schemathesis.errors.InvalidSchema:  # pragma: no cover - schema problem
                raise
            except Exception as exc:  # generation impossible for this mode (e.g. no params)
                if "Unsatisfiable" in type(exc).__name__ or "cannot" in str(exc).lower():
                    continue
                raise


def check_case(
    case: Any, live: Live, auth: dict[str, str], tally: Tally, session: requests.Session
) -> None:
    try:
        response = case.call(base_url=live.url, headers=auth, session=session, timeout=30)
    except requests.RequestException as exc:
        tally.failures.append(f"{case.operation.label}: transport error {exc!r}")
        return
    tally.cases += 1
    status = response.status_code
    tally.statuses[status] = tally.statuses.get(status, 0) + 1
    problem = None
    try:
        case.validate_response(response, checks=CHECKS)
    except (FailureGroup, Exception) as exc:  # FailureGroup is a BaseExceptionGroup
        problem = str(exc).strip()[:400]
    path = case.operation.path
    if not auth and path not in PUBLIC and status != 401:
        problem = f"reachable without a key: {response.text[:200]}"
    if problem is not None:
        line = f"{case.operation.label} -> {status}: {problem}"
        known = known_bug(case.method.upper(), path, status, keyed=bool(auth))
        (tally.known if known else tally.failures).append(line)


@pytest.mark.timeout(300)
def test_schemathesis_all_operations_with_and_without_keys(live: Live) -> None:
    alice, admin = live.keys["alice"], live.keys["root"]
    session = requests.Session()
    schema = schemathesis.openapi.from_url(f"{live.url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 20
    started = time.monotonic()
    tallies: dict[str, Tally] = {}
    for label, auth in (
        ("no key", {}),
        ("tenant key", alice.headers),
        ("admin key", admin.headers),
    ):
        tally = tallies[label] = Tally()
        for operation in operations:
            fuzz_operation(operation, live, auth, tally, session, EXAMPLES[label])
    elapsed = time.monotonic() - started

    total = sum(t.cases for t in tallies.values())
    record_figure("schemathesis_operations", len(operations))
    record_figure("schemathesis_cases", {k: t.cases for k, t in tallies.items()} | {"total": total})
    record_figure("schemathesis_statuses", {k: t.statuses for k, t in tallies.items()})
    record_figure("schemathesis_failures", sum(len(t.failures) for t in tallies.values()))
    record_figure("schemathesis_known_failures", {k: t.known for k, t in tallies.items()})
    record_figure("schemathesis_seconds", round(elapsed, 1))
    failures = [f"[{k}] {line}" for k, t in tallies.items() for line in t.failures]
    assert failures == [], "\n".join(failures[:30])
    assert total >= len(operations) * 3 * 5
