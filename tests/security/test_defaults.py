"""Safe defaults: loopback bind, refusal to expose an open server, CORS off by default
(``LENSFORGE_CORS_ORIGINS`` here; how CORS behaves when on: test_cors.py).

``lensforge serve`` runs in process (typer's CliRunner) with ``uvicorn.run`` replaced by a
recorder, so no test binds anything but 127.0.0.1.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from lensforge.api import create_app
from lensforge.cli import app as cli
from lensforge.security.keys import KeyStore
from lensforge.settings import Settings
from lensforge.store import JobStore
from tests.security.conftest import PLUGINS, assert_envelope, make_settings


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[dict[str, Any]]:
    """Calls ``lensforge serve`` made to uvicorn.run (which is not really called)."""
    calls: list[dict[str, Any]] = []
    for name in list(os.environ):
        if name.startswith("LENSFORGE_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("LENSFORGE_DATABASE_URL", f"sqlite:///{tmp_path / 'serve.db'}")
    monkeypatch.setenv("LENSFORGE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: calls.append(kw))
    return calls


def serve(*args: str) -> Any:
    result = CliRunner().invoke(cli, ["serve", *args])
    return result, " ".join(result.output.split())  # rich wraps long lines


def add_key(tmp_path: Path) -> None:
    store = JobStore(f"sqlite:///{tmp_path / 'serve.db'}")
    store.migrate()
    try:
        KeyStore(store.engine).create("ops", ("admin",))
    finally:
        store.close()


def test_settings_and_serve_bind_loopback_by_default(served: list[dict[str, Any]]) -> None:
    assert Settings().host == "127.0.0.1"
    result, _ = serve()
    assert result.exit_code == 0, result.output
    assert served == [served[0]] and served[0]["host"] == "127.0.0.1"


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.10", "example.internal"])
def test_serve_refuses_a_non_loopback_bind_with_no_key(
    served: list[dict[str, Any]], host: str
) -> None:
    result, text = serve("--host", host)
    assert result.exit_code == 2, text
    assert served == [], "the server must not start"
    assert "Refusing to bind" in text
    assert "lensforge keys create --name me --scope analyze,read" in text
    assert "--insecure-no-auth" in text


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1", "127.0.0.2"])
def test_serve_on_loopback_needs_no_key(served: list[dict[str, Any]], host: str) -> None:
    result, text = serve("--host", host)
    assert result.exit_code == 0, text
    assert served[0]["host"] == host
    assert "WARNING" not in text


def test_insecure_no_auth_overrides_with_a_loud_warning(
    served: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    result, text = serve("--host", "0.0.0.0", "--insecure-no-auth")
    assert result.exit_code == 0, text
    assert served[0]["host"] == "0.0.0.0"
    assert "WARNING" in text and "NO authentication" in text
    # Its environment twin does the same.
    served.clear()
    monkeypatch.setenv("LENSFORGE_INSECURE_NO_AUTH", "1")
    result, text = serve("--host", "0.0.0.0")
    assert result.exit_code == 0 and served and "WARNING" in text


def test_serve_on_any_address_starts_once_a_key_exists(
    served: list[dict[str, Any]], tmp_path: Path
) -> None:
    add_key(tmp_path)
    result, text = serve("--host", "0.0.0.0")
    assert result.exit_code == 0, text
    assert served[0]["host"] == "0.0.0.0"
    assert "WARNING" not in text


def test_a_revoked_key_does_not_count(served: list[dict[str, Any]], tmp_path: Path) -> None:
    store = JobStore(f"sqlite:///{tmp_path / 'serve.db'}")
    store.migrate()
    try:
        keys = KeyStore(store.engine)
        info, _ = keys.create("gone", ("read",))
        keys.revoke(info.id)
    finally:
        store.close()
    result, _ = serve("--host", "0.0.0.0")
    assert result.exit_code == 2 and served == []


def test_revoking_the_last_key_does_not_open_an_exposed_server(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, host="0.0.0.0")
    app = create_app(settings, extra_plugins=PLUGINS)
    with TestClient(app, base_url="http://127.0.0.1") as client:
        keys = app.state.services.keys
        info, secret = keys.create("only", ("admin",))
        assert_envelope(client.get("/v1/keys"), 401, "unauthorized")
        revoked = client.delete(f"/v1/keys/{info.id}", headers={"X-API-Key": secret})
        assert revoked.status_code == 200
        assert keys.list()[0].revoked_at is not None
        # A server started afresh on this database reads "auth on" from the revoked key too.
        assert KeyStore(keys.engine, cache_s=0).enabled()
        assert client.get("/v1/keys").status_code == 401


def test_cors_origins_has_an_environment_twin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LENSFORGE_CORS_ORIGINS", "https://a.example, https://b.example")
    assert Settings().cors_origins == ["https://a.example", "https://b.example"]
    monkeypatch.delenv("LENSFORGE_CORS_ORIGINS")
    assert Settings().cors_origins == []
