"""/docs and /redoc: LensForge's own pages and pinned assets, public, offline, CSP 'self'."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from importlib import resources

import pytest
from fastapi.testclient import TestClient

from lensforge.api.docs import ASSETS_PATH, CONTENT_SECURITY_POLICY, VENDORED
from tests.unit.api.support import thread_app

PAGES = ("/docs", "/redoc", "/docs/oauth2-redirect")


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    app = thread_app(tmp_path_factory.mktemp("docs"))
    with TestClient(app) as test_client:
        app.state.services.keys.create("root", ("admin",))  # auth on; no key is sent
        yield test_client


def test_the_pages_load_only_this_servers_files(client: TestClient) -> None:
    for path in PAGES:
        response = client.get(path)
        assert response.status_code == 200, (path, response.text)
        assert response.headers["content-type"].startswith("text/html")
        assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
        assert "<script>" not in response.text  # no inline script: the policy forbids it
        urls = re.findall(r'(?:src|href|spec-url|data-openapi-url)="([^"]+)"', response.text)
        assert urls, path
        assert all(url.startswith(("/docs/assets/", "/openapi.json")) for url in urls), urls
        for url in urls:
            assert client.get(url).status_code == 200, url


def test_the_policy_names_no_other_origin() -> None:
    sources = " ".join(CONTENT_SECURITY_POLICY.replace(";", " ").split()[1:])
    assert not re.search(r"https?:|\*|//", sources)
    assert "default-src 'none'" in CONTENT_SECURITY_POLICY
    assert "script-src 'self';" in CONTENT_SECURITY_POLICY


def test_assets_are_the_pinned_files_with_etags(client: TestClient) -> None:
    response = client.get(f"{ASSETS_PATH}/swagger-ui-bundle.js")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/javascript")
    packaged = resources.files("lensforge.api").joinpath("docs_assets/swagger-ui-bundle.js")
    assert (
        hashlib.sha256(response.content).digest() == hashlib.sha256(packaged.read_bytes()).digest()
    )
    etag = response.headers["etag"]
    again = client.get(f"{ASSETS_PATH}/swagger-ui-bundle.js", headers={"If-None-Match": etag})
    assert (again.status_code, again.content) == (304, b"")
    readme = resources.files("lensforge.api").joinpath("docs_assets/README.md").read_text()
    for package, version in VENDORED.items():
        assert f"{package}@{version}" in readme


def test_the_licences_ship_beside_the_assets() -> None:
    folder = resources.files("lensforge.api").joinpath("docs_assets")
    names = {entry.name for entry in folder.iterdir()}
    assert {"LICENSE-swagger-ui", "NOTICE-swagger-ui", "LICENSE-redoc"} <= names
    assert "Apache License" in folder.joinpath("LICENSE-swagger-ui").read_text()
    assert "MIT" in folder.joinpath("LICENSE-redoc").read_text()


def test_an_unknown_asset_is_a_404_envelope(client: TestClient) -> None:
    for name in ("nope.js", "LICENSE-redoc", "..%2Fdocs.py", "README.md"):
        response = client.get(f"{ASSETS_PATH}/{name}")
        assert response.status_code == 404, name
        assert response.json()["error"]["code"] == "not_found"


def test_the_docs_routes_are_not_in_the_document(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert not any(path.startswith(("/docs", "/redoc")) for path in paths)
