"""The pieces of api/auth.py and api/deps.py, each on its own (no server, no store)."""

from __future__ import annotations

import threading
import time

import anyio
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.testclient import TestClient
from starlette.types import Receive, Scope, Send

from lensforge.api.auth import READ, ASGIRoute, AuthMiddleware, declared_scope, requires
from lensforge.api.deps import get_caller
from lensforge.errors import StoreError
from lensforge.security.keys import LOCAL_USER, Caller


def test_an_unknown_scope_is_refused_naming_the_known_ones() -> None:
    with pytest.raises(ValueError, match=r"'write'; one of public, read, analyze, admin\.$"):
        requires("write")
    assert requires(READ, summary="x") == {"summary": "x", "x-required-scope": READ}


def test_an_asgi_route_serves_its_app_for_its_methods_only() -> None:
    class Echo:  # an ASGI app object, as /mcp's is
        async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": scope["method"].encode()})

    route = ASGIRoute("/raw", Echo(), methods=["POST"], openapi_extra=requires(READ))
    assert declared_scope(route) == READ and route.include_in_schema is False
    with TestClient(Starlette(routes=[route])) as client:
        assert client.post("/raw").text == "POST"
        assert client.get("/raw").status_code == 405


def test_a_key_check_the_database_does_not_answer_is_a_503_in_time() -> None:
    """The check runs on a thread it abandons at the timeout: the request does not wait."""
    middleware = AuthMiddleware(Starlette())
    release = threading.Event()

    def hung() -> Caller:
        release.wait(10)
        return LOCAL_USER

    async def check() -> float:
        started = time.monotonic()
        with pytest.raises(StoreError, match="does not answer"):
            await middleware._off_the_loop(hung, 0.2)
        return time.monotonic() - started

    try:
        assert anyio.run(check) < 2.0
    finally:
        release.set()


def test_at_most_sixteen_key_checks_wait_on_the_database_at_once() -> None:
    middleware = AuthMiddleware(Starlette())
    release = threading.Event()
    lock = threading.Lock()
    running = [0, 0]  # now, most at once

    def slow() -> Caller:
        with lock:
            running[0] += 1
            running[1] = max(running[1], running[0])
        release.wait(5)
        with lock:
            running[0] -= 1
        return LOCAL_USER

    async def many() -> None:
        async with anyio.create_task_group() as group:
            for _ in range(20):
                group.start_soon(middleware._off_the_loop, slow, 5.0)
            await anyio.sleep(0.5)
            release.set()

    anyio.run(many)
    assert running[1] == 16


def test_the_caller_is_the_one_auth_set_else_the_local_user() -> None:
    def request(state: dict[str, object]) -> Request:
        return Request(
            {"type": "http", "method": "GET", "path": "/", "headers": [], "state": state}
        )

    someone = Caller(id="k1", scopes=frozenset({READ}))
    assert anyio.run(get_caller, request({})) is LOCAL_USER
    assert anyio.run(get_caller, request({"caller": someone})) is someone


def test_the_route_is_found_under_a_root_path_too() -> None:
    """Behind a proxy's prefix (``root_path``) a request's path carries the prefix: the
    string comparison of plain routes must not be used, or no route would match."""
    from starlette.routing import Route

    from lensforge.api.auth import route_for

    async def endpoint(request: Request) -> None: ...

    plain = Route("/v1/jobs", endpoint, methods=["GET"])
    scope = {"type": "http", "method": "GET", "path": "/api/v1/jobs", "root_path": "/api"}
    assert route_for([plain], scope) is plain
    assert route_for([plain], {**scope, "method": "POST"}) is plain  # PARTIAL: a 405
    assert route_for([plain], {**scope, "path": "/api/v1/other"}) is None


def test_a_declared_scope_that_is_not_a_string_counts_as_none() -> None:
    from starlette.routing import Route

    async def endpoint(request: Request) -> None: ...

    route = Route("/x", endpoint)
    route.openapi_extra = {"x-required-scope": 5}  # type: ignore[attr-defined]
    assert declared_scope(route) is None  # so the route is admin-only, failing closed
