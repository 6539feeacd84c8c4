"""ocr.read on hard pages: skewed, turned, two columns, small text; boxes in the original."""

from __future__ import annotations

import difflib
import math
import random

import pytest
from PIL import Image as PILImage

from lensforge.builtin.ocr import OcrPlugin
from tests.plugins.hard_images import render_page, shaded, skewed, text_lines, two_columns
from tests.plugins.support import as_image, box_tuple, character_error_rate, iou, render_text

PARAGRAPH = [
    "Skewed scans are read after the page is straightened:",
    "LensForge finds the angle of the lines, turns the page",
    "upright and reads each column as one block of text.",
    "Numbers survive too: 1984, 3.14 and 42 river stations.",
]


def rotated_box(
    box: tuple[float, float, float, float], size: tuple[int, int], degrees: float
) -> tuple[float, float, float, float]:
    """Where a box of a page of ``size`` lands after PIL's ``rotate(degrees, expand=True)``."""
    width, height = size
    theta = math.radians(degrees)
    cos, sin = math.cos(theta), math.sin(theta)
    new_w = abs(width * cos) + abs(height * sin)
    new_h = abs(width * sin) + abs(height * cos)
    x, y, w, h = box
    points = []
    for px, py in ((x, y), (x + w, y), (x, y + h), (x + w, y + h)):
        dx, dy = px - width / 2, py - height / 2
        points.append((new_w / 2 + dx * cos + dy * sin, new_h / 2 - dx * sin + dy * cos))
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    return min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)


def expected_turn(degrees: int) -> int:
    return (-degrees) % 360


@pytest.mark.parametrize("degrees", [3, -3, 7, -7, 12, -12, 90, 180, 270])
def test_skewed_and_turned_pages_read_well_with_boxes_in_place(
    ocr: OcrPlugin, degrees: int
) -> None:
    page, drawn = render_text(PARAGRAPH, 22)
    image = skewed(page, degrees)
    result = ocr.read(as_image(image))

    assert character_error_rate(" ".join(PARAGRAPH), result.text) <= 0.03, result.text
    assert [line.text for line in result.lines] == PARAGRAPH
    report = result.preprocessing
    assert report is not None
    if degrees % 90:
        assert (report.rotated, report.deskew_deg) == (0, pytest.approx(-degrees, abs=0.3))
    else:
        assert (report.rotated, report.deskew_deg) == (expected_turn(degrees), 0.0)

    # each recognised word sits on the same word drawn, mapped into the skewed image
    targets = [(word, rotated_box(box, page.size, degrees)) for word, box in drawn]
    matcher = difflib.SequenceMatcher(
        a=[w for w, _ in targets], b=[w.text for w in result.words], autojunk=False
    )
    pairs = [
        (targets[block.a + k][1], result.words[block.b + k])
        for block in matcher.get_matching_blocks()
        for k in range(block.size)
    ]
    assert len(pairs) >= 0.9 * len(drawn)
    overlaps = sorted(iou(target, box_tuple(word.box)) for target, word in pairs)
    assert overlaps[0] >= 0.3 and overlaps[len(overlaps) // 2] >= 0.6, overlaps[:5]
    for word in result.words:
        x, y, w, h = box_tuple(word.box)
        assert x >= 0 and y >= 0 and x + w <= image.width and y + h <= image.height


def test_raw_tesseract_loses_a_skewed_page_that_read_keeps(ocr: OcrPlugin) -> None:
    page, _ = render_text(PARAGRAPH, 22)
    image = as_image(skewed(page, 7))
    raw = ocr.read(image, preprocess=False)
    assert (raw.preprocessing, raw.psm) == (None, 3)
    robust = ocr.read(image)
    truth = " ".join(PARAGRAPH)
    assert character_error_rate(truth, robust.text) <= 0.03
    assert character_error_rate(truth, raw.text) > 5 * character_error_rate(truth, robust.text)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_small_text_is_upscaled_and_read(ocr: OcrPlugin, seed: int) -> None:
    lines = text_lines(random.Random(seed), 8, 9)
    page = render_page(lines, 14)
    page = page.resize((page.width, page.height), PILImage.Resampling.BILINEAR)
    result = ocr.read(as_image(page, "JPEG", quality=80))
    assert character_error_rate(" ".join(lines), result.text) <= 0.05, result.text
    assert result.preprocessing is not None and result.preprocessing.scale > 1.5
    # boxes come back in the caller's (small) image
    assert all(box_tuple(w.box)[0] + box_tuple(w.box)[2] <= page.width for w in result.words)


@pytest.mark.parametrize(("strength", "degrees"), [(0.75, 0), (0.75, 5), (0.8, -3)])
def test_uneven_lighting_is_flattened(ocr: OcrPlugin, strength: float, degrees: int) -> None:
    lines = text_lines(random.Random(strength), 6, 7)
    image = as_image(shaded(skewed(render_page(lines, 20), degrees), strength))
    result = ocr.read(image, engine="tesseract")
    truth = " ".join(lines)
    assert result.preprocessing is not None and result.preprocessing.flattened
    assert result.preprocessing.deskew_deg == pytest.approx(-degrees, abs=0.3)
    assert character_error_rate(truth, result.text) <= 0.03, result.text
    raw = ocr.read(image, engine="tesseract", preprocess=False)
    assert character_error_rate(truth, raw.text) > 0.1
    clean = ocr.read(as_image(render_page(lines, 20)), engine="tesseract")
    assert clean.preprocessing is not None and not clean.preprocessing.flattened


def test_two_column_pages_are_read_column_by_column(ocr: OcrPlugin) -> None:
    rng = random.Random(7)
    left, right = text_lines(rng, 6, 5), text_lines(rng, 6, 5)
    page, (right_x, _, _, _) = two_columns(left, right, 20)
    result = ocr.read(as_image(page))
    assert result.preprocessing is not None and result.preprocessing.columns == 2
    assert character_error_rate(" ".join(left + right), result.text) <= 0.03, result.text
    assert [line.text for line in result.lines] == left + right
    for line in result.lines[: len(left)]:
        assert box_tuple(line.box)[0] + box_tuple(line.box)[2] < right_x
    for line in result.lines[len(left) :]:
        assert box_tuple(line.box)[0] >= right_x - 2


def test_an_explicit_psm_wins_over_the_layout(ocr: OcrPlugin) -> None:
    rng = random.Random(8)
    page, _ = two_columns(text_lines(rng, 3, 4), text_lines(rng, 3, 4), 20)
    result = ocr.read(as_image(skewed(page, 5)), psm=4)
    assert result.psm == 4
    assert result.preprocessing is not None
    assert (result.preprocessing.psm, result.preprocessing.columns) == (4, 1)
    assert result.preprocessing.deskew_deg == pytest.approx(-5, abs=0.3)


def test_photos_and_blank_pages_are_left_alone(ocr: OcrPlugin, coffee) -> None:
    blank = ocr.read(as_image(PILImage.new("RGB", (400, 300), "white")))
    assert blank.text == "" and blank.preprocessing is not None
    assert (blank.preprocessing.deskew_deg, blank.preprocessing.rotated) == (0.0, 0)
    photo = ocr.read(as_image(coffee), engine="tesseract")
    assert photo.preprocessing is not None and photo.preprocessing.rotated == 0
