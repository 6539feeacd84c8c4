"""The OpenAPI document names every body, and what it names is what the routes send.

Each operation has a stable operationId; every JSON answer, success or error, is a named
component (errors the one ErrorEnvelope, or ForgeSyte's own shape on its routes); path
parameters carry patterns that the server's real ids match. Then real answers are checked
against the models that describe them, so a description cannot drift from the route.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from pydantic import BaseModel

from lensforge.api import models as m
from lensforge.api.compat import execution as compat
from tests.support import b64, png
from tests.unit.api.support import thread_app, wait_for

NOT_JSON = {"stream_job", "get_blob", "metrics"}  # event stream, image bytes, Prometheus text


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    app = thread_app(tmp_path_factory.mktemp("openapi"))
    with TestClient(app) as test_client:
        # Auth on, every request as an admin: the routes answer as they do in production.
        secret = app.state.services.keys.create("root", ("admin",))[1]
        test_client.headers["Authorization"] = f"Bearer {secret}"
        yield test_client


def services(client: TestClient) -> Any:
    return client.app.state.services  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def document(client: TestClient) -> dict[str, Any]:
    body: dict[str, Any] = client.get("/openapi.json").json()
    return body


def operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            yield method.upper(), path, operation


def test_every_operation_has_a_stable_readable_id(document: dict[str, Any]) -> None:
    ids = {(method, path): op["operationId"] for method, path, op in operations(document)}
    assert len(set(ids.values())) == len(ids)
    assert ids[("POST", "/v1/analyze")] == "analyze"
    assert ids[("POST", "/v1/jobs")] == "submit_job"
    assert ids[("GET", "/v1/jobs/{job_id}")] == "get_job"
    assert ids[("GET", "/v1/analyze-execution/jobs/{job_id}")] == "forgesyte_get_job"
    assert all(re.fullmatch(r"[a-z_]+", value) for value in ids.values()), ids


def test_every_json_answer_is_a_named_component(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    assert "HTTPValidationError" not in schemas  # FastAPI's 422 shape is not what we send
    for method, path, op in operations(document):
        where = f"{method} {path}"
        assert any(code.startswith("2") for code in op["responses"]), where
        if path.startswith("/forgesyte/"):
            # ForgeSyte's own answers (docs/forgesyte.md); its errors are one named shape.
            errors = {c: a for c, a in op["responses"].items() if not c.startswith("2")}
            assert {"401", "403", "429", "500"} <= set(errors), where
            shapes = {c: re.findall(r"schemas/(\w+)", str(a)) for c, a in errors.items()}
            assert all(s in (["ForgeSyteError"], ["ErrorEnvelope"]) for s in shapes.values()), where
            assert shapes["401"] == shapes["500"] == ["ErrorEnvelope"], where
            continue
        assert {"401", "403", "429", "500"} <= set(op["responses"]) or path in (
            "/healthz",
            "/readyz",
        ), where
        for code, answer in op["responses"].items():
            json_body = answer.get("content", {}).get("application/json")
            if op["operationId"] in NOT_JSON and code.startswith("2"):
                continue
            assert json_body is not None, (where, code)
            refs = re.findall(r"#/components/schemas/(\w+)", str(json_body["schema"]))
            assert refs, (where, code, json_body)
            assert all(ref in schemas for ref in refs), (where, code)
            if not code.startswith("2"):
                expected = {"LegacyError"} if path.startswith(compat.router.prefix) else set()
                assert set(refs) <= {"ErrorEnvelope", *expected}, (where, code, refs)


def test_the_analysis_routes_share_one_request_model(document: dict[str, Any]) -> None:
    bodies = [document["paths"][p]["post"]["requestBody"] for p in ("/v1/analyze", "/v1/jobs")]
    assert bodies[0] == bodies[1]
    json_ref = bodies[0]["content"]["application/json"]["schema"]["$ref"]
    assert json_ref == "#/components/schemas/AnalyzeRequest"
    assert "BlobRef" in document["components"]["schemas"]


def path_pattern(document: dict[str, Any], path: str, name: str) -> str:
    for operation in document["paths"][path].values():
        for parameter in operation.get("parameters", []):
            if parameter["name"] == name:
                return str(parameter["schema"]["pattern"])
    raise AssertionError(f"no parameter {name} on {path}")


def test_path_parameters_carry_patterns_that_real_ids_match(
    client: TestClient, document: dict[str, Any]
) -> None:
    image = png(9, 9)
    inputs = {"image": b64(image)}
    job = client.post("/v1/analyze", json={"plugin": "testing", "tool": "size", "inputs": inputs})
    job_id = job.json()["job_id"]
    assert re.fullmatch(path_pattern(document, "/v1/jobs/{job_id}", "job_id"), job_id)
    compat_path = "/v1/analyze-execution/jobs/{job_id}"
    assert re.fullmatch(path_pattern(document, compat_path, "job_id"), job_id)
    sha = hashlib.sha256(image).hexdigest()
    pattern = path_pattern(document, "/v1/blobs/{digest}", "digest")
    for spelling in (sha, f"sha256:{sha}", sha.upper()):
        assert re.fullmatch(pattern, spelling)
        assert client.get(f"/v1/blobs/{spelling}").status_code == 200
    key = services(client).keys.create("k", ("read",))[0]
    assert re.fullmatch(path_pattern(document, "/v1/keys/{key_id}", "key_id"), key.id)


# -- what the models describe is what the routes send ------------------------------------------


def described(model: type[BaseModel], response: httpx.Response) -> dict[str, Any]:
    """``response``'s JSON validates as ``model`` and has exactly its fields."""
    body: dict[str, Any] = response.json()
    model.model_validate(body)
    fields = {name: field.alias or name for name, field in model.model_fields.items()}
    required = {fields[name] for name, field in model.model_fields.items() if field.is_required()}
    assert required <= set(body) <= set(fields.values()), (model.__name__, body)
    return body


