"""Hostile files against a real server process (``python -m tests.security.plugins``).

For each hostile input: the documented 4xx (or a clean 200), then afterwards the server's
memory is bounded (RSS and peak RSS from /proc, before and after), the jobs stored before are
intact (row count and per-row checksums of the ``jobs`` table), the server still serves, and
its DEBUG-level log never contains an API key.
"""

from __future__ import annotations

import hashlib
import json
import os
import select
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.security.conftest import LEAK_MARKS, b64, record_figure
from tests.security.hostile import HOSTILE, Hostile
from tests.support import free_port, png, wait_until_serving

pytestmark = [pytest.mark.slow, pytest.mark.skipif(sys.platform != "linux", reason="/proc")]

ROOT = Path(__file__).resolve().parents[2]
BODY_CAP = 8 * 1024 * 1024
HUNDRED_MB = 100 * 1024 * 1024
MEMORY_BOUND = 64 * 1024 * 1024  # growth allowed, well under the 100 MB a buffered upload costs


def lensforge() -> list[str]:
    script = Path(sys.executable).with_name("lensforge")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "lensforge.cli"]


def memory(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak RSS) of a process, in bytes."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            values[name] = int(rest.split()[0]) * 1024
    return values


def job_rows(database: Path) -> dict[str, str]:
    """Every row of the jobs table, as id -> sha256 of the row."""
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as conn:
        rows = conn.execute("SELECT * FROM jobs ORDER BY id").fetchall()
    return {str(row[0]): hashlib.sha256(repr(row).encode()).hexdigest() for row in rows}


@dataclass
class Server:
    url: str
    port: int
    process: subprocess.Popen[bytes]
    log: Path
    database: Path
    key: str
    admin_key: str
    secrets: list[str] = field(default_factory=list)

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


