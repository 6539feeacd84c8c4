"""Every route is guarded: each declares its scope where it is defined
(``openapi_extra=requires(...)``, ``lensforge.api.auth``), and one middleware applies it.

- The route-enumeration test fails if a route outside FastAPI's docs declares no scope.
- The route-coverage test enumerates the app's routes and fails if any route outside the
  explicit public list answers without a key while auth is on.
- The auth matrix, for every route: no key → 401, a key without the route's scope → 403,
  another tenant's job or blob → 404, the right scope (and admin) → allowed.
"""

from __future__ import annotations

import functools
import hashlib
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from lensforge.api import create_app
from lensforge.api.auth import ADMIN, PUBLIC_PATHS, SCOPES, declared_scope, requires
from lensforge.api.auth import PUBLIC as PUBLIC_SCOPE
from lensforge.settings import Settings
from tests.security.conftest import (
    MCP_HEADERS,
    MCP_INIT,
    PLUGINS,
    PUBLIC,
    Secure,
    Tenant,
    app_routes,
    assert_envelope,
    b64,
    make_settings,
    record_figure,
    run_echo,
    start_sleeper,
    upload_png,
)
from tests.support import png
from tests.video.clips import write_scene_clip

# Building the app has no side effects before its lifespan starts: safe at collection.
APP = create_app(Settings(database_url="sqlite://"), extra_plugins=PLUGINS)
ROUTES = app_routes(APP)
# What each (method, template) declared where it is defined; None: it declared nothing.
DECLARED: dict[tuple[str, str], str | None] = {
    (method, str(getattr(route, "path", ""))): declared_scope(route)
    for route in APP.router.routes
    for method in getattr(route, "methods", None) or ()
    if method != "HEAD"
}
GUARDED = [route for route in ROUTES if route[1] not in PUBLIC]
OWNED = [route for route in GUARDED if re.search(r"\{(job_id|digest)\}", route[1])]
# Routes a single-scope key can be shown to pass (a read-only key owns no job to read).
MINIMAL = [r for r in GUARDED if not (DECLARED.get(r) == "read" and r in OWNED)]


def scope_of(route: tuple[str, str]) -> str:
    scope = DECLARED[route]
    assert scope is not None, route
    return scope


def route_id(route: tuple[str, str]) -> str:
    return f"{route[0]} {route[1]}"


# -- building a request for any route ------------------------------------------------------------


@dataclass
class Fixtures:
    """Real ids for path parameters: alice's finished job, alice's blob."""

    secure: Secure
    alice_job: str
    alice_blob: str


def is_cancel(method: str, path: str) -> bool:
    return path.endswith("/cancel") or (method == "DELETE" and "{job_id}" in path)


def path_for(fx: Fixtures, method: str, path: str, owner: Tenant, *, live: bool = False) -> str:
    """``path`` with its parameters filled in for a resource that ``owner`` holds.

    ``live``: a cancel route gets a job that is still running (else a finished one will do,
    for requests that must be refused before the job is even looked at).
    """
    secure = fx.secure
    values: dict[str, str] = {
        "plugin": "testing",
        "plugin_id": "testing",
        "tool_name": "echo",
        "name": (
            "app.js"
            if path.startswith("/dashboard/")
            else "swagger-ui.css"
            if path.startswith("/docs/assets/")
            else "no-such-model"
        ),
    }
    if "{job_id}" in path:
        if live and is_cancel(method, path):
            values["job_id"] = start_sleeper(secure.client, owner)
        elif owner is secure.alice:
            values["job_id"] = fx.alice_job
        else:
            values["job_id"] = run_echo(secure.client, owner)
    if "{digest}" in path:
        own_blob = owner is secure.alice
        values["digest"] = fx.alice_blob if own_blob else upload_png(secure.client, owner)
    if "{key_id}" in path:
        values["key_id"] = secure.new_key("throwaway", ("read",)).key_id
    return re.sub(r"\{(\w+)\}", lambda m: values[m.group(1)], path)


