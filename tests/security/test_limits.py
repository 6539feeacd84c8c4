"""Hostile-input limits, in process: body cap while streaming, image byte and pixel caps,
media sniffed from bytes, JSON depth and string caps, no server paths or URLs as inputs,
per-key rate limiting. (The same hostile files against a real server: test_hostile_server.)
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lensforge.settings import Settings
from tests.security.conftest import (
    Secure,
    assert_envelope,
    assert_no_leak,
    b64,
    make_settings,
    open_secure,
    record_figure,
    stream_request,
    zeros,
)
from tests.security.hostile import HOSTILE, Hostile, png_header_only
from tests.support import png

BODY_CAP = 256 * 1024
IMAGE_CAP = 128 * 1024
PIXEL_CAP = 1_000_000
HUNDRED_MB = 100 * 1024 * 1024


@pytest.fixture(scope="module")
def capped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Secure]:
    """An app with small caps, so every limit is reached with small inputs."""
    settings = make_settings(
        tmp_path_factory.mktemp("capped"),
        max_body_bytes=BODY_CAP,
        max_image_bytes=IMAGE_CAP,
        max_image_pixels=PIXEL_CAP,
        max_input_depth=8,
        max_input_string=1000,
    )
    yield from open_secure(settings)


def upload(secure: Secure, data: bytes, **extra: Any) -> Any:
    filename = extra.pop("filename", "image.png")
    media_type = extra.pop("media_type", "image/png")
    return secure.client.post(
        "/v1/analyze",
        data={"plugin": "testing", "tool": "size"},
        files={"image": (filename, data, media_type)},
        headers=secure.alice.headers,
        **extra,
    )


# -- request body cap ----------------------------------------------------------------------------


def test_a_declared_oversized_body_is_refused_before_a_byte_is_read(capped: Secure) -> None:
    headers = {**capped.alice.headers, "content-type": "application/json"}
    headers["content-length"] = str(HUNDRED_MB)
    answer = stream_request(capped.client, "/v1/jobs", zeros(HUNDRED_MB), headers)
    assert answer.status == 413
    assert answer.json()["error"]["code"] == "payload_too_large"
    assert answer.consumed == 0


@pytest.mark.parametrize(
    ("path", "content_type"),
    [
        ("/v1/jobs", "application/json"),
        ("/v1/analyze", "application/json"),
        ("/v1/analyze", "multipart/form-data; boundary=xyz"),
        ("/mcp", "application/json"),
    ],
)
def test_a_streamed_100_mb_body_is_cut_off_at_the_cap(
    capped: Secure, path: str, content_type: str
) -> None:
    """Chunked (no Content-Length): 413 once the cap is passed; the rest is never pulled."""
    headers = {**capped.alice.headers, "content-type": content_type}
    if path == "/mcp":
        headers["accept"] = "application/json, text/event-stream"
    prefix = b'--xyz\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\n\r\n'
    chunks = zeros(HUNDRED_MB, prefix=prefix if "multipart" in content_type else b"")
    answer = stream_request(capped.client, path, chunks, headers)
    assert answer.status == 413, answer.body[:300]
    assert answer.consumed <= BODY_CAP + 64 * 1024 + len(prefix)
    assert_no_leak(answer.body.decode())
    record_figure(f"streamed_100mb_{path}_{content_type.split(';')[0]}_pulled", answer.consumed)


@pytest.mark.parametrize(
    "path", ["/v1/analyze-execution", "/v1/analyze-execution/async", "/v1/keys"]
)
def test_a_streamed_oversized_body_is_413_on_model_bodied_routes(capped: Secure, path: str) -> None:
    tenant = capped.admin if path == "/v1/keys" else capped.alice
    headers = {**tenant.headers, "content-type": "application/json"}
    answer = stream_request(capped.client, path, zeros(HUNDRED_MB), headers)
    assert answer.consumed <= BODY_CAP + 64 * 1024  # it is cut off in time either way
    assert answer.status == 413, answer.body[:300]


def test_a_body_just_under_the_cap_is_read(capped: Secure) -> None:
    text = "a" * 900
    body = json.dumps({"plugin": "testing", "tool": "echo", "inputs": {"text": text}})
    padded = body[:-1] + " " * (BODY_CAP - len(body) - 10) + "}"
    response = capped.client.post(
        "/v1/jobs",
        content=padded.encode(),
        headers={**capped.alice.headers, "content-type": "application/json"},
    )
    assert response.status_code == 202, response.text


# -- images --------------------------------------------------------------------------------------


def noise_png(width: int, height: int) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.effect_noise((width, height), 100).convert("RGB").save(buffer, "PNG")
    return buffer.getvalue()


def test_an_image_over_the_byte_cap_is_413(capped: Secure) -> None:
    data = noise_png(256, 256)  # ~190 KB of noise: over 128 KiB, under the body cap
    assert IMAGE_CAP < len(data) < BODY_CAP
    error = assert_envelope(upload(capped, data), 413, "payload_too_large")
    assert error["details"]["max_bytes"] == IMAGE_CAP and error["details"]["field"] == "image"
    as_json = capped.client.post(
        "/v1/analyze",
        json={"plugin": "testing", "tool": "size", "inputs": {"image": b64(data)}},
        headers=capped.alice.headers,
    )
    assert as_json.status_code == 413


def test_an_image_over_the_pixel_cap_is_413_before_decoding(capped: Secure) -> None:
    data = png(1200, 1000)  # 1.2 M pixels, a few KB: over the 1 M pixel cap
    error = assert_envelope(upload(capped, data), 413, "payload_too_large")
    assert error["details"]["max_pixels"] == PIXEL_CAP
    assert (error["details"]["width"], error["details"]["height"]) == (1200, 1000)
    assert upload(capped, png(1000, 1000)).status_code == 200  # exactly at the cap


@pytest.mark.parametrize("dims", [(100_000, 100_000), (2**31 - 1, 2**31 - 1), (1, 10**9)])
def test_a_lying_header_is_refused_from_the_header(capped: Secure, dims: tuple[int, int]) -> None:
    assert_envelope(upload(capped, png_header_only(*dims)), 413, "payload_too_large")


@pytest.mark.parametrize("case", [h for h in HOSTILE], ids=[h.name for h in HOSTILE])
def test_hostile_files_get_their_documented_answer(shared: Secure, case: Hostile) -> None:
    """The hostile-file table, in process (the real-server run adds memory and job checks)."""
    data = case.build()
    if case.kind == "json":
        response = shared.client.post(
            "/v1/jobs",
            content=data,
            headers={**shared.alice.headers, "content-type": "application/json"},
        )
    else:
        response = upload(shared, data)
    if case.code is None:
        assert response.status_code == case.status, response.text
    else:
        assert_envelope(response, case.status, case.code)
        assert_no_leak(response.text)


def test_a_polyglot_is_stored_and_served_as_the_image_it_starts_with(shared: Secure) -> None:
    from tests.security.hostile import polyglot_png_zip_html

    data = polyglot_png_zip_html()
    assert upload(shared, data, filename="page.html", media_type="text/html").json()["result"] == {
        "width": 24,
        "height": 16,
    }
    import hashlib

    blob = shared.client.get(
        f"/v1/blobs/{hashlib.sha256(data).hexdigest()}", headers=shared.alice.headers
    )
    assert blob.status_code == 200
    assert blob.headers["content-type"] == "image/png"


def test_media_type_comes_from_the_bytes_not_the_label(shared: Secure) -> None:
    # PNG bytes labelled JPEG: handled as PNG.
    labelled = upload(shared, png(12, 9), filename="x.jpg", media_type="image/jpeg")
    assert labelled.status_code == 200 and labelled.json()["result"] == {"width": 12, "height": 9}
    # Non-image bytes labelled PNG, in every way of sending them: 415.
    html = b"<svg xmlns='http://www.w3.org/2000/svg' onload='alert(1)'/>"
    assert_envelope(upload(shared, html), 415, "unsupported_media_type")
    as_json = shared.client.post(
        "/v1/analyze",
        json={"plugin": "testing", "tool": "size", "inputs": {"image": b64(html)}},
        headers=shared.alice.headers,
    )
    assert_envelope(as_json, 415, "unsupported_media_type")
    legacy = shared.client.post(
        "/v1/analyze-execution",
        json={
            "plugin": "testing",
            "tool_name": "size",
            "image": b64(html),
            "mime_type": "image/png",
        },
        headers=shared.alice.headers,
    )
    assert legacy.status_code == 400 and legacy.json()["detail"]["code"] == "unsupported_media_type"


# -- JSON shape caps -----------------------------------------------------------------------------


def nested(depth: int) -> Any:
    value: Any = "leaf"
    for _ in range(depth):
        value = [value]
    return value


def count(secure: Secure, data: Any) -> Any:
    return secure.client.post(
        "/v1/jobs",
        json={"plugin": "shapes", "tool": "count", "inputs": {"data": data}},
        headers=secure.alice.headers,
    )


def test_inputs_nested_deeper_than_the_cap_are_422(capped: Secure) -> None:
    # data (1) -> "x" (2) -> lists: depth 8 is the deepest allowed
    assert count(capped, {"x": nested(6)}).status_code == 202
    error = assert_envelope(count(capped, {"x": nested(7)}), 422, "validation_error")
    assert error["details"]["max_depth"] == 8
    deep_dict: Any = {}
    for _ in range(50):
        deep_dict = {"k": deep_dict}
    assert_envelope(count(capped, deep_dict), 422, "validation_error")


def test_strings_longer_than_the_cap_are_422(capped: Secure) -> None:
    assert count(capped, {"x": "a" * 1000}).status_code == 202
    error = assert_envelope(count(capped, {"x": "a" * 1001}), 422, "validation_error")
    assert error["details"]["max_length"] == 1000
    assert_envelope(count(capped, {"x": ["ok", {"y": "b" * 5000}]}), 422, "validation_error")
    echo = capped.client.post(
        "/v1/jobs",
        json={"plugin": "testing", "tool": "echo", "inputs": {"text": "c" * 1001}},
        headers=capped.alice.headers,
    )
    assert_envelope(echo, 422, "validation_error")


def test_object_keys_longer_than_the_cap_are_422(capped: Secure) -> None:
    assert_envelope(count(capped, {"k" * 5000: 1}), 422, "validation_error")


def test_multipart_inputs_get_the_same_shape_caps(capped: Secure) -> None:
    response = capped.client.post(
        "/v1/jobs",
        data={"plugin": "shapes", "tool": "count", "inputs": json.dumps({"data": nested(20)})},
        headers=capped.alice.headers,
    )
    assert_envelope(response, 422, "validation_error")


# -- no input names a server path or URL ---------------------------------------------------------

PATHLIKE = [
    "/etc/passwd",
    "file:///etc/passwd",
    "../../lensforge.db",
    "http://127.0.0.1:1/image.png",
    "https://example.com/x.png",
    "lensforge://blobs/../../lensforge.db",
    "\\\\server\\share\\x.png",
]


@pytest.mark.parametrize("value", PATHLIKE)
def test_an_image_input_cannot_name_a_path_or_url(shared: Secure, value: str) -> None:
    variants: list[Any] = [
        value,
        {"blob": value},
        {"blob": f"sha256:{value}"},
        {"path": value},
        {"uri": value},
        {"url": value},
        {"blob": "sha256:" + "0" * 64, "path": value},
    ]
    for image in variants:
        response = shared.client.post(
            "/v1/analyze",
            json={"plugin": "testing", "tool": "size", "inputs": {"image": image}},
            headers=shared.alice.headers,
        )
        assert response.status_code in (404, 415, 422), (image, response.text)
        assert_no_leak(response.text)
    legacy = shared.client.post(
        "/v1/analyze-execution",
        json={"plugin": "testing", "tool_name": "size", "image": value},
        headers=shared.alice.headers,
    )
    assert legacy.status_code == 400


def test_multipart_fields_cannot_name_a_path_either(shared: Secure, tmp_path: Path) -> None:
    secret_file = tmp_path / "secret.png"
    secret_file.write_bytes(png(30, 30))
    response = shared.client.post(
        "/v1/analyze",
        data={"plugin": "testing", "tool": "size", "image": str(secret_file)},
        headers=shared.alice.headers,
    )
    assert response.status_code == 422, response.text  # a string field is base64, never a path


@pytest.mark.parametrize(
    "digest",
    ["..%2F..%2Flensforge.db", "sha256:..%2F..%2Fx", "%2Fetc%2Fpasswd", "0" * 63 + "g", "a" * 65],
)
def test_the_blob_route_takes_only_a_digest(shared: Secure, digest: str) -> None:
    response = shared.client.get(f"/v1/blobs/{digest}", headers=shared.admin.headers)
    assert response.status_code in (404, 422), response.text
    assert_no_leak(response.text)


def test_tool_manifests_declare_no_path_or_url_inputs(shared: Secure) -> None:
    plugins = shared.client.get("/v1/plugins", headers=shared.alice.headers).json()["plugins"]
    text = json.dumps(plugins)
    assert '"format": "uri"' not in text and '"format": "path"' not in text


# -- rate limiting -------------------------------------------------------------------------------


def test_rate_limit_is_per_key_with_retry_after(tmp_path: Path) -> None:
    # Half a token a second: slow enough that nothing refills between the steps below.
    settings: Settings = make_settings(tmp_path, rate_limit_per_s=0.5, rate_limit_burst=3)
    for secure in open_secure(settings):
        client, alice = secure.client, secure.alice
        statuses = [client.get("/v1/jobs", headers=alice.headers).status_code for _ in range(6)]
        assert statuses[:3] == [200, 200, 200] and statuses[-1] == 429
        limited = client.get("/v1/jobs", headers=alice.headers)
        error = assert_envelope(limited, 429, "rate_limited")
        assert error["retryable"] is True
        retry_after = int(limited.headers["retry-after"])
        assert 1 <= retry_after <= 3  # ceil-ish of (1 - tokens) / rate
        # Another key has its own bucket; unauthenticated health checks have none.
        assert client.get("/v1/jobs", headers=secure.bob.headers).status_code == 200
        assert all(client.get("/healthz").status_code == 200 for _ in range(10))
        # MCP spends from the same bucket.
        mcp = client.post("/mcp", json={}, headers=alice.headers)
        assert mcp.status_code == 429 and "retry-after" in mcp.headers