def create_key(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [*lensforge(), "keys", "create", "--json", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return str(json.loads(done.stdout)["key"])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("hostile-server")
    port = free_port()
    database = root / "lensforge.db"
    env = {
        **os.environ,
        "LENSFORGE_HOST": "127.0.0.1",
        "LENSFORGE_PORT": str(port),
        "LENSFORGE_DATABASE_URL": f"sqlite:///{database}",
        "LENSFORGE_DATA_DIR": str(root / "data"),
        "LENSFORGE_WORKERS": "1",
        "LENSFORGE_POLL_INTERVAL_S": "0.05",
        "LENSFORGE_SHUTDOWN_GRACE_S": "1",
        "LENSFORGE_MAX_BODY_BYTES": str(BODY_CAP),
        "LENSFORGE_RATE_LIMIT_PER_S": "0",
    }
    key = create_key(env, "--name", "hostile", "--scope", "analyze,read")
    admin_key = create_key(env, "--name", "ops", "--scope", "read", "--admin")
    log = root / "server.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.security.plugins"],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(process, url, timeout_s=60, log=log)
        yield Server(url, port, process, log, database, key, admin_key, [key, admin_key])
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def send_hostile(server: Server, case: Hostile, data: bytes) -> httpx.Response:
    if case.kind == "json":
        return httpx.post(
            f"{server.url}/v1/jobs",
            content=data,
            headers={**server.headers(), "content-type": "application/json"},
            timeout=60,
        )
    return httpx.post(
        f"{server.url}/v1/analyze",
        data={"plugin": "testing", "tool": "size"},
        files={"image": ("upload.png", data, "image/png")},
        headers=server.headers(),
        timeout=60,
    )


def stream_upload(
    server: Server,
    path: str,
    headers: dict[str, str],
    total: int,
    *,
    declare: bool,
    prefix: bytes = b"",
) -> tuple[int, int, bytes]:
    """POST ``total`` bytes over a raw socket, stopping as soon as the server answers.

    Returns (status, body bytes sent before the answer, response body). With ``declare``
    the size goes in Content-Length; otherwise the body is chunked (its size unknown).
    ``prefix`` opens the body (a multipart part header); the rest is zeros, made lazily.
    """
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=30)
    try:
        lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        lines.append(f"Content-Length: {total}" if declare else "Transfer-Encoding: chunked")
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        sock.setblocking(False)
        piece = b"0" * (64 * 1024)
        sent = 0
        deadline = time.monotonic() + 60
        pending = b""
        # A declared size over the cap must be refused from the headers alone: the server
        # answers before it is sent a single body byte.
        answered = declare and select.select([sock], [], [], 2.0)[0]
        while not answered and sent < total and time.monotonic() < deadline:
            readable, writable, _ = select.select([sock], [sock], [], 5)
            if readable:
                break  # the server has answered: stop sending
            if not writable:
                continue
            if not pending:
                part = prefix if sent == 0 and prefix else piece[: min(len(piece), total - sent)]
                pending = part if declare else b"%x\r\n%s\r\n" % (len(part), part)
                sent += len(part)
            try:
                pending = pending[sock.send(pending) :]
            except (BrokenPipeError, ConnectionResetError, BlockingIOError):
                break
        sock.setblocking(True)
        response = b""
        while b"\r\n\r\n" not in response:
            chunk = sock.recv(65536)
            if not chunk:
                break
            response += chunk
        head, _, body = response.partition(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = next(
            (
                int(line.split(b":", 1)[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            ),
            0,
        )
        while len(body) < length:
            chunk = sock.recv(65536)
            if not chunk:
                break
            body += chunk
        return status, sent, body
    finally:
        sock.close()


def test_hostile_files_against_a_real_server(server: Server) -> None:
    with httpx.Client(base_url=server.url, headers=server.headers(), timeout=60) as client:
        attack(server, client)


def attack(server: Server, client: httpx.Client) -> None:
    # Jobs stored before the attack, and a warm-up of every request kind.
    for n in range(12):
        answer = client.post(
            "/v1/analyze",
            json={"plugin": "testing", "tool": "echo", "inputs": {"text": f"seed {n}"}},
        )
        assert answer.status_code == 200, answer.text
    warm = client.post(
        "/v1/analyze",
        data={"plugin": "testing", "tool": "size"},
        files={"image": ("w.png", png(64, 64), "image/png")},
    )
    assert warm.status_code == 200, warm.text
    assert client.post("/v1/jobs", json={"plugin": "testing", "tool": "noop"}).status_code == 202
    time.sleep(0.5)
    before_rows = job_rows(server.database)
    before = memory(server.process.pid)

    outcomes: list[dict[str, Any]] = []
    for case in HOSTILE:
        data = case.build()
        started = time.monotonic()
        response = send_hostile(server, case, data)
        elapsed = time.monotonic() - started
        body = response.json()
        code = body.get("error", {}).get("code") if isinstance(body, dict) else None
        outcomes.append(
            {
                "case": case.name,
                "bytes": len(data),
                "status": response.status_code,
                "code": code,
                "seconds": round(elapsed, 3),
            }
        )
        assert response.status_code == case.status, (case.name, response.text)
        assert code == case.code, (case.name, response.text)
        for mark in LEAK_MARKS:
            assert mark not in response.text, (case.name, response.text)

    # 100 MB, streamed, four ways: never held in memory, refused at the cap.
    json_headers = {**server.headers(), "Content-Type": "application/json"}
    form_headers = {**server.headers(), "Content-Type": "multipart/form-data; boundary=b"}
    part = b'--b\r\nContent-Disposition: form-data; name="image"; filename="big.png"\r\n\r\n'
    for label, path, headers, declare in (
        ("100 MB JSON, Content-Length declared", "/v1/jobs", json_headers, True),
        ("100 MB JSON, chunked", "/v1/jobs", json_headers, False),
        ("100 MB multipart upload, Content-Length declared", "/v1/analyze", form_headers, True),
        ("100 MB multipart upload, chunked", "/v1/analyze", form_headers, False),
    ):
        started = time.monotonic()
        prefix = part if path == "/v1/analyze" else b""
        status, sent, body = stream_upload(
            server, path, headers, HUNDRED_MB, declare=declare, prefix=prefix
        )
        error = json.loads(body)["error"]
        outcomes.append(
            {
                "case": label,
                "bytes": HUNDRED_MB,
                "status": status,
                "code": error["code"],
                "seconds": round(time.monotonic() - started, 3),
                "client_sent_before_answer": sent,
                "server_read": 0 if declare else error["details"]["received_at_least"],
            }
        )
        assert status == 413, (label, body[:300])
        assert error["code"] == "payload_too_large"
        if declare:  # refused from the header: the server answered before any body was sent
            assert sent == 0, (label, sent)
        else:  # the server's own count: it stopped reading one chunk past the cap
            assert BODY_CAP < error["details"]["received_at_least"] <= BODY_CAP + 1024 * 1024
            # The client got its answer long before the end (kernel buffers hold the rest).
            assert sent < HUNDRED_MB // 2, (label, sent)

    time.sleep(0.5)
    after = memory(server.process.pid)
    after_rows = job_rows(server.database)
    record_figure("hostile_outcomes", outcomes)
    record_figure("hostile_server_memory", {"before": before, "after": after})

    growth = {name: after[name] - before[name] for name in before}
    record_figure("hostile_server_memory_growth", growth)
    assert growth["VmRSS"] < MEMORY_BOUND, growth
    assert growth["VmHWM"] < MEMORY_BOUND, growth

    # Every job stored before is intact; new rows are only the hostile jobs that got past
    # the front door (a truncated JPEG fails in the worker; polyglots and TIFFs succeed).
    assert {k: after_rows[k] for k in before_rows} == before_rows
    admitted = sum(1 for case in HOSTILE if case.admitted)
    assert len(after_rows) - len(before_rows) == admitted
    record_figure("hostile_jobs_table", {"before": len(before_rows), "after": len(after_rows)})

    # Still serving, and the worker path still works.
    assert httpx.get(f"{server.url}/readyz", timeout=10).status_code == 200
    again = client.post(
        "/v1/analyze",
        json={"plugin": "testing", "tool": "size", "inputs": {"image": b64(png(7, 5))}},
    )
    assert again.json()["result"] == {"width": 7, "height": 5}


def test_keys_never_appear_in_the_server_log(server: Server) -> None:
    """Keys travel every path (valid, wrong, revoked, created over the API); grep the log."""
    admin = {"Authorization": f"Bearer {server.admin_key}"}
    made = httpx.post(
        f"{server.url}/v1/keys", json={"name": "api", "scopes": ["read"]}, headers=admin
    ).json()
    server.secrets.append(made["key"])
    wrong = server.key[:-4] + "WXYZ"
    server.secrets.append(wrong)
    for headers in (
        server.headers(),
        {"X-API-Key": server.key},
        {"Authorization": f"Bearer {wrong}"},
        {"X-API-Key": made["key"]},
        admin,
    ):
        httpx.get(f"{server.url}/v1/jobs", headers=headers, timeout=10)
        httpx.get(f"{server.url}/v1/keys", headers=headers, timeout=10)
        httpx.get(f"{server.url}/v1/jobs?api_key=none", headers=headers, timeout=10)
    httpx.delete(f"{server.url}/v1/keys/{made['id']}", headers=admin, timeout=10)
    time.sleep(2.5)  # past the key cache: the revoked key is looked up again
    assert httpx.get(f"{server.url}/v1/jobs", headers={"X-API-Key": made["key"]}).status_code == 401
    time.sleep(0.3)  # let the log reach the file

    text = server.log.read_text(errors="replace")
    assert "DEBUG" in text and "auth_denied" in text, "the log is not verbose enough to tell"
    lines = len(text.splitlines())
    record_figure("server_log_lines_grepped", lines)
    for secret in server.secrets:
        assert secret not in text
        assert secret.split("_", 2)[2] not in text