def body_for(method: str, path: str) -> dict[str, Any]:
    """Request keyword arguments (a valid body) for ``method path``."""
    if path in ("/v1/analyze", "/v1/jobs") and method == "POST":
        return {"json": {"plugin": "testing", "tool": "echo", "inputs": {"text": "matrix"}}}
    if path.startswith("/v1/analyze-execution") and method == "POST":
        return {"json": {"plugin": "testing", "tool_name": "size", "image": b64(png(8, 8))}}
    if path == "/v1/keys" and method == "POST":
        return {"json": {"name": "matrix", "scopes": ["read"]}}
    if path == "/v1/blobs" and method == "POST":
        return {"content": png(8, 8)}
    if path.endswith(("/v1/video/submit", "/v1/video/upload")):
        return {
            "params": {"plugin_id": "video", "tool": "info"},
            "files": {"file": ("a.mp4", small_clip(), "video/mp4")},
        }
    if path.endswith("/v1/video/job"):  # the clip, uploaded by the caller (assert_allowed)
        digest = hashlib.sha256(small_clip()).hexdigest()
        video_path = f"video/input/{digest}.mp4"
        return {"json": {"plugin_id": "video", "video_path": video_path, "lockedTools": ["info"]}}
    if path.endswith("/v1/image/submit"):
        return {
            "params": {"plugin_id": "testing", "tool": "size"},
            "files": {"file": ("a.png", png(8, 8), "image/png")},
        }
    if path.endswith("/tools/{tool_name}/run"):
        return {"json": {"args": {"text": "matrix"}}}
    if path == "/mcp":
        return {"json": MCP_INIT, "headers": MCP_HEADERS} if method == "POST" else {}
    return {}


@functools.cache
def small_clip() -> bytes:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "clip.mp4"
        return write_scene_clip(path, scenes=1, scene_s=0.2, width=64, height=48).read_bytes()


def call(client: TestClient, method: str, url: str, auth: dict[str, str], **kwargs: Any) -> Any:
    """Send ``method url`` with the ``auth`` headers on top of the request's own."""
    headers = {**kwargs.pop("headers", {}), **auth}
    return client.request(method, url, headers=headers, **kwargs)


def wrong_scope_tenant(secure: Secure, required: str) -> Tenant:
    """A key that lacks ``required``."""
    return {"analyze": secure.reader, "read": secure.analyst, ADMIN: secure.alice}[required]


def right_scope_tenant(secure: Secure, required: str) -> Tenant:
    return secure.admin if required == ADMIN else secure.alice


def minimal_tenant(secure: Secure, required: str) -> Tenant:
    """A key with exactly the one scope ``required``."""
    return {"analyze": secure.analyst, "read": secure.reader, ADMIN: secure.admin}[required]


@pytest.fixture(scope="module")
def fx(shared: Secure) -> Iterator[Fixtures]:
    client = shared.client
    yield Fixtures(shared, run_echo(client, shared.alice), upload_png(client, shared.alice))
    # Cancel any sleeper a failed test left running, so the app stops promptly.
    for job in client.get("/v1/jobs?limit=500", headers=shared.admin.headers).json()["jobs"]:
        if job["status"] in ("PENDING", "RUNNING"):
            client.post(f"/v1/jobs/{job['id']}/cancel", headers=shared.admin.headers)


# -- the declarations ----------------------------------------------------------------------------


def test_every_route_declares_its_scope_where_it_is_defined() -> None:
    """The route-enumeration test: no route falls through to the admin default unnoticed."""
    assert set(DECLARED) == set(ROUTES), "the enumeration and the router disagree"
    undeclared = sorted(route for route, scope in DECLARED.items() if scope is None)
    assert undeclared == [], "routes without openapi_extra=requires(...)"
    assert {scope for scope in DECLARED.values()} <= set(SCOPES)
    record_figure("routes_enumerated", len(ROUTES))
    record_figure("routes_guarded", len(GUARDED))


def test_the_public_list_is_exactly_health_readiness_and_docs() -> None:
    public = {path for (_, path), scope in DECLARED.items() if scope == PUBLIC_SCOPE}
    assert public == set(PUBLIC)
    assert public > PUBLIC_PATHS  # FastAPI's own docs routes, public by name


