"""ocr.read with engine 'rapidocr' and 'auto': clean text, and text on photographs."""

from __future__ import annotations

import random

import pytest

from lensforge.builtin.ocr import OcrPlugin
from lensforge.builtin.rapid import rapidocr_installed
from tests.plugins.hard_images import photo_backgrounds, text_lines, text_on_photo
from tests.plugins.support import as_image, box_tuple, character_error_rate, encode, render_text

pytestmark = pytest.mark.skipif(not rapidocr_installed(), reason="rapidocr not installed")

PARAGRAPH = [
    "LensForge reads printed text with two engines.",
    "Pack my box with five dozen liquor jugs, then",
    "judge the quick brown fox: 42 jumps over 7 dogs!",
]


def test_a_clean_paragraph(ocr: OcrPlugin) -> None:
    image, drawn = render_text(PARAGRAPH, 24)
    result = ocr.read(as_image(image), engine="rapidocr")
    assert (result.engine, result.psm, result.preprocessing) == ("rapidocr", 0, None)
    assert character_error_rate(" ".join(PARAGRAPH), result.text) <= 0.02, result.text
    assert len(result.lines) == 3 and 0.8 <= result.confidence <= 1
    # every recognised word lies on a drawn word
    for word in result.words:
        x, y, w, h = box_tuple(word.box)
        cx, cy = x + w / 2, y + h / 2
        assert any(
            bx - 3 <= cx <= bx + bw + 3 and by - 3 <= cy <= by + bh + 3
            for _, (bx, by, bw, bh) in drawn
        ), word


def test_text_on_photos_reads_better_than_tesseract(ocr: OcrPlugin) -> None:
    rng = random.Random(21)
    backgrounds = photo_backgrounds()
    raw_errors, rapid_errors, auto_errors = [], [], []
    for k in range(3):
        lines = text_lines(rng, 2, 4)
        image = as_image(text_on_photo(lines, 30, backgrounds[k], rng))
        truth = " ".join(lines)
        raw = ocr.read(image, engine="tesseract", preprocess=False)
        rapid = ocr.read(image, engine="rapidocr")
        auto = ocr.read(image)
        raw_errors.append(character_error_rate(truth, raw.text))
        rapid_errors.append(character_error_rate(truth, rapid.text))
        auto_errors.append(character_error_rate(truth, auto.text))
    assert sum(rapid_errors) < 0.5 * sum(raw_errors), (rapid_errors, raw_errors)
    assert sum(auto_errors) < 0.5 * sum(raw_errors), (auto_errors, raw_errors)


def test_auto_keeps_tesseract_on_a_clean_page(ocr: OcrPlugin) -> None:
    image, _ = render_text(PARAGRAPH, 24)
    result = ocr.read(as_image(image))
    assert result.engine == "tesseract" and result.preprocessing is not None


def test_through_the_api(api) -> None:
    image, _ = render_text(PARAGRAPH[:1], 26)
    result = api.call("ocr", "read", image=encode(image), engine="rapidocr")
    assert result["engine"] == "rapidocr"
    assert character_error_rate(PARAGRAPH[0], result["text"]) <= 0.03
    status, error = api.error("ocr", "read", image=encode(image), engine="easyocr")
    assert (status, error["code"]) == (422, "validation_error")
