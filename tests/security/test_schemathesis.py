"""Schemathesis against the app's own OpenAPI document, over real HTTP.

The app runs under uvicorn in a background thread on a free 127.0.0.1 port (auth on, three
keys). Every operation gets generated requests (positive and negative data, derandomized,
bounded counts) three ways: with no key, with a tenant's key and with an admin key. The
checks: all of schemathesis's (``--checks all``): no 5xx, documented status codes, content
types and headers, every response matching the schema documented for its status, invalid
data refused, valid data accepted, the 405 ``Allow`` header, auth not ignored.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import CHECKS as CHECK_REGISTRY
from schemathesis.checks import load_all_checks
from schemathesis.config import SchemathesisConfig
from schemathesis.core.failures import FailureGroup

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
from tests.support import free_port, png, serving_in_thread

pytestmark = pytest.mark.slow

# Examples per operation (positive, negative data), by key. Without a key nearly every
# answer is an immediate 401, so fewer examples say as much.
EXAMPLES = {"no key": (4, 3), "tenant key": (10, 6), "admin key": (10, 6)}
# LENSFORGE_SCHEMATHESIS_SCALE=10 multiplies every count: the longer run of docs/security.md.
SCALE = max(1, int(os.environ.get("LENSFORGE_SCHEMATHESIS_SCALE", "1")))
# ``--checks all``: every built-in check schemathesis has (status codes, content types,
# headers, response schemas, negative data rejected, positive data accepted, auth, ...).
load_all_checks()
CHECKS = list(CHECK_REGISTRY.get_all())


# positive_data_acceptance expects a 2xx for any request its schema allows. These routes
# check content the schema cannot express, and refuse it with their documented statuses:
# bytes that must decode as an image or a video (415, 422: "empty", "truncated"), tool
# inputs checked by the tool's own schema (422; a multipart form's other fields are tool
# inputs), and ForgeSyte's runs, whose plugin must be served and whose image must be one
# (400, 422), as ForgeSyte's own routes under /forgesyte answer an unknown plugin or tool or
# an image they cannot read (400).
CONTENT_CHECKED = {
    "/v1/analyze": ["413", "415", "422"],
    "/v1/jobs": ["413", "415", "422"],
    "/v1/blobs": ["413", "415", "422"],
    "/v1/analyze-execution": ["400", "422"],
    "/v1/analyze-execution/async": ["400", "422"],
    "/forgesyte/v1/image/submit": ["400", "413", "415", "422"],
    "/forgesyte/v1/video/submit": ["400", "413", "415", "422"],
    "/forgesyte/v1/video/upload": ["400", "413", "415", "422"],
    "/forgesyte/v1/video/job": ["400", "413", "415", "422"],
    "/forgesyte/v1/plugins/{plugin_id}/tools/{tool_name}/run": ["400", "413", "415", "422"],
}
ACCEPTED = ["2xx", "3xx", "401", "403", "404", "409", "429", "5xx"]
CONFIG = SchemathesisConfig.from_dict(
    {
        "operations": [
            {
                "include-name": f"POST {path}",
                "checks": {"positive_data_acceptance": {"expected-statuses": ACCEPTED + extra}},
            }
            for path, extra in CONTENT_CHECKED.items()
        ]
    }
)


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
    with serving_in_thread(app, port, "schemathesis-server"):
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


@dataclass
class Tally:
    cases: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)


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
        tally.failures.append(f"{case.operation.label} -> {status}: {problem}")


@pytest.mark.timeout(300)
def test_schemathesis_all_operations_with_and_without_keys(live: Live) -> None:
    alice, admin = live.keys["alice"], live.keys["root"]
    session = requests.Session()
    schema = schemathesis.openapi.from_url(f"{live.url}/openapi.json", config=CONFIG)
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
            positive, negative = EXAMPLES[label]
            counts = (positive * SCALE, negative * SCALE)
            fuzz_operation(operation, live, auth, tally, session, counts)
    elapsed = time.monotonic() - started

    total = sum(t.cases for t in tallies.values())
    record_figure("schemathesis_operations", len(operations))
    record_figure("schemathesis_cases", {k: t.cases for k, t in tallies.items()} | {"total": total})
    record_figure("schemathesis_statuses", {k: t.statuses for k, t in tallies.items()})
    record_figure("schemathesis_failures", sum(len(t.failures) for t in tallies.values()))
    record_figure("schemathesis_seconds", round(elapsed, 1))
    failures = [f"[{k}] {line}" for k, t in tallies.items() for line in t.failures]
    distinct = sorted(  # by key, operation, status and schemathesis's failure codes
        {" ".join([*line.split()[:6], *re.findall(r"ST\d+", line)]) for line in failures}
    )
    assert failures == [], "\n".join(distinct) + "\n\n" + "\n".join(failures[:10])
    assert total >= len(operations) * 3 * 5