def test_a_scope_that_does_not_exist_cannot_be_declared() -> None:
    with pytest.raises(ValueError, match="Unknown scope 'reader'"):
        requires("reader")
    assert requires(ADMIN, summary="x") == {"summary": "x", "x-required-scope": ADMIN}


def test_the_openapi_document_shows_each_operations_scope() -> None:
    paths = APP.openapi()["paths"]
    documented = [(m, p) for m, p in GUARDED if p in paths]
    assert len(documented) == len(GUARDED) - 3  # all but GET, POST and DELETE /mcp
    for method, path in documented:
        assert paths[path][method.lower()]["x-required-scope"] == DECLARED[(method, path)]


def test_no_route_outside_the_public_list_is_reachable_without_a_key(fx: Fixtures) -> None:
    """The route-coverage test (issue item 2): enumerate, call without a key, expect 401."""
    client = fx.secure.client
    reachable: list[str] = []
    presented = [
        {},
        {"Authorization": "Bearer "},
        {"Authorization": "Basic YWxpY2U6cGFzc3dvcmQ="},
        {"Authorization": "Bearer lf_000000000000_notarealsecret"},
        {"X-API-Key": "not-a-key"},
        {"Authorization": f"Bearer {fx.secure.alice.secret}x"},  # a near miss
    ]
    for method, path in ROUTES:
        url = path_for(fx, method, path, fx.secure.alice) if "{" in path else path
        for headers in presented:
            response = call(client, method, url, headers, **body_for(method, path))
            if path in PUBLIC:
                assert response.status_code == 200, (method, path, response.text)
            elif response.status_code != 401:
                reachable.append(f"{method} {path} {headers} -> {response.status_code}")
            else:
                assert_envelope(response, 401, "unauthorized")
    # HEAD goes through the same table as GET (the /mcp endpoint accepts it).
    head = client.head("/mcp")
    assert head.status_code == 401
    assert reachable == []
    record_figure("route_coverage_requests", len(ROUTES) * len(presented) + 1)


def test_a_route_that_declares_no_scope_is_refused_to_all_but_admins(tmp_path: Any) -> None:
    """Fail closed: a new route that declares nothing needs the admin scope."""
    app = create_app(make_settings(tmp_path), extra_plugins=PLUGINS)

    @app.get("/v1/forgotten")
    async def forgotten() -> dict[str, bool]:
        return {"reached": True}

    with TestClient(app, base_url="http://127.0.0.1") as client:
        keys = app.state.services.keys
        alice = {"Authorization": f"Bearer {keys.create('alice', ('analyze', 'read'))[1]}"}
        admin = {"Authorization": f"Bearer {keys.create('root', ('admin',))[1]}"}
        assert_envelope(client.get("/v1/forgotten"), 401, "unauthorized")
        assert_envelope(client.get("/v1/forgotten", headers=alice), 403, "forbidden")
        assert client.get("/v1/forgotten", headers=admin).json() == {"reached": True}


def test_the_scope_is_the_one_of_the_route_the_router_picks(shared: Secure) -> None:
    """GET /v1/jobs passes POST /v1/jobs (analyze) on its way to GET /v1/jobs (read); a
    method no route serves needs the scope of the route at that path, then gets 405."""
    client = shared.client
    assert client.get("/v1/jobs", headers=shared.reader.headers).status_code == 200
    assert_envelope(client.post("/v1/jobs", headers=shared.reader.headers), 403, "forbidden")
    assert_envelope(client.put("/v1/jobs", headers=shared.reader.headers), 403, "forbidden")
    assert_envelope(client.put("/v1/jobs", headers=shared.analyst.headers), 405)
    assert_envelope(client.get("/v1/nowhere", headers=shared.reader.headers), 404, "not_found")


# -- the matrix ----------------------------------------------------------------------------------


@pytest.mark.parametrize("route", GUARDED, ids=route_id)
def test_matrix_no_key_is_401(fx: Fixtures, route: tuple[str, str]) -> None:
    method, path = route
    url = path_for(fx, method, path, fx.secure.alice)
    response = call(fx.secure.client, method, url, {}, **body_for(method, path))
    error = assert_envelope(response, 401, "unauthorized")
    assert "lensforge keys create" in error["message"]


