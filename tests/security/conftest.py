"""Shared fixtures for the security suite: one real app with auth on and five API keys.

Keys are created through the app's own :class:`~lensforge.security.keys.KeyStore`, which
resets its "is auth on" cache at once. Tools run on a thread pool (``executor="thread"``) so
jobs finish in milliseconds; rate limiting is off unless a test turns it on.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

import lensforge
from lensforge.api import create_app
from lensforge.settings import Settings
from tests.security.plugins import PLUGINS
from tests.support import ENVELOPE_KEYS, b64, png

# What an error response must never carry (secrets are checked separately, per test):
# tracebacks, this checkout's and the temporary directory's paths, SQL, storage internals.
LEAK_MARKS = (
    "Traceback",
    'File "',
    "site-packages",
    str(Path(lensforge.__file__).resolve().parents[2]),
    tempfile.gettempdir() + os.sep,
    "sqlite3.",
    "sqlalchemy",
    "SELECT ",
    "INSERT INTO",
    "UPDATE jobs",
    "secret_hash",
)
# The routes reachable without a key by design (issue: /healthz, /readyz and the docs).
PUBLIC = frozenset(
    {
        "/healthz",
        "/readyz",
        "/docs",
        "/docs/oauth2-redirect",
        "/redoc",
        "/openapi.json",
        "/",
        "/dashboard/{name}",
        "/docs/assets/{name}",
    }
)

# An MCP client's first message, and the Accept header streamable HTTP wants.
MCP_INIT: dict[str, Any] = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "security-tests", "version": "1"},
    },
}
MCP_HEADERS = {"Accept": "application/json, text/event-stream"}


@dataclass(frozen=True)
class Tenant:
    """One API key: its id, its secret (shown once) and its scopes."""

    name: str
    key_id: str
    secret: str
    scopes: tuple[str, ...]

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.secret}"}

    @property
    def kw(self) -> dict[str, dict[str, str]]:
        """``client.get(url, **tenant.kw)``: the request keyword carrying this key."""
        return {"headers": self.headers}


@dataclass
class Secure:
    """The app, a client for it, and the keys every security test uses."""

    app: FastAPI
    client: TestClient
    settings: Settings
    alice: Tenant  # analyze + read
    bob: Tenant  # analyze + read, the other tenant
    reader: Tenant  # read only
    analyst: Tenant  # analyze only
    admin: Tenant  # admin
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def tenants(self) -> list[Tenant]:
        return [self.alice, self.bob, self.reader, self.analyst, self.admin]

    def new_key(self, name: str, scopes: tuple[str, ...]) -> Tenant:
        info, secret = self.app.state.services.keys.create(name, scopes)
        return Tenant(name, info.id, secret, scopes)


def make_settings(root: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": f"sqlite:///{root / 'lensforge.db'}",
        "data_dir": root / "data",
        "executor": "thread",
        "workers": 2,
        "poll_interval_s": 0.05,
        "shutdown_grace_s": 1.0,
        "rate_limit_per_s": 0.0,
    }
    values.update(overrides)
    return Settings(**values)


def open_secure(settings: Settings, plugins: list[Any] | None = None) -> Iterator[Secure]:
    """The app with its lifespan running, a client, and the five standard keys."""
    app = create_app(settings, extra_plugins=plugins or PLUGINS)
    # MCP's DNS-rebinding guard wants a loopback Host header, as a real client sends.
    with TestClient(app, base_url="http://127.0.0.1", raise_server_exceptions=False) as client:
        keys = app.state.services.keys

        def key(name: str, scopes: tuple[str, ...]) -> Tenant:
            info, secret = keys.create(name, scopes)
            return Tenant(name, info.id, secret, scopes)

        yield Secure(
            app=app,
            client=client,
            settings=settings,
            alice=key("alice", ("analyze", "read")),
            bob=key("bob", ("analyze", "read")),
            reader=key("reader", ("read",)),
            analyst=key("analyst", ("analyze",)),
            admin=key("root", ("admin",)),
        )


@pytest.fixture
def secure(tmp_path: Path) -> Iterator[Secure]:
    """A fresh app with auth on (function scope: tests may change its state freely)."""
    yield from open_secure(make_settings(tmp_path))


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Secure]:
    """One app per module, for read-mostly tests (much faster than one app per test)."""
    yield from open_secure(make_settings(tmp_path_factory.mktemp("secure")))


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def run_echo(client: TestClient, tenant: Tenant, text: str = "hello") -> str:
    """A finished job of ``tenant``'s; returns its id."""
    response = client.post(
        "/v1/analyze",
        json={"plugin": "testing", "tool": "echo", "inputs": {"text": text}},
        headers=tenant.headers,
    )
    assert response.status_code == 200, response.text
    return str(response.json()["job_id"])


