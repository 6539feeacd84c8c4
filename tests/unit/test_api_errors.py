"""Every error path of the REST API leaves as the same envelope, and none is a 500."""

from __future__ import annotations

import hashlib
import io
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from lensforge.api import create_app
from lensforge.settings import Settings
from tests.plugins_for_tests import TEST_PLUGINS
from tests.support import ENVELOPE_KEYS, b64, jpeg, png
from tests.unit.api.support import wait_for

TRACEBACK_MARKS = ("Traceback", 'File "')


@pytest.fixture(scope="module")
def client(module_client: TestClient) -> TestClient:
    """This module's tests share one app."""
    return module_client


def assert_no_traceback(response: httpx.Response) -> None:
    for mark in TRACEBACK_MARKS:
        assert mark not in response.text, response.text


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The response is the one envelope, with this status and code; returns its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}
    error = body["error"]
    assert set(error) == ENVELOPE_KEYS
    assert error["code"] == code
    assert isinstance(error["message"], str) and error["message"]
    assert isinstance(error["details"], dict)
    assert isinstance(error["retryable"], bool)
    assert error["timestamp"].endswith("Z")
    assert_no_traceback(response)
    return error


def analyze(client: TestClient, plugin: str, tool: str | None = None, **inputs: Any) -> Any:
    body: dict[str, Any] = {"plugin": plugin, "inputs": inputs}
    if tool is not None:
        body["tool"] = tool
    return client.post("/v1/analyze", json=body)