@pytest.mark.parametrize("route", GUARDED, ids=route_id)
def test_matrix_wrong_scope_is_403(fx: Fixtures, route: tuple[str, str]) -> None:
    method, path = route
    required = scope_of(route)
    tenant = wrong_scope_tenant(fx.secure, required)
    url = path_for(fx, method, path, fx.secure.alice)
    response = call(fx.secure.client, method, url, tenant.headers, **body_for(method, path))
    error = assert_envelope(response, 403, "forbidden")
    assert required in error["message"]


@pytest.mark.parametrize("route", OWNED, ids=route_id)
def test_matrix_another_tenants_job_or_blob_is_404(fx: Fixtures, route: tuple[str, str]) -> None:
    """Bob has the scope, the resource exists, it is Alice's: 404, never 403, nothing changes."""
    method, path = route
    secure = fx.secure
    url = path_for(fx, method, path, secure.alice, live=True)
    response = call(secure.client, method, url, secure.bob.headers, **body_for(method, path))
    assert response.status_code == 404, response.text
    if is_cancel(method, path):  # alice's job must be untouched; then she cancels it herself
        job_id = url.removesuffix("/cancel").rsplit("/", 1)[-1]
        job = secure.client.get(f"/v1/jobs/{job_id}", headers=secure.alice.headers).json()
        assert job["status"] in ("PENDING", "RUNNING") and not job["cancel_requested"], job
        secure.client.post(f"/v1/jobs/{job_id}/cancel", headers=secure.alice.headers)


def assert_allowed(fx: Fixtures, route: tuple[str, str], tenant: Tenant) -> None:
    """``tenant`` is served on ``route``, on a resource of its own (admin: on alice's)."""
    method, path = route
    secure = fx.secure
    owner = tenant if tenant is not secure.admin else secure.alice
    url = path_for(fx, method, path, owner, live=True)
    if path.endswith("/v1/video/job"):  # a job starts on a video its caller uploaded
        secure.client.post("/v1/blobs", content=small_clip(), headers=owner.headers)
    response = call(secure.client, method, url, tenant.headers, **body_for(method, path))
    if path == "/mcp":  # MCP protocol answers (406, 400...) are fine: auth let it through
        assert response.status_code not in (401, 403, 404, 429), response.text
        assert response.status_code < 500, response.text
    elif path == "/v1/models/{name}":  # no model is registered: past auth, the name is unknown
        assert response.status_code == 404, response.text
        assert response.json()["error"]["code"] not in ("unauthorized", "forbidden")
    else:
        assert 200 <= response.status_code < 300, response.text


@pytest.mark.parametrize("route", GUARDED, ids=route_id)
@pytest.mark.parametrize("who", ["scoped", "admin"])
def test_matrix_right_scope_is_allowed(fx: Fixtures, route: tuple[str, str], who: str) -> None:
    """The right scope (a tenant's analyze+read key, or admin) on one's own resource."""
    required = scope_of(route)
    tenant = right_scope_tenant(fx.secure, required) if who == "scoped" else fx.secure.admin
    assert_allowed(fx, route, tenant)


@pytest.mark.parametrize("route", MINIMAL, ids=route_id)
def test_matrix_the_one_required_scope_is_enough(fx: Fixtures, route: tuple[str, str]) -> None:
    assert_allowed(fx, route, minimal_tenant(fx.secure, scope_of(route)))


@pytest.mark.parametrize("body", [b"{", b"\xff\xfe", b'{"name": '], ids=["open", "utf8", "cut"])
@pytest.mark.parametrize(
    "path", ["/v1/keys", "/v1/analyze-execution", "/v1/analyze-execution/async"]
)
def test_a_malformed_body_without_a_key_is_still_401(
    shared: Secure, path: str, body: bytes
) -> None:
    response = shared.client.post(path, content=body, headers={"content-type": "application/json"})
    assert_envelope(response, 401, "unauthorized")
