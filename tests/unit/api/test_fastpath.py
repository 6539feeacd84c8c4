"""The fast paths in ``lensforge.api.fastpath`` answer as FastAPI's obvious way does.

The same requests go to the real ``POST /v1/analyze`` and ``POST /v1/jobs`` (RequestRoute
endpoints that read the request themselves) and to copies written the obvious way (a body
model, ``Annotated`` dependencies, a ``Header``, an included router), on the same app and
services; the answers must match, as must the OpenAPI descriptions.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any

import httpx
import pytest
from fastapi import APIRouter, FastAPI, Header, Response
from fastapi.testclient import TestClient

from lensforge.api import dashboard
from lensforge.api.compat import execution as compat
from lensforge.api.compat.forgesyte import build_router as forgesyte_router
from lensforge.api.deps import AnalysisDep, CallerDep
from lensforge.api.fastpath import IDEMPOTENCY_KEY_MAX, RequestRoute
from lensforge.api.models import AnalyzeRequest
from lensforge.api.routes import admin, analyze, blobs, jobs, models, plugins, system
from lensforge.api.routes.analyze import accepted_response, analysis_request, finished_response
from tests.unit.api.support import thread_app

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        max_length=IDEMPOTENCY_KEY_MAX,
        description="Same key and body: same job.",
    ),
]


def obvious_router() -> APIRouter:
    """``/plain/v1/analyze`` and ``/plain/v1/jobs``, written the way FastAPI's docs show."""
    router = APIRouter(prefix="/plain/v1")

    @router.post("/analyze")
    async def analyze(
        body: AnalyzeRequest, analysis: AnalysisDep, caller: CallerDep, key: IdempotencyKey = None
    ) -> Response:
        return finished_response(await analysis.analyze(analysis_request(body, {}, caller, key)))

    @router.post("/jobs", status_code=202)
    async def submit_job(
        body: AnalyzeRequest, analysis: AnalysisDep, caller: CallerDep, key: IdempotencyKey = None
    ) -> Response:
        job, created = await analysis.submit(analysis_request(body, {}, caller, key))
        return accepted_response(job, created=created)

    return router


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    app = thread_app(tmp_path_factory.mktemp("fastpath"))
    app.include_router(obvious_router())
    with TestClient(app) as test_client:
        yield test_client


def comparable(response: httpx.Response) -> tuple[int, Any, str | None]:
    """Status, body and Location, without what differs between two jobs or two moments."""
    body = response.json()
    error = body.get("error")
    if isinstance(error, dict):
        error.pop("timestamp")
        error.pop("job_id")
        error.pop("request_id")  # each request's own
    body.pop("job_id", None)
    if body.get("status") in ("PENDING", "RUNNING"):  # a worker may be free for one, not both
        body["status"] = "accepted"
    location = response.headers.get("location")
    return response.status_code, body, location and location.rsplit("/", 1)[0]


BODIES: dict[str, dict[str, Any]] = {
    "success": {"plugin": "testing", "tool": "echo", "inputs": {"text": "hi", "times": 2}},
    "tool error": {"plugin": "testing", "tool": "fail", "inputs": {"message": "no"}},
    "bad inputs": {"plugin": "testing", "tool": "echo", "inputs": {"text": 5, "x": 1}},
    "bad envelope": {"plugin": "", "inputs": [], "surprise": 1, "timeout_s": -1},
    "missing plugin": {"tool": "echo"},
    "unknown plugin": {"plugin": "nope"},
    "unknown tool": {"plugin": "testing", "tool": "nope"},
    "no tool named": {"plugin": "testing"},
    "timeout past the cap": {"plugin": "testing", "tool": "noop", "timeout_s": 1e9},
}


@pytest.mark.parametrize("route", ["analyze", "jobs"])
@pytest.mark.parametrize("case", BODIES, ids=list(BODIES))
def test_the_lean_route_answers_as_the_obvious_one(
    client: TestClient, route: str, case: str
) -> None:
    fast = client.post(f"/v1/{route}", json=BODIES[case])
    plain = client.post(f"/plain/v1/{route}", json=BODIES[case])
    assert comparable(fast) == comparable(plain)
    if case == "bad envelope":  # the case that proves both validated the same model
        assert fast.status_code == 422
        assert len(fast.json()["error"]["details"]["errors"]) == 4