def png_with_size(width: int, height: int) -> bytes:
    """A real small PNG whose IHDR claims another size (with a correct CRC)."""
    data = bytearray(png(4, 4))
    assert data[12:16] == b"IHDR"
    ihdr = struct.pack(">II", width, height) + bytes(data[24:29])
    data[16:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return bytes(data)


# -- resolving the plugin and tool ----------------------------------------------------------------


def test_unknown_plugin(client: TestClient) -> None:
    error = assert_error(analyze(client, "nope", "x"), 404, "plugin_not_found")
    assert error["plugin"] == "nope"


def test_unknown_tool(client: TestClient) -> None:
    error = assert_error(analyze(client, "testing", "nope"), 404, "tool_not_found")
    assert (error["plugin"], error["tool"]) == ("testing", "nope")
    assert "echo" in error["message"]  # says which tools exist


def test_unknown_tool_in_dotted_form(client: TestClient) -> None:
    assert_error(analyze(client, "testing.nope"), 404, "tool_not_found")


def test_multi_tool_plugin_without_a_tool(client: TestClient) -> None:
    error = assert_error(analyze(client, "testing"), 422, "validation_error")
    assert "echo" in error["details"]["tools"]


def test_async_submission_reports_the_same_errors(client: TestClient) -> None:
    response = client.post("/v1/jobs", json={"plugin": "testing", "tool": "nope"})
    assert_error(response, 404, "tool_not_found")
    response = client.post("/v1/jobs", json={"plugin": "testing", "tool": "echo", "inputs": {}})
    assert_error(response, 422, "validation_error")


# -- the request's shape ------------------------------------------------------------------------


def test_schema_violations_list_every_bad_field(client: TestClient) -> None:
    error = assert_error(
        analyze(client, "testing", "echo", text=5, times="x"), 422, "validation_error"
    )
    fields = {problem["field"] for problem in error["details"]["errors"]}
    assert fields == {"text", "times"}
    assert (error["plugin"], error["tool"]) == ("testing", "echo")


def test_missing_and_unknown_inputs(client: TestClient) -> None:
    error = assert_error(analyze(client, "testing", "echo", extra=1), 422, "validation_error")
    fields = {problem["field"] for problem in error["details"]["errors"]}
    assert fields == {"text", "extra"}


def test_json_schema_tool_violations(client: TestClient) -> None:
    error = assert_error(
        analyze(client, "testing", "repeat", word="", n="x"), 422, "validation_error"
    )
    fields = {problem["field"] for problem in error["details"]["errors"]}
    assert fields == {"word", "n"}


def test_bad_envelope_fields(client: TestClient) -> None:
    response = client.post("/v1/analyze", json={"plugin": "", "inputs": [], "surprise": 1})
    error = assert_error(response, 422, "validation_error")
    fields = {problem["field"] for problem in error["details"]["errors"]}
    assert {"plugin", "inputs", "surprise"} <= fields


def test_timeout_out_of_range(client: TestClient) -> None:
    body = {"plugin": "testing", "tool": "noop", "timeout_s": 10_000}
    assert_error(client.post("/v1/analyze", json=body), 422, "validation_error")
    body["timeout_s"] = -1
    assert_error(client.post("/v1/analyze", json=body), 422, "validation_error")


@pytest.mark.parametrize(
    "content",
    [b"{not json", b"[1, 2]", b'"text"', b"\xff\xfe{}", b""],
    ids=["invalid", "array", "string", "bad-utf8", "empty"],
)
def test_bodies_that_are_not_a_json_object(client: TestClient, content: bytes) -> None:
    response = client.post(
        "/v1/analyze", content=content, headers={"content-type": "application/json"}
    )
    assert_error(response, 422, "validation_error")


def test_bad_inputs_field_in_a_multipart_form(client: TestClient) -> None:
    response = client.post(
        "/v1/analyze",
        files={"image": ("x.png", png(), "image/png")},
        data={"plugin": "testing", "tool": "size", "inputs": "[not json"},
    )
    assert_error(response, 422, "validation_error")


def test_upload_for_a_field_that_is_not_an_image_input(client: TestClient) -> None:
    response = client.post(
        "/v1/analyze",
        files={"text": ("x.png", png(), "image/png"), "other": ("y.png", png(), "image/png")},
        data={"plugin": "testing", "tool": "echo"},
    )
    assert_error(response, 422, "validation_error")


def post_form(client: TestClient, body: bytes, boundary: str | None = "b") -> httpx.Response:
    content_type = "multipart/form-data" + (f"; boundary={boundary}" if boundary else "")
    return client.post("/v1/analyze", content=body, headers={"content-type": content_type})


def part(name: str, data: bytes, filename: str | None = None) -> bytes:
    disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
    return f"--b\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + data + b"\r\n"


SIZE_FIELDS = part("plugin", b"testing") + part("tool", b"size")


@pytest.mark.parametrize(
    ("body", "boundary", "message"),
    [
        (SIZE_FIELDS + part("image", png(), "x.png"), "b", "closing boundary"),  # no --b--
        (b"", "b", "closing boundary"),
        (b"this is not a form at all", "b", "malformed"),
        (SIZE_FIELDS + b"--b--\r\n", None, "boundary"),
        (b"--b\r\nX-Other: 1\r\n\r\nvalue\r\n--b--\r\n", "b", "name"),
        (part("plugin", b"x" * (1024 * 1024 + 1)) + b"--b--\r\n", "b", "larger than"),
        (b"".join(part(f"f{i}", b"1", f"{i}.png") for i in range(17)) + b"--b--\r\n", "b", "files"),
    ],
    ids=["unclosed", "empty", "garbage", "no-boundary", "no-name", "huge-field", "17-files"],
)
def test_malformed_multipart_forms(
    client: TestClient, body: bytes, boundary: str | None, message: str
) -> None:
    error = assert_error(post_form(client, body, boundary), 422, "validation_error")
    assert message in error["message"], error["message"]


def test_a_multipart_upload_reaches_the_tool_whole(client: TestClient) -> None:
    """A several-megabyte upload, its fields in any order, arrives byte for byte."""
    from PIL import Image as PILImage

    buffer = io.BytesIO()
    PILImage.effect_noise((1600, 1200), 80).convert("RGB").save(buffer, "PNG")
    big = buffer.getvalue()
    assert len(big) > 2 * 1024 * 1024  # past what Starlette would have spooled to disk
    body = part("image", big, "big.png") + SIZE_FIELDS + b"--b--\r\n"
    response = post_form(client, body)
    assert response.status_code == 200, response.text
    assert response.json()["result"] == {"width": 1600, "height": 1200}
    stored = client.get(f"/v1/blobs/{hashlib.sha256(big).hexdigest()}")  # stored under its hash
    assert stored.status_code == 200 and stored.content == big


# -- media -------------------------------------------------------------------------------------


def test_invalid_base64(client: TestClient) -> None:
    error = assert_error(
        analyze(client, "testing", "size", image="@@not base64@@"), 422, "validation_error"
    )
    assert error["details"]["field"] == "image"


def test_bytes_that_are_not_an_image(client: TestClient) -> None:
    response = analyze(client, "testing", "size", image=b64(b"%PDF-1.7 not an image at all"))
    error = assert_error(response, 415, "unsupported_media_type")
    assert "image/png" in error["details"]["supported"]


def test_bytes_that_are_not_an_image_as_an_upload(client: TestClient) -> None:
    response = client.post(
        "/v1/analyze",
        files={"image": ("x.png", b"GIF? no, plain text", "image/png")},  # the name lies
        data={"plugin": "testing", "tool": "size"},
    )
    assert_error(response, 415, "unsupported_media_type")


@pytest.mark.parametrize(
    "truncated",
    [png(64, 64)[:-70], jpeg(64, 64)[:-40]],  # headers intact, pixel data cut short
    ids=["png", "jpeg"],
)
def test_truncated_image_fails_the_job_with_validation_error(
    client: TestClient, truncated: bytes
) -> None:
    response = analyze(client, "testing", "size", image=b64(truncated))
    error = assert_error(response, 422, "validation_error")
    assert error["job_id"]  # it got as far as a job, which FAILED
    job = client.get(f"/v1/jobs/{error['job_id']}").json()
    assert job["status"] == "FAILED"
    assert job["error"]["code"] == "validation_error"


def test_image_whose_header_is_cut_short(client: TestClient) -> None:
    data = jpeg(64, 64)
    error = assert_error(
        analyze(client, "testing", "size", image=b64(data[: len(data) // 2])),
        422,
        "validation_error",
    )
    assert error["details"]["field"] == "image"


def test_zero_byte_image(client: TestClient) -> None:
    assert_error(analyze(client, "testing", "size", image=""), 422, "validation_error")
    response = client.post(
        "/v1/analyze",
        files={"image": ("x.png", b"", "image/png")},
        data={"plugin": "testing", "tool": "size"},
    )
    assert_error(response, 422, "validation_error")


def test_decompression_bomb(client: TestClient) -> None:
    bomb = png_with_size(100_000, 100_000)
    assert_error(analyze(client, "testing", "size", image=b64(bomb)), 413, "payload_too_large")


def test_image_over_the_pixel_cap_but_under_pillows_limit(tmp_path: Path) -> None:
    capped = limited_settings(tmp_path, max_image_pixels=1000)
    with TestClient(create_app(capped, extra_plugins=TEST_PLUGINS)) as client:
        error = assert_error(
            analyze(client, "testing", "size", image=b64(png(40, 30))), 413, "payload_too_large"
        )
        assert error["details"]["max_pixels"] == 1000
        assert (
            client.post(
                "/v1/analyze",
                json={"plugin": "testing", "tool": "size", "inputs": {"image": b64(png(20, 20))}},
            ).status_code
            == 200
        )


def test_unknown_blob_reference(client: TestClient) -> None:
    response = analyze(client, "testing", "size", image={"blob": "sha256:" + "0" * 64})
    assert_error(response, 404, "blob_not_found")
    response = analyze(client, "testing", "size", image={"blob": "md5:abc"})
    assert_error(response, 422, "validation_error")


# -- body size ---------------------------------------------------------------------------------

SMALL_LIMIT = 64 * 1024


def limited_settings(root: Path, **limits: Any) -> Settings:
    """A server for limit checks, which happen before any tool runs: threads start fastest."""
    return Settings(
        database_url=f"sqlite:///{root / 'lensforge.db'}",
        data_dir=root / "data",
        workers=1,
        poll_interval_s=0.05,
        executor="thread",
        **limits,
    )


@pytest.fixture(scope="module")
def small_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    limited = limited_settings(tmp_path_factory.mktemp("small"), max_body_bytes=SMALL_LIMIT)
    with TestClient(create_app(limited, extra_plugins=TEST_PLUGINS)) as client:
        yield client


def big_body() -> bytes:
    return (
        b'{"plugin": "testing", "tool": "echo", "inputs": {"text": "'
        + b"a" * (SMALL_LIMIT * 2)
        + b'"}}'
    )


def test_body_over_the_limit_with_content_length(small_client: TestClient) -> None:
    response = small_client.post(
        "/v1/analyze", content=big_body(), headers={"content-type": "application/json"}
    )
    assert_error(response, 413, "payload_too_large")


def test_streamed_body_over_the_limit(small_client: TestClient) -> None:
    body = big_body()

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(body), 8192):
            yield body[start : start + 8192]

    response = small_client.post(
        "/v1/analyze", content=chunks(), headers={"content-type": "application/json"}
    )
    assert "content-length" not in response.request.headers
    assert_error(response, 413, "payload_too_large")


def test_multipart_upload_over_the_limit(small_client: TestClient) -> None:
    response = small_client.post(
        "/v1/analyze",
        files={"image": ("x.png", b"\x89PNG\r\n\x1a\n" + b"\0" * SMALL_LIMIT * 2, "image/png")},
        data={"plugin": "testing", "tool": "size"},
    )
    assert_error(response, 413, "payload_too_large")


def test_body_under_the_limit_still_works(small_client: TestClient) -> None:
    response = analyze(small_client, "testing", "echo", text="a" * 1000)
    assert response.status_code == 200, response.text


def test_image_over_the_byte_cap(tmp_path: Path) -> None:
    capped = limited_settings(tmp_path, max_image_bytes=100)
    with TestClient(create_app(capped, extra_plugins=TEST_PLUGINS)) as client:
        response = analyze(client, "testing", "size", image=b64(png(64, 64)))
        error = assert_error(response, 413, "payload_too_large")
        assert error["details"]["max_bytes"] == 100


# -- jobs --------------------------------------------------------------------------------------

MISSING_JOB = "00000000-0000-7000-8000-000000000000"


@pytest.mark.parametrize("suffix", ["", "/result", "/events"])
def test_unknown_job(client: TestClient, suffix: str) -> None:
    error = assert_error(client.get(f"/v1/jobs/{MISSING_JOB}{suffix}"), 404, "job_not_found")
    assert error["job_id"] == MISSING_JOB


def test_cancel_unknown_job(client: TestClient) -> None:
    assert_error(client.post(f"/v1/jobs/{MISSING_JOB}/cancel"), 404, "job_not_found")


def test_result_of_an_unfinished_job(client: TestClient) -> None:
    submitted = client.post(
        "/v1/jobs", json={"plugin": "testing", "tool": "sleep", "inputs": {"seconds": 2}}
    )
    assert submitted.status_code == 202, submitted.text
    job_id = submitted.json()["job_id"]
    error = assert_error(client.get(f"/v1/jobs/{job_id}/result"), 409, "result_not_ready")
    assert error["job_id"] == job_id
    assert error["details"]["status"] in {"PENDING", "RUNNING"}
    client.post(f"/v1/jobs/{job_id}/cancel")  # don't leave it running


def test_cancel_of_a_finished_job(client: TestClient) -> None:
    done = analyze(client, "testing", "noop")
    assert done.status_code == 200
    job_id = done.json()["job_id"]
    error = assert_error(client.post(f"/v1/jobs/{job_id}/cancel"), 409, "conflict")
    assert error["job_id"] == job_id
    assert client.get(f"/v1/jobs/{job_id}").json()["status"] == "SUCCESS"


def test_result_of_a_cancelled_job(client: TestClient) -> None:
    submitted = client.post(
        "/v1/jobs", json={"plugin": "testing", "tool": "sleep", "inputs": {"seconds": 5}}
    )
    job_id = submitted.json()["job_id"]
    client.post(f"/v1/jobs/{job_id}/cancel")
    wait_for(client, job_id, {"CANCELLED"})
    assert_error(client.get(f"/v1/jobs/{job_id}/result"), 409, "cancelled")


# -- tools that misbehave ----------------------------------------------------------------------


def test_a_tool_that_raises(client: TestClient) -> None:
    # The exception's text (it may hold paths or secrets) stays in the job's record and the
    # log; callers get its type (issue 15, item 13).
    response = analyze(client, "testing", "fail", message="kaboom /srv/secret-token")
    error = assert_error(response, 502, "plugin_error")
    assert "kaboom" not in error["message"] and "/srv" not in error["message"]
    assert "RuntimeError" in error["message"]
    assert error["details"] == {"exception": "RuntimeError"}
    assert (error["plugin"], error["tool"]) == ("testing", "fail")
    job_id = error["job_id"]
    job = client.get(f"/v1/jobs/{job_id}")
    assert job.json()["status"] == "FAILED"
    assert job.json()["error"]["code"] == "plugin_error"
    assert "kaboom" not in job.json()["error"]["message"]
    record = client.portal.call(client.app.state.services.store.get, job_id)  # type: ignore[attr-defined]
    assert record is not None and "kaboom /srv/secret-token" in (record.traceback or "")
    for url in (
        f"/v1/jobs/{job_id}",
        f"/v1/jobs/{job_id}/result",
        f"/v1/jobs/{job_id}/events",
        "/v1/jobs",
        f"/v1/analyze-execution/jobs/{job_id}/result",
    ):
        assert_no_traceback(client.get(url))
    assert_error(client.get(f"/v1/jobs/{job_id}/result"), 502, "plugin_error")
    # the server still serves
    assert client.get("/healthz").status_code == 200
    assert analyze(client, "testing", "echo", text="still here").json()["result"]["text"] == (
        "still here"
    )


def test_a_tool_that_returns_the_wrong_shape(client: TestClient) -> None:
    error = assert_error(analyze(client, "testing", "bad_output"), 502, "plugin_error")
    assert "output" in error["message"]
    assert "text" in error["message"] or "times" in error["message"]


def test_plugin_error_from_an_async_job_keeps_the_envelope(client: TestClient) -> None:
    submitted = client.post("/v1/jobs", json={"plugin": "testing", "tool": "fail"})
    job_id = submitted.json()["job_id"]
    wait_for(client, job_id, {"FAILED"})
    error = assert_error(client.get(f"/v1/jobs/{job_id}/result"), 502, "plugin_error")
    assert error["job_id"] == job_id


# -- routing -----------------------------------------------------------------------------------


def test_unknown_route(client: TestClient) -> None:
    assert_error(client.get("/v1/nothing-here"), 404, "not_found")
    assert_error(client.post("/nope", json={}), 404, "not_found")


def test_wrong_method(client: TestClient) -> None:
    assert_error(client.get("/v1/analyze"), 405, "method_not_allowed")
    assert_error(client.delete("/v1/jobs"), 405, "method_not_allowed")


def test_a_body_that_is_not_json_is_the_whole_bodys_problem(client: TestClient) -> None:
    response = client.post("/v1/keys", content=b"{", headers={"content-type": "application/json"})
    error = assert_error(response, 422, "validation_error")
    assert error["details"]["errors"][0]["field"] == "(body)"
    assert error["message"] == "Invalid request: (body): JSON decode error"


def test_a_405_lists_every_method_served_at_that_path(client: TestClient) -> None:
    """Two routes serve /v1/jobs (POST, then GET); the router's own Allow names the first."""
    for response in (client.delete("/v1/jobs"), client.options("/v1/jobs")):
        error = assert_error(response, 405, "method_not_allowed")
        assert response.headers["allow"] == "GET, POST"
        assert error["details"]["allowed"] == ["GET", "POST"]
    response = client.get("/v1/analyze")
    assert response.headers["allow"] == "POST"
    assert client.delete("/mcp").status_code != 405  # /mcp serves DELETE
    assert set(client.put("/mcp").headers["allow"].split(", ")) == {"DELETE", "GET", "HEAD", "POST"}


def test_bad_query_parameters(client: TestClient) -> None:
    assert_error(client.get("/v1/jobs", params={"limit": 0}), 422, "validation_error")
    assert_error(client.get("/v1/jobs", params={"status": "DONE"}), 422, "validation_error")


def test_unknown_plugin_manifest(client: TestClient) -> None:
    assert_error(client.get("/v1/plugins/nope"), 404, "plugin_not_found")


def test_unknown_blob(client: TestClient) -> None:
    assert_error(client.get("/v1/blobs/" + "0" * 64), 404, "blob_not_found")
    assert_error(client.get("/v1/blobs/not-a-digest"), 422, "validation_error")


def test_the_bomb_helper_really_claims_that_size() -> None:
    from PIL import Image as PILImage

    with pytest.raises(PILImage.DecompressionBombError):
        PILImage.open(io.BytesIO(png_with_size(100_000, 100_000)))
