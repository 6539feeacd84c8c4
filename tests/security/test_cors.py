"""CORS: off unless origins are configured; when on, the outermost middleware.

A browser on an allowed origin must be able to use the API whether auth is on or off: its
preflight (which carries no key, by design) is answered with the CORS headers, and every
answer, refusals and errors included, carries ``Access-Control-Allow-Origin`` so that the
page can read it. Requests from any other origin get no CORS header at all.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from lensforge.api import create_app
from tests.security.conftest import PLUGINS, assert_envelope, make_settings

APP_ORIGIN = "https://app.example"

PREFLIGHT = {
    "Origin": "https://evil.example",
    "Access-Control-Request-Method": "POST",
    "Access-Control-Request-Headers": "authorization",
}


def test_cors_is_off_unless_origins_are_configured(tmp_path: Path) -> None:
    app = create_app(make_settings(tmp_path), extra_plugins=PLUGINS)
    with TestClient(app, base_url="http://127.0.0.1") as client:
        preflight = client.options("/v1/jobs", headers=PREFLIGHT)
        assert "access-control-allow-origin" not in preflight.headers
        simple = client.get("/healthz", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in simple.headers
        assert "access-control-allow-credentials" not in simple.headers


def test_configured_cors_allows_only_those_origins_and_never_credentials(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, cors_origins=["https://app.example"])
    app = create_app(settings, extra_plugins=PLUGINS)
    with TestClient(app, base_url="http://127.0.0.1") as client:
        good = client.options("/v1/jobs", headers={**PREFLIGHT, "Origin": "https://app.example"})
        assert good.headers.get("access-control-allow-origin") == "https://app.example"
        assert "access-control-allow-credentials" not in good.headers
        evil = client.options("/v1/jobs", headers=PREFLIGHT)
        assert evil.headers.get("access-control-allow-origin") != "https://evil.example"
        simple = client.get("/healthz", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in simple.headers


def test_a_wildcard_origin_never_comes_with_credentials(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, cors_origins=["*"])
    app = create_app(settings, extra_plugins=PLUGINS)
    with TestClient(app, base_url="http://127.0.0.1") as client:
        response = client.get("/healthz", headers={"Origin": "https://evil.example"})
        assert response.headers.get("access-control-allow-origin") == "*"
        assert "access-control-allow-credentials" not in response.headers
        preflight = client.options("/v1/jobs", headers=PREFLIGHT)
        assert preflight.headers.get("access-control-allow-credentials") in (None, "false")


def cors_headers(response: httpx.Response) -> dict[str, str]:
    return {k: v for k, v in response.headers.items() if k.startswith("access-control-")}


@pytest.fixture(params=["auth on", "auth off"])
def cors_app(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[TestClient, str]]:
    """An app allowing APP_ORIGIN, with a key created (auth on) or none; and that key."""
    settings = make_settings(tmp_path, cors_origins=[APP_ORIGIN], max_body_bytes=1024)
    app = create_app(settings, extra_plugins=PLUGINS)
    with TestClient(app, base_url="http://127.0.0.1") as client:
        secret = ""
        if request.param == "auth on":
            secret = app.state.services.keys.create("reader", ("read",))[1]
        yield client, secret


@pytest.mark.parametrize(
    ("method", "path"), [("POST", "/v1/jobs"), ("GET", "/v1/jobs"), ("POST", "/mcp")]
)
def test_a_preflight_from_an_allowed_origin_is_answered_with_or_without_auth(
    cors_app: tuple[TestClient, str], method: str, path: str
) -> None:
    client, _ = cors_app
    headers = {
        "Origin": APP_ORIGIN,
        "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": "authorization, content-type, idempotency-key",
    }
    response = client.options(path, headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["access-control-allow-origin"] == APP_ORIGIN
    assert method in response.headers["access-control-allow-methods"]
    allowed = response.headers["access-control-allow-headers"].lower()
    assert {"authorization", "content-type", "idempotency-key"} <= set(allowed.split(", "))
    assert "access-control-allow-credentials" not in response.headers


def test_every_answer_to_an_allowed_origin_carries_its_cors_header(
    cors_app: tuple[TestClient, str],
) -> None:
    """Successes and refusals alike: 401, 403, 404, 413, 422 (a page must read its errors)."""
    client, secret = cors_app
    origin = {"Origin": APP_ORIGIN}
    key = {**origin, "Authorization": f"Bearer {secret}"} if secret else origin
    answers = {
        "ok": client.get("/v1/jobs", headers=key),
        "not found": client.get("/v1/jobs/nope", headers=key),
        "invalid": client.get("/v1/jobs?limit=0", headers=key),
        "too large": client.post("/v1/jobs", headers=key, content=b"x" * 2048),
    }
    if secret:  # a reader key: no key at all is 401, the analyze scope it lacks is 403
        answers["no key"] = client.get("/v1/jobs", headers=origin)
        answers["wrong scope"] = client.post("/v1/jobs", headers=key, json={"plugin": "x"})
    expected = {"ok": 200, "not found": 404, "invalid": 422, "too large": 413}
    expected |= {"no key": 401, "wrong scope": 403}
    for name, response in answers.items():
        assert response.status_code == expected[name], (name, response.text)
        if response.status_code >= 400:
            assert_envelope(response, expected[name])
        assert response.headers.get("access-control-allow-origin") == APP_ORIGIN, name


def test_another_origin_gets_no_cors_header_at_all(cors_app: tuple[TestClient, str]) -> None:
    client, secret = cors_app
    evil = {"Origin": "https://evil.example"}
    preflight = client.options("/v1/jobs", headers=PREFLIGHT)
    # Answered as any OPTIONS request is: refused by auth, else not a method the route serves.
    assert_envelope(preflight, 401 if secret else 405)
    assert cors_headers(preflight) == {}
    key = {**evil, "Authorization": f"Bearer {secret}"} if secret else evil
    for response in (client.get("/v1/jobs", headers=key), client.get("/healthz", headers=evil)):
        assert response.status_code == 200
        assert cors_headers(response) == {}
