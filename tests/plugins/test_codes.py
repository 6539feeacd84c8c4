"""codes.decode against QR codes (segno) and barcodes (python-barcode) made here."""

from __future__ import annotations

import pytest
from PIL import Image as PILImage

from lensforge.builtin.codes import CodesPlugin
from tests.plugins.support import as_image, encode, qr


def barcode(kind: str, value: str) -> tuple[PILImage.Image, str]:
    """The barcode image and the full text a reader must return (with check digit)."""
    import barcode as python_barcode
    from barcode.writer import ImageWriter

    symbol = python_barcode.get(kind, value, writer=ImageWriter())
    options = {"module_width": 0.3, "module_height": 12, "quiet_zone": 6, "write_text": False}
    return symbol.render(options).convert("RGB"), symbol.get_fullcode()


def place(
    *parts: PILImage.Image, size: tuple[int, int] = (900, 500)
) -> tuple[PILImage.Image, list[tuple[int, int, int, int]]]:
    """Paste images side by side on white; their (x, y, width, height) on the canvas."""
    canvas = PILImage.new("RGB", size, "white")
    x, where = 30, []
    for part in parts:
        canvas.paste(part, (x, 30))
        where.append((x, 30, part.width, part.height))
        x += part.width + 40
    return canvas, where


def centre_inside(code, region: tuple[int, int, int, int]) -> bool:
    points = code.polygon.points
    cx = sum(p.x for p in points) / len(points)
    cy = sum(p.y for p in points) / len(points)
    x, y, w, h = region
    return x <= cx <= x + w and y <= cy <= y + h


PAYLOADS = [
    "https://example.org/lensforge?q=1&lang=en",
    "0123456789012345",
    "Grüße, 東京! ✓",
    "WIFI:S:lensforge;T:WPA;P:correct horse battery staple;;",
    "x" * 300,
]


@pytest.mark.parametrize("payload", PAYLOADS)
@pytest.mark.parametrize(("scale", "rotation"), [(3, 0), (5, 15), (8, 90), (4, 200)])
def test_qr_codes_decode_exactly(
    codes: CodesPlugin, payload: str, scale: int, rotation: float
) -> None:
    canvas, (region,) = place(qr(payload, scale, rotation), size=(1000, 1000))
    result = codes.decode(as_image(canvas))
    assert [(c.text, c.format) for c in result.codes] == [(payload, "QRCode")]
    (code,) = result.codes
    assert len(code.polygon.points) == 4
    assert centre_inside(code, region)


def test_two_qr_codes_in_one_image(codes: CodesPlugin) -> None:
    first, second = "first: https://example.org/a", "second code, rotated"
    canvas, regions = place(qr(first, 5), qr(second, 4, 30))
    result = codes.decode(as_image(canvas, "JPEG", quality=90))
    assert sorted(c.text for c in result.codes) == sorted([first, second])
    assert result.count == 2
    for code in result.codes:
        assert centre_inside(code, regions[0 if code.text == first else 1])


@pytest.mark.parametrize(
    ("kind", "value", "format"),
    [
        ("ean13", "590123412345", "EAN13"),
        ("ean13", "400638133393", "EAN13"),
        ("code128", "LensForge-2026/β?", "Code128"),
        ("code128", "0042", "Code128"),
        ("ean8", "9638507", "EAN8"),
    ],
)
def test_barcodes_decode_exactly(codes: CodesPlugin, kind: str, value: str, format: str) -> None:
    if kind == "code128" and not value.isascii():
        value = value.encode("ascii", "replace").decode()  # Code 128 carries ASCII only
    image, expected = barcode(kind, value)
    canvas, (region,) = place(image)
    result = codes.decode(as_image(canvas))
    assert [(c.text, c.format) for c in result.codes] == [(expected, format)]
    assert centre_inside(result.codes[0], region)


def test_code39_and_upca(codes: CodesPlugin) -> None:
    import barcode as python_barcode
    from barcode.writer import ImageWriter

    code39 = python_barcode.Code39("LENSFORGE 39", writer=ImageWriter(), add_checksum=False)
    image = code39.render({"module_width": 0.3, "write_text": False}).convert("RGB")
    result = codes.decode(as_image(place(image)[0]))
    assert [(c.text, c.format) for c in result.codes] == [("LENSFORGE 39", "Code39")]

    upc, digits = barcode("upca", "04210000526")
    assert digits == "042100005264"
    canvas = as_image(place(upc)[0])
    assert [(c.text, c.format) for c in codes.decode(canvas).codes] == [("0" + digits, "EAN13")]
    only_upc = codes.decode(canvas, formats=["UPCA"])
    assert [(c.text, c.format) for c in only_upc.codes] == [(digits, "UPCA")]


def test_mixed_codes_and_format_filter(codes: CodesPlugin) -> None:
    ean, ean_text = barcode("ean13", "590123412345")
    canvas, _ = place(qr("mixed", 5), ean)
    both = codes.decode(as_image(canvas))
    assert sorted((c.format, c.text) for c in both.codes) == [
        ("EAN13", ean_text),
        ("QRCode", "mixed"),
    ]
    assert [c.format for c in codes.decode(as_image(canvas), formats=["EAN13"]).codes] == ["EAN13"]
    assert [c.text for c in codes.decode(as_image(canvas), formats=["QRCode"]).codes] == ["mixed"]


def test_nothing_in_a_blank_or_text_image(codes: CodesPlugin) -> None:
    from tests.plugins.support import render_text

    assert codes.decode(as_image(PILImage.new("RGB", (400, 300), "white"))).codes == []
    text, _ = render_text(["No codes here, only ||| text 1234567890"], 28)
    assert codes.decode(as_image(text)).codes == []


def test_through_the_api(api) -> None:
    ean, ean_text = barcode("code128", "API-128")
    canvas, _ = place(qr("through the api", 5), ean)
    result = api.call("codes", "decode", image=encode(canvas))
    assert sorted((c["format"], c["text"]) for c in result["codes"]) == [
        ("Code128", ean_text),
        ("QRCode", "through the api"),
    ]
    status, error = api.error("codes", "decode", image=encode(canvas), formats=["NotAFormat"])
    assert (status, error["code"]) == (422, "validation_error")