def test_the_jobs_routes_send_what_they_describe(client: TestClient) -> None:
    body = {"plugin": "testing", "tool": "echo", "inputs": {"text": "hi"}}
    done = described(m.AnalyzeResponse, client.post("/v1/analyze", json=body))
    accepted = described(m.JobAccepted, client.post("/v1/jobs", json=body))
    wait_for(client, accepted["job_id"])
    failed = client.post("/v1/analyze", json={"plugin": "testing", "tool": "fail"})
    described(m.ErrorEnvelope, failed)
    job = described(m.Job, client.get(f"/v1/jobs/{done['job_id']}"))
    assert job["status"] == "SUCCESS"
    failed_job = described(m.Job, client.get(f"/v1/jobs/{failed.json()['error']['job_id']}"))
    m.ErrorBody.model_validate(failed_job["error"])
    page = described(m.JobPage, client.get("/v1/jobs?limit=2"))
    for item in page["jobs"]:
        described(m.Job, httpx.Response(200, json=item))
    described(m.AnalyzeResponse, client.get(f"/v1/jobs/{done['job_id']}/result"))
    events = described(m.JobEvents, client.get(f"/v1/jobs/{done['job_id']}/events"))
    assert events["events"] and "from" in events["events"][0]
    for event in events["events"]:
        described(m.JobEvent, httpx.Response(200, json=event))
    assert described(m.ErrorEnvelope, client.post(f"/v1/jobs/{done['job_id']}/cancel"))
    sleeping = {"plugin": "testing", "tool": "sleep", "inputs": {"seconds": 5}}
    sleeper = client.post("/v1/jobs", json=sleeping).json()["job_id"]
    described(m.Job, client.post(f"/v1/jobs/{sleeper}/cancel"))
    described(m.ErrorEnvelope, client.get("/v1/jobs/nope"))


def test_the_other_routes_send_what_they_describe(client: TestClient) -> None:
    plugins = described(m.PluginList, client.get("/v1/plugins"))
    for plugin in plugins["plugins"]:
        described(m.PluginManifest, httpx.Response(200, json=plugin))
        for tool in plugin["tools"]:
            described(m.ToolManifest, httpx.Response(200, json=tool))
    described(m.PluginManifest, client.get("/v1/plugins/testing"))
    described(m.Health, client.get("/healthz"))
    described(m.Readiness, client.get("/readyz"))
    created = described(
        m.CreatedKey, client.post("/v1/keys", json={"name": "a", "scopes": ["read"]})
    )
    keys = described(m.KeyList, client.get("/v1/keys"))
    for key in keys["keys"]:
        described(m.KeyInfo, httpx.Response(200, json=key))
    described(m.RevokedKey, client.delete(f"/v1/keys/{created['id']}"))
    audit = described(m.AuditPage, client.get("/v1/audit"))
    for event in audit["events"]:
        described(m.AuditEvent, httpx.Response(200, json=event))
    described(m.ErrorEnvelope, client.get("/v1/audit", headers={"Authorization": "Bearer x"}))


def test_the_forgesyte_routes_send_what_they_describe(client: TestClient) -> None:
    base = compat.router.prefix
    image = {"plugin": "testing", "tool_name": "size", "image": b64(png(5, 5))}
    described(compat.ExecutionResult, client.post(base, json=image))
    queued = described(compat.ExecutionQueued, client.post(f"{base}/async", json=image))
    described(compat.LegacyJobList, client.get(f"{base}/jobs"))
    view = described(compat.LegacyJobView, client.get(f"{base}/jobs/{queued['job_id']}"))
    described(compat.LegacyJob, httpx.Response(200, json=view["job"]))
    wait_for(client, queued["job_id"])
    described(compat.LegacyResult, client.get(f"{base}/jobs/{queued['job_id']}/result"))
    described(compat.LegacyError, client.get(f"{base}/jobs/nope"))
    described(compat.LegacyError, client.post(base, json={**image, "plugin": "nope"}))
    sleeping = {"plugin": "testing", "tool": "sleep", "inputs": {"seconds": 5}}
    sleeper = client.post("/v1/jobs", json=sleeping).json()["job_id"]
    described(compat.LegacyCancelled, client.delete(f"{base}/jobs/{sleeper}"))
    described(compat.LegacyError, client.delete(f"{base}/jobs/{queued['job_id']}"))