@pytest.mark.parametrize("route", ["analyze", "jobs"])
def test_the_idempotency_key_is_read_and_capped_as_a_header_parameter_would_be(
    client: TestClient, route: str
) -> None:
    body = BODIES["success"]
    too_long = {"Idempotency-Key": "k" * (IDEMPOTENCY_KEY_MAX + 1)}
    fast = client.post(f"/v1/{route}", json=body, headers=too_long)
    plain = client.post(f"/plain/v1/{route}", json=body, headers=too_long)
    assert fast.status_code == 422
    assert comparable(fast) == comparable(plain)
    for prefix in ("", "/plain"):  # honoured: the same key and body name the same job
        key = {"Idempotency-Key": f"same-{route}-{prefix}"}
        first = client.post(f"{prefix}/v1/{route}", json=body, headers=key)
        again = client.post(f"{prefix}/v1/{route}", json=body, headers=key)
        assert first.json()["job_id"] == again.json()["job_id"]
        if route == "jobs":
            assert (first.status_code, again.status_code) == (202, 200)


def without_null_defaults(schema: Any) -> Any:
    """The schema without ``"default": null`` (Pydantic writes it, FastAPI leaves it out)."""
    if isinstance(schema, dict):
        return {
            k: without_null_defaults(v)
            for k, v in schema.items()
            if not (k == "default" and v is None)
        }
    return schema


def test_the_hand_built_openapi_entry_describes_what_fastapi_would(client: TestClient) -> None:
    """The lean routes' body and header, as FastAPI documents the obvious routes' (built in
    an app of their own, so that the components compared come from two generators)."""
    document = client.get("/openapi.json").json()
    obvious = FastAPI()
    obvious.include_router(obvious_router())
    plain_document = obvious.openapi()
    schemas, plain_schemas = (
        document["components"]["schemas"],
        plain_document["components"]["schemas"],
    )
    assert without_null_defaults(schemas["AnalyzeRequest"]) == plain_schemas["AnalyzeRequest"]
    for route in ("analyze", "jobs"):
        fast = document["paths"][f"/v1/{route}"]["post"]
        plain = plain_document["paths"][f"/plain/v1/{route}"]["post"]
        assert (
            fast["requestBody"]["content"]["application/json"]
            == (plain["requestBody"]["content"]["application/json"])
        )
        assert fast["requestBody"]["required"] is plain["requestBody"]["required"] is True
        form = fast["requestBody"]["content"]["multipart/form-data"]["schema"]["$ref"]
        assert form.rsplit("/", 1)[1] in document["components"]["schemas"]
        (header,) = fast["parameters"]
        (plain_header,) = plain["parameters"]
        for key in ("name", "in", "required", "description"):
            assert header[key] == plain_header[key], key
        plain_string = next(s for s in plain_header["schema"]["anyOf"] if s["type"] == "string")
        assert header["schema"] == plain_string


def test_flat_routing_serves_what_included_routers_serve(client: TestClient) -> None:
    """mount_flat puts the routes first, FastAPI's own docs routes after them, and the
    OpenAPI document lists every one of them as include_router() would."""
    app = client.app
    assert isinstance(app, FastAPI)
    paths = [getattr(route, "path", "") for route in app.router.routes]
    assert paths[:2] == ["/v1/analyze", "/v1/jobs"]
    assert paths.index("/openapi.json") > paths.index("/v1/analyze-execution")
    included = FastAPI()
    for module in (analyze, jobs, system, plugins, blobs, admin, compat, models, dashboard):
        included.include_router(module.router)
    included.include_router(forgesyte_router())
    ours = {p: v for p, v in app.openapi()["paths"].items() if not p.startswith("/plain")}
    assert ours == included.openapi()["paths"]
    assert all(type(route) is RequestRoute for route in analyze.router.routes)
