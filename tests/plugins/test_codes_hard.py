"""codes.decode on hard images: blurred QR codes, 1.4 px bars, 1-D codes at an angle, and
no false decode on images without a code."""

from __future__ import annotations

import random
import time

import numpy as np
import pytest

from lensforge.builtin.codes import CodesPlugin
from lensforge.builtin.enhance import identity
from tests.plugins.hard_images import barcode_1d, blurred_qr, code_free
from tests.plugins.support import as_image

QR_PAYLOADS = ["https://example.org/hard?id=7", "LensForge blurred payload 2026", "q" * 90]


@pytest.mark.parametrize("sigma", [0.3, 0.5, 0.6])
@pytest.mark.parametrize("module", [3, 4, 6])
def test_blurred_qr_codes_decode_exactly(codes: CodesPlugin, module: int, sigma: float) -> None:
    payload = QR_PAYLOADS[module % len(QR_PAYLOADS)]
    result = codes.decode(as_image(blurred_qr(payload, module, sigma)))
    assert [(c.text, c.format) for c in result.codes] == [(payload, "QRCode")], result.attempts


@pytest.mark.parametrize(
    ("kind", "value", "format"),
    [("code128", "LF-2026/thin", "Code128"), ("ean13", "590123412345", "EAN13")],
)
@pytest.mark.parametrize(
    ("narrow", "angle", "sigma"),
    [(1.4, 0, 0), (1.4, 90, 0), (1.4, 35, 0.5), (1.7, -20, 0.5), (2.0, -61, 0)],
)
def test_thin_and_rotated_barcodes_decode_exactly(
    codes: CodesPlugin, kind: str, value: str, format: str, narrow: float, angle: float, sigma
) -> None:
    image, expected = barcode_1d(kind, value, narrow, angle, sigma)
    result = codes.decode(as_image(image))
    assert [(c.text, c.format) for c in result.codes] == [(expected, format)], result.attempts
    # the polygon lies on the drawn code, in the original image's coordinates
    (code,) = result.codes
    cx = sum(p.x for p in code.polygon.points) / 4
    cy = sum(p.y for p in code.polygon.points) / 4
    assert abs(cx - image.width / 2) < 0.25 * image.width
    assert abs(cy - image.height / 2) < 0.25 * image.height


def test_retries_are_reported_and_can_be_turned_off(codes: CodesPlugin) -> None:
    hard = as_image(blurred_qr(QR_PAYLOADS[0], 4, 0.6))
    retried = codes.decode(hard)
    assert retried.attempts[0] == "original" and len(retried.attempts) > 1
    assert retried.codes[0].found_in == retried.attempts[-1] != "original"
    plain = codes.decode(hard, retry_budget_s=0)
    assert (plain.codes, plain.attempts) == ([], ["original"])


def test_an_easy_code_costs_one_pass(codes: CodesPlugin) -> None:
    image, expected = barcode_1d("code128", "easy", 3.0)
    result = codes.decode(as_image(image))
    assert [c.text for c in result.codes] == [expected]
    assert result.attempts == ["original"] and result.codes[0].found_in == "original"


def test_no_false_decode_on_fifty_code_free_images(codes: CodesPlugin) -> None:
    rng = random.Random(2026)
    started = time.monotonic()
    for index in range(50):
        image = code_free(index, rng)
        assert codes.decode(as_image(image)).codes == [], index
    assert time.monotonic() - started < 60  # retries stay within their budget


def test_a_code_without_checksum_needs_a_second_reading(codes: CodesPlugin) -> None:
    image, expected = barcode_1d("code39", "LENSFORGE", 3.0)
    result = codes.decode(as_image(image))
    assert [(c.text, c.format) for c in result.codes] == [(expected.rstrip(), "Code39")]
    base = identity(as_image(image).array("L"))
    corners = [(p.x, p.y) for p in result.codes[0].polygon.points]
    assert codes._read_again(base, corners, "Code39", expected)
    assert not codes._read_again(base, corners, "Code39", "LENSFORGF")  # another text
    blank = identity(np.full_like(base.pixels, 255))
    assert not codes._read_again(blank, corners, "Code39", expected)  # nothing there


def test_ean_read_in_an_enhanced_copy_needs_a_second_reading(codes: CodesPlugin) -> None:
    original = identity(np.zeros((10, 10), np.uint8))
    enhanced = identity(np.zeros((10, 10), np.uint8), "original+upscaled")
    assert not codes._needs_second_reading("EAN13", original)
    assert codes._needs_second_reading("EAN13", enhanced)
    assert codes._needs_second_reading("Code39", original)
    assert not codes._needs_second_reading("QRCode", enhanced)
