"""Hypothesis fuzzing of the media decoder and the input validator (bounded, derandomized).

The only allowed outcomes are success or a :class:`~lensforge.errors.LensForgeError` with a
4xx status (over REST: a 2xx, or a 4xx error envelope). Anything else fails the test; a crash
found here becomes a regression test below the fuzzers.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lensforge.errors import LensForgeError
from lensforge.media import Image, MediaLimits, decode_base64, probe, sniff
from tests.security.conftest import Secure, b64, record_figure, wait_for

EXAMPLES = 300
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
# Small caps keep every accepted image cheap to decode (the caps are what is under test).
LIMITS = MediaLimits(max_bytes=256 * 1024, max_pixels=250_000)
COUNTS: dict[str, int] = {}


def count(name: str) -> None:
    COUNTS[name] = COUNTS.get(name, 0) + 1
    record_figure("fuzz_executions", dict(COUNTS))


def allowed(call: Callable[[], Any]) -> Any:
    """Run ``call``: success or a 4xx LensForgeError; anything else propagates (a failure).

    Pillow's warnings are what production sees (logged, not raised), so they are ignored
    here rather than turned into errors by the suite's ``filterwarnings = error``.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return call()
        except LensForgeError as exc:
            assert 400 <= exc.status < 500, f"{exc.code} ({exc.status}): {exc.message}"
            assert exc.message
            return exc


def seeds() -> list[bytes]:
    """One small valid file per accepted format (plus EXIF and multi-frame variants)."""
    from PIL import Image as PILImage

    base = PILImage.new("RGB", (16, 12), (200, 30, 90))
    out = []
    for fmt, extra in (
        ("PNG", {}),
        ("JPEG", {"quality": 80}),
        ("GIF", {}),
        ("BMP", {}),
        ("TIFF", {}),
        ("WEBP", {"quality": 80}),
    ):
        buffer = io.BytesIO()
        base.save(buffer, fmt, **extra)
        out.append(buffer.getvalue())
    exif = PILImage.Exif()
    exif[0x0112] = 6  # orientation: rotate
    buffer = io.BytesIO()
    base.save(buffer, "JPEG", exif=exif.tobytes())
    out.append(buffer.getvalue())
    buffer = io.BytesIO()
    base.save(buffer, "GIF", save_all=True, append_images=[base.rotate(90)] * 3)
    out.append(buffer.getvalue())
    return out


SEEDS = seeds()


@st.composite
def mutated_images(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["flip", "set", "insert", "delete", "truncate", "dup"]))
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        if kind == "flip" and data:
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "set" and data:
            data[at] = draw(st.sampled_from([0x00, 0xFF, 0x7F, 0x80]))
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
        elif kind == "delete":
            del data[at : at + draw(st.integers(1, 32))]
        elif kind == "truncate":
            del data[at:]
        elif kind == "dup":
            data[at:at] = data[at : at + draw(st.integers(1, 64))]
    return bytes(data)


# -- the media decoder ---------------------------------------------------------------------------


@FUZZ
@given(data=st.binary(max_size=2048))
def test_fuzz_sniff_probe_decode_arbitrary_bytes(data: bytes) -> None:
    count("media arbitrary bytes")
    allowed(lambda: sniff(data))
    allowed(lambda: probe(data, LIMITS))
    allowed(lambda: Image.decode(data, LIMITS))


@FUZZ
@given(data=st.sampled_from(SEEDS).flatmap(lambda s: st.binary(max_size=64).map(s[:16].__add__)))
def test_fuzz_decode_valid_magic_then_garbage(data: bytes) -> None:
    """The right magic number followed by noise: sniffing passes, decoding must fail cleanly."""
    count("media magic + garbage")
    allowed(lambda: probe(data, LIMITS))
    allowed(lambda: Image.decode(data, LIMITS))


@FUZZ
@given(data=mutated_images())
def test_fuzz_decode_mutated_images(data: bytes) -> None:
    count("media mutated PNG/JPEG/GIF/BMP/TIFF/WebP")
    probed = allowed(lambda: probe(data, LIMITS))
    image = allowed(lambda: Image.decode(data, LIMITS))
    if isinstance(image, Image):
        assert image.width * image.height <= LIMITS.max_pixels
        assert isinstance(probed, tuple)  # whatever decodes, the front door accepted too
        allowed(lambda: image.array())


@FUZZ
@given(value=st.text(max_size=200) | st.binary(max_size=200).map(b64))
def test_fuzz_base64_field(value: str) -> None:
    count("base64 decoding")
    allowed(lambda: decode_base64(value, field="image"))


# -- the input validator -------------------------------------------------------------------------

JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40)
)
JSON = st.recursive(
    JSON_SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=16,
)
FIELD_NAMES = st.sampled_from(
    ["text", "times", "image", "seconds", "word", "n", "value", "data", "message", "ctx", "x"]
)
INPUTS = st.dictionaries(FIELD_NAMES | st.text(max_size=8), JSON, max_size=5)
TOOLS = [
    ("testing", "noop"),
    ("testing", "echo"),
    ("testing", "size"),
    ("testing", "repeat"),
    ("testing", "bad_output"),
    ("testing", "sleep"),
    ("single", "only"),
    ("shapes", "count"),
]


@pytest.mark.parametrize(("plugin", "tool"), TOOLS, ids=[f"{p}.{t}" for p, t in TOOLS])
def test_fuzz_validate_inputs(shared: Secure, plugin: str, tool: str) -> None:
    spec = shared.app.state.services.registry.resolve(plugin, tool)

    @settings(FUZZ, max_examples=EXAMPLES // 3)
    @given(inputs=INPUTS)
    def run(inputs: dict[str, Any]) -> None:
        count("ToolSpec.validate_inputs")
        result = allowed(lambda: spec.validate_inputs(inputs))
        assert isinstance(result, dict | LensForgeError)

    run()


# Tools that are safe to let run: no sleeping, no huge allocations driven by an input.
SAFE = [("testing", "noop"), ("testing", "echo"), ("testing", "size"), ("testing", "bad_output")]
SAFE += [("single", "only"), ("shapes", "count")]
# Values biased towards what the tools take: text, numbers, images (valid, mutated, refs).
VALUES = (
    JSON
    | st.text(max_size=30)
    | st.integers(-(2**64), 2**64)
    | st.sampled_from(SEEDS).map(b64)
    | mutated_images().map(b64)
    | st.builds(
        lambda h: {"blob": f"sha256:{h}"}, st.text("0123456789abcdef", min_size=64, max_size=64)
    )
)


def bodies(fields: dict[tuple[str, str], list[str]]) -> st.SearchStrategy[dict[str, Any]]:
    """Bodies naming a real tool with its own field names (deep), or anything at all (wide)."""
    targeted = st.sampled_from(SAFE).flatmap(
        lambda pt: st.fixed_dictionaries(
            {
                "plugin": st.just(pt[0]),
                "tool": st.just(pt[1]),
                "inputs": st.dictionaries(st.sampled_from(fields[pt]), VALUES, max_size=4),
            },
            optional={"timeout_s": st.floats(-1, 10**4) | st.integers(-5, 10**6)},
        )
    )
    wide = st.fixed_dictionaries(
        {"plugin": st.sampled_from(["testing", "single", "shapes"]) | st.text(max_size=12)},
        optional={
            "tool": st.none() | st.text(max_size=12),
            "inputs": INPUTS,
            "extra": JSON,
        },
    )
    return targeted | targeted | wide


def test_fuzz_prepare_through_the_rest_api(shared: Secure) -> None:
    """POST /v1/jobs with generated bodies: AnalysisExecutionService.prepare decides each."""
    client, headers = shared.client, shared.alice.headers
    statuses: dict[int, int] = {}
    registry = shared.app.state.services.registry
    fields = {
        pt: [name for name in registry.resolve(*pt).input_schema.get("properties", {})] or ["x"]
        for pt in SAFE
    }

    @settings(FUZZ)
    @given(body=bodies(fields))
    def run(body: dict[str, Any]) -> None:
        count("POST /v1/jobs (prepare)")
        response = client.post("/v1/jobs", json=body, headers=headers)
        statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
        if response.status_code >= 400:
            assert response.status_code < 500, response.text
            assert set(response.json()) == {"error"}
        else:
            assert response.status_code in (200, 202), response.text

    run()

    @settings(FUZZ, max_examples=EXAMPLES // 3)
    @given(raw=st.binary(max_size=512) | JSON.map(lambda v: repr(v).encode()))
    def raw_bodies(raw: bytes) -> None:
        count("POST /v1/jobs (raw bytes)")
        response = client.post(
            "/v1/jobs", content=raw, headers={**headers, "content-type": "application/json"}
        )
        assert response.status_code < 500, response.text

    raw_bodies()
    record_figure("fuzz_rest_statuses", statuses)
    # Whatever was accepted ran (or is running) through the worker path: no internal errors.
    admin = shared.admin.headers

    def settled() -> bool:
        jobs = client.get("/v1/jobs?limit=500", headers=admin).json()["jobs"]
        return all(job["status"] not in ("PENDING", "RUNNING") for job in jobs)

    wait_for(settled, timeout_s=15, interval_s=0.1)
    failed = client.get("/v1/jobs?status=FAILED&limit=500", headers=admin).json()["jobs"]
    assert [job["error"] for job in failed if job["error"]["code"] == "internal_error"] == []


# -- regression tests for what fuzzing found -------------------------------------------------------
# (none so far: each crash found becomes a plain test here, with the minimal input inline)