def upload_png(client: TestClient, tenant: Tenant, width: int = 33, height: int = 21) -> str:
    """Run ``testing.size`` on a fresh PNG as ``tenant``; returns the blob's hex digest."""
    data = png(width, height, (width % 256, height % 256, 7))
    response = client.post(
        "/v1/analyze",
        json={"plugin": "testing", "tool": "size", "inputs": {"image": b64(data)}},
        headers=tenant.headers,
    )
    assert response.status_code == 200, response.text
    return sha256(data)


def start_sleeper(client: TestClient, tenant: Tenant, seconds: float = 20.0) -> str:
    """A job of ``tenant``'s that stays unfinished until cancelled; returns its id."""
    response = client.post(
        "/v1/jobs",
        json={"plugin": "testing", "tool": "sleep", "inputs": {"seconds": seconds}},
        headers=tenant.headers,
    )
    assert response.status_code == 202, response.text
    return str(response.json()["job_id"])


def wait_for(predicate: Any, timeout_s: float = 5.0, interval_s: float = 0.02) -> bool:
    """Poll ``predicate`` until it is truthy or ``timeout_s`` passes (bounded loop)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval_s)
    return bool(predicate())


def assert_envelope(response: Any, status: int, code: str | None = None) -> dict[str, Any]:
    """The response is the one error envelope with this status (and code)."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == ENVELOPE_KEYS, error
    if code is not None:
        assert error["code"] == code, error
    return dict(error)


def assert_no_leak(text: str, secrets: list[str] | tuple[str, ...] = ()) -> None:
    """No traceback, file path, SQL or secret in ``text``."""
    for mark in LEAK_MARKS:
        assert mark not in text, f"{mark!r} leaked in: {text[:500]}"
    for secret in secrets:
        assert secret not in text, f"a secret leaked in: {text[:500]}"


def app_routes(app: FastAPI) -> list[tuple[str, str]]:
    """Every (method, path template) the app serves, HEAD aside, as the router sees them."""
    try:  # FastAPI >= 0.13x keeps included routers lazily; this flattens them
        from fastapi.routing import iter_route_contexts

        routes = [(rc.methods, rc.path) for rc in iter_route_contexts(app.routes)]
    except ImportError:  # older FastAPI: app.routes is already flat
        routes = [(getattr(r, "methods", None), getattr(r, "path", "")) for r in app.routes]
    found = {
        (method, str(path))
        for methods, path in routes
        for method in (methods or ())  # WebSocket routes authorize themselves
        if method != "HEAD"
    }
    return sorted(found, key=lambda item: (item[1], item[0]))


FIGURES: dict[str, Any] = {}


def record_figure(name: str, value: Any) -> None:
    """Keep a figure for docs/security.md; written out when LENSFORGE_SECURITY_FIGURES is set."""
    FIGURES[name] = value


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    target = os.environ.get("LENSFORGE_SECURITY_FIGURES")
    if target and FIGURES:
        Path(target).write_text(json.dumps(FIGURES, indent=2, sort_keys=True, default=str))


@dataclass
class Streamed:
    """The answer to a request whose body was streamed chunk by chunk into the ASGI app."""

    status: int
    body: bytes
    consumed: int  # body bytes the app actually pulled through ``receive``

    def json(self) -> Any:
        return json.loads(self.body)


def stream_request(
    client: TestClient,
    path: str,
    chunks: Iterator[bytes],
    headers: dict[str, str],
    method: str = "POST",
) -> Streamed:
    """Drive the app directly (in the TestClient's event loop) with a lazily streamed body.

    TestClient reads a generator body whole before calling the app; this does not, so it
    shows how much of an oversized body the server pulls in before answering.
    """
    import anyio

    consumed = 0
    status = 0
    body = bytearray()

    async def run() -> None:
        done = anyio.Event()  # made inside the app's event loop
        finished = False

        async def receive() -> dict[str, Any]:
            nonlocal consumed, finished
            if finished:
                await done.wait()
                return {"type": "http.disconnect"}
            chunk = next(chunks, None)
            if chunk is None:
                finished = True
                return {"type": "http.request", "body": b"", "more_body": False}
            consumed += len(chunk)
            return {"type": "http.request", "body": chunk, "more_body": True}

        async def send(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                body.extend(message.get("body", b""))
                if not message.get("more_body", False):
                    done.set()

        raw = [(b"host", b"127.0.0.1")]
        raw += [(k.lower().encode(), v.encode()) for k, v in headers.items()]
        scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1",
            "method": method,
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "root_path": "",
            "headers": raw,
            "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 80),
            "state": {},
        }
        with anyio.fail_after(30):
            await client.app(scope, receive, send)

    assert client.portal is not None, "use inside `with TestClient(...)`"
    client.portal.call(run)
    return Streamed(status, bytes(body), consumed)


def zeros(total: int, chunk: int = 64 * 1024, prefix: bytes = b"") -> Iterator[bytes]:
    """``total`` bytes in ``chunk``-sized pieces, made as they are pulled (never all at once)."""
    if prefix:
        yield prefix
    sent = len(prefix)
    piece = b"0" * chunk
    while sent < total:
        part = piece[: min(chunk, total - sent)]
        sent += len(part)
        yield part
