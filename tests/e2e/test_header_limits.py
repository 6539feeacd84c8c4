"""The request head is capped at the server (431), before authentication or the app."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.test_server import Server

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("headers")
    running = Server(tmp, "headers", LENSFORGE_MAX_HEADER_BYTES="16384", LENSFORGE_MAX_HEADERS="40")
    running.start()
    try:
        yield running
    finally:
        running.terminate()


def raw_request(port: int, head: bytes, *, stream: int = 0, chunk: int = 65536) -> bytes:
    """Send a request head (plus ``stream`` more bytes of one header), read the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        try:
            sock.sendall(head)
            sent = 0
            while sent < stream:
                sock.sendall(b"a" * chunk)
                sent += chunk
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server refused and closed while we were still sending
        answer = b""
        try:
            while data := sock.recv(65536):
                answer += data
        except ConnectionResetError:
            pass
    return answer


def envelope(answer: bytes) -> tuple[int, dict[str, object]]:
    head, _, body = answer.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, json.loads(body)["error"]


def test_an_ordinary_request_passes(server: Server) -> None:
    headers = {f"x-extra-{i}": "v" * 100 for i in range(20)}
    assert httpx.get(f"{server.url}/healthz", headers=headers).status_code == 200


def test_a_huge_header_is_431_before_it_is_read_whole(server: Server) -> None:
    head = b"GET /v1/jobs HTTP/1.1\r\nHost: x\r\nX-Big: "
    answer = raw_request(server.port, head, stream=50 * 1024 * 1024)  # 50 MB offered
    status, error = envelope(answer)
    assert (status, error["code"]) == (431, "headers_too_large")
    assert error["details"] == {"max_header_bytes": 16384, "max_headers": 40}
    assert httpx.get(f"{server.url}/healthz").status_code == 200  # the server carries on


def test_too_many_header_fields_is_431(server: Server) -> None:
    fields = b"".join(b"X-F%d: 1\r\n" % i for i in range(60))
    answer = raw_request(server.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + fields + b"\r\n")
    status, error = envelope(answer)
    assert (status, error["code"]) == (431, "headers_too_large")


def test_server_memory_stays_bounded(server: Server) -> None:
    assert server.process is not None
    status = Path(f"/proc/{server.process.pid}/status").read_text()
    rss_kib = int(next(line for line in status.splitlines() if line.startswith("VmHWM")).split()[1])
    assert rss_kib < 400 * 1024, f"server peak RSS {rss_kib // 1024} MiB"
