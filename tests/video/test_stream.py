"""Live frame streams over ``WS /v1/stream``: order, back-pressure, limits, close codes."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from lensforge import Image, Plugin, tool
from lensforge.api import create_app
from lensforge.settings import Settings
from lensforge.wiring import Services
from tests.plugins_for_tests import TEST_PLUGINS
from tests.support import png


class Slow(Plugin):
    """An image tool that takes a known time per frame."""

    name = "slow"
    version = "1.0.0"

    @tool
    def look(self, image: Image, delay: float = 0.0, narrowest: int = 0) -> dict[str, int]:
        """Width and height, after ``delay`` seconds; raises for images narrower than
        ``narrowest``."""
        time.sleep(delay)
        if image.width < narrowest:
            raise ValueError(f"{image.width} px is too narrow")
        return {"width": image.width, "height": image.height}


def make_client(tmp_path: Path, **overrides: Any) -> TestClient:
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'lensforge.db'}",
        data_dir=tmp_path / "data",
        executor="thread",
        workers=2,
        poll_interval_s=0.05,
        **overrides,
    )
    return TestClient(create_app(settings, extra_plugins=[*TEST_PLUGINS, Slow]))


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with make_client(tmp_path) as test_client:
        yield test_client


def frame(i: int) -> bytes:
    return png(16 + i % 8, 12, (i * 7 % 255, 0, 0))


def messages_until_closed(ws: Any) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    while True:
        message = ws.receive_json()
        out.append(message)
        if message["type"] == "closed":
            return out


def test_results_come_back_tagged_and_in_frame_order(client: TestClient) -> None:
    with client.websocket_connect("/v1/stream") as ws:
        ws.send_json({"type": "open", "tool": "slow.look", "policy": "block"})
        ready = ws.receive_json()
        assert ready["type"] == "ready" and ready["tool"] == "slow.look"
        for i in range(6):
            ws.send_bytes(frame(i))
        ws.send_json({"type": "close"})
        received = messages_until_closed(ws)
    results = [m for m in received if m["type"] == "result"]
    assert [m["frame"] for m in results] == list(range(6))
    assert [m["result"]["width"] for m in results] == [16 + i % 8 for i in range(6)]
    assert received[-1] == {
        "type": "closed",
        "stream_id": ready["stream_id"],
        "frames_in": 6,
        "dropped": 0,
        "results": 6,
        "errors": 0,
    }


def test_a_tool_error_is_that_frames_answer_and_the_stream_goes_on(client: TestClient) -> None:
    with client.websocket_connect("/v1/stream") as ws:
        ws.send_json(
            {"type": "open", "tool": "slow.look", "inputs": {"narrowest": 18}, "policy": "block"}
        )
        assert ws.receive_json()["type"] == "ready"
        for i in range(4):  # widths 16, 17, 18, 19
            ws.send_bytes(frame(i))
        ws.send_json({"type": "close"})
        received = messages_until_closed(ws)
    assert [(m["type"], m["frame"]) for m in received[:-1]] == [
        ("error", 0),
        ("error", 1),
        ("result", 2),
        ("result", 3),
    ]
    assert received[0]["error"]["code"] == "plugin_error"
    assert "ValueError" in received[0]["error"]["message"]  # the text stays in the log
    assert received[-1]["errors"] == 2 and received[-1]["results"] == 2


@pytest.mark.parametrize("policy", ["drop_oldest", "drop_newest"])
def test_frames_faster_than_the_tool_are_dropped_by_policy(client: TestClient, policy: str) -> None:
    with client.websocket_connect("/v1/stream") as ws:
        ws.send_json(
            {"type": "open", "tool": "slow.look", "inputs": {"delay": 0.5}, "policy": policy}
        )
        assert ws.receive_json()["type"] == "ready"
        for i in range(10):  # far faster than 2 frames a second
            ws.send_bytes(frame(i))
        ws.send_json({"type": "close"})
        received = messages_until_closed(ws)
    done = [m["frame"] for m in received if m["type"] == "result"]
    dropped = [f for m in received if m["type"] == "dropped" for f in m["frames"]]
    summary = received[-1]
    assert dropped and summary["dropped"] == len(dropped)
    assert sorted(done + dropped) == list(range(10))  # every frame is answered or reported
    assert done == sorted(done) and summary["results"] == len(done) < 10
    assert len(done) <= 5  # the one running, two waiting, and little else
    if policy == "drop_oldest":
        assert done[-1] == 9  # the newest frame always survives
    else:
        assert done[0] == 0 and 9 in dropped  # the frames already queued survive


def test_a_frame_the_server_cannot_run_is_an_internal_error_and_the_stream_goes_on(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub = client.app.state.services.analysis.streams  # type: ignore[attr-defined]
    put = hub.blobs.put
    calls = 0

    def put_failing_once(data: bytes) -> Any:  # the blob store fails (a full disk) for frame 1
        nonlocal calls
        calls += 1
        if calls == 2:
            raise OSError("No space left on device")
        return put(data)

    monkeypatch.setattr(hub.blobs, "put", put_failing_once)
    with client.websocket_connect("/v1/stream") as ws:
        ws.send_json({"type": "open", "tool": "slow.look", "policy": "block"})
        assert ws.receive_json()["type"] == "ready"
        for i in range(3):
            ws.send_bytes(frame(i))
        ws.send_json({"type": "close"})
        received = messages_until_closed(ws)
    assert [(m["type"], m["frame"]) for m in received[:-1]] == [
        ("result", 0),
        ("error", 1),
        ("result", 2),
    ]
    error = received[1]["error"]
    assert error["code"] == "internal_error"
    assert error["message"] == "The frame could not be run; see the server log."
    assert (error["plugin"], error["tool"]) == ("slow", "look")
    assert "No space" not in str(received)  # the cause stays in the log
    assert (received[-1]["results"], received[-1]["errors"]) == (2, 1)
    assert hub.snapshot()["errors"] == 1


def test_a_bad_frame_closes_the_socket_with_1003(client: TestClient) -> None:
    with client.websocket_connect("/v1/stream") as ws:
        ws.send_json({"type": "open", "tool": "slow.look"})
        assert ws.receive_json()["type"] == "ready"
        ws.send_bytes(b"PK\x03\x04 this is a zip, not a frame")
        error = ws.receive_json()
        assert error["type"] == "error" and error["error"]["code"] in (
            "unsupported_media_type",
            "validation_error",
        )
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_json()
    assert closed.value.code == 1003


def test_a_frame_over_the_size_limit_closes_with_1009(tmp_path: Path) -> None:
    with (
        make_client(tmp_path, stream_max_frame_bytes=200) as client,
        client.websocket_connect("/v1/stream") as ws,
    ):
        ws.send_json({"type": "open", "tool": "slow.look"})
        assert ws.receive_json()["type"] == "ready"
        ws.send_bytes(png(64, 64) + b"\0" * 200)
        assert ws.receive_json()["error"]["code"] == "payload_too_large"
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_json()
    assert closed.value.code == 1009


def test_a_tool_without_an_image_is_refused_at_open(client: TestClient) -> None:
    with client.websocket_connect("/v1/stream") as ws:
        ws.send_json({"type": "open", "tool": "testing.echo", "inputs": {"text": "x"}})
        error = ws.receive_json()
        assert error["error"]["code"] == "validation_error"
        assert error["error"]["tool"] == "echo"
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_json()
    assert closed.value.code == 1003


def test_frames_past_the_rate_limit_are_dropped(tmp_path: Path) -> None:
    with (
        make_client(tmp_path, stream_max_fps=0.5, stream_queue=50) as client,
        client.websocket_connect("/v1/stream") as ws,
    ):
        ws.send_json({"type": "open", "tool": "slow.look", "policy": "block"})
        assert ws.receive_json()["type"] == "ready"
        for i in range(8):
            ws.send_bytes(frame(i))
        ws.send_json({"type": "close"})
        received = messages_until_closed(ws)
    reasons = {m["reason"] for m in received if m["type"] == "dropped"}
    assert reasons == {"rate"}
    # a burst of one frame, then one every two seconds: the other seven are dropped
    assert received[-1]["results"] == 1 and received[-1]["dropped"] == 7


def keyed(services: Services, scopes: tuple[str, ...] = ("analyze",)) -> str:
    return services.keys.create("streamer", scopes)[1]


def test_auth_by_header_or_first_message_and_bad_keys_close_with_1008(
    client: TestClient,
) -> None:
    services: Services = client.app.state.services  # type: ignore[attr-defined]
    good, reader = keyed(services), keyed(services, ("read",))
    with client.websocket_connect("/v1/stream", headers={"authorization": f"Bearer {good}"}) as ws:
        ws.send_json({"type": "open", "tool": "slow.look"})
        assert ws.receive_json()["type"] == "ready"
    with client.websocket_connect("/v1/stream") as ws:
        ws.send_json({"type": "auth", "api_key": good})
        ws.send_json({"type": "open", "tool": "slow.look"})
        assert ws.receive_json()["type"] == "ready"
    for first, code in (
        ({"type": "auth", "api_key": "nope"}, "unauthorized"),
        ({"type": "open", "tool": "slow.look"}, "unauthorized"),
        ({"type": "auth", "api_key": reader}, "forbidden"),
    ):
        with client.websocket_connect("/v1/stream") as ws:
            ws.send_json(first)
            assert ws.receive_json()["error"]["code"] == code
            with pytest.raises(WebSocketDisconnect) as closed:
                ws.receive_json()
        assert closed.value.code == 1008
    # a key in the query string is never read
    with client.websocket_connect(f"/v1/stream?api_key={good}") as ws:
        ws.send_json({"type": "open", "tool": "slow.look"})
        assert ws.receive_json()["error"]["code"] == "unauthorized"
    deadline = time.monotonic() + 5  # the server records a stream as its socket winds down
    while len(records := services.audit.list(event="stream_closed")) < 2:
        assert time.monotonic() < deadline, records
        time.sleep(0.02)
    assert {record["detail"]["tool"] for record in records} == {"slow.look"}


def test_the_per_key_limit_holds_and_spares_other_keys(tmp_path: Path) -> None:
    with make_client(tmp_path, stream_max_per_key=1) as client:
        services: Services = client.app.state.services  # type: ignore[attr-defined]
        first, second = keyed(services), keyed(services)

        def connect(key: str) -> Any:
            return client.websocket_connect("/v1/stream", headers={"x-api-key": key})

        with connect(first) as held:
            held.send_json({"type": "open", "tool": "slow.look"})
            assert held.receive_json()["type"] == "ready"
            with connect(first) as refused:
                refused.send_json({"type": "open", "tool": "slow.look"})
                assert refused.receive_json()["error"]["code"] == "rate_limited"
                with pytest.raises(WebSocketDisconnect) as closed:
                    refused.receive_json()
            assert closed.value.code == 1008
            with connect(second) as other:
                other.send_json({"type": "open", "tool": "slow.look"})
                assert other.receive_json()["type"] == "ready"
            held.send_bytes(frame(0))
            held.send_json({"type": "close"})
            assert messages_until_closed(held)[-1]["results"] == 1
        with connect(first) as again:  # the closed stream no longer counts
            again.send_json({"type": "open", "tool": "slow.look"})
            assert again.receive_json()["type"] == "ready"


def test_metrics_count_streams(client: TestClient) -> None:
    with client.websocket_connect("/v1/stream") as ws:
        ws.send_json({"type": "open", "tool": "slow.look"})
        ws.receive_json()
        ws.send_bytes(frame(1))
        ws.send_json({"type": "close"})
        messages_until_closed(ws)
    services: Services = client.app.state.services  # type: ignore[attr-defined]
    assert services.analysis.streams.snapshot() == {
        "open": 0,
        "opened": 1,
        "frames_in": 1,
        "dropped": 0,
        "results": 1,
        "errors": 0,
    }


def test_the_route_declares_its_scope(client: TestClient) -> None:
    from lensforge.api.auth import declared_scope

    routes = [r for r in client.app.router.routes if getattr(r, "path", "") == "/v1/stream"]  # type: ignore[attr-defined]
    assert [declared_scope(r) for r in routes] == ["analyze"]
