"""ocr.read against text rendered with a known font, at known places."""

from __future__ import annotations

import difflib

import pytest
from PIL import Image as PILImage

from lensforge.builtin import ocr as ocr_module
from lensforge.builtin.ocr import OcrPlugin, installed_languages
from lensforge.errors import PluginUnavailable, ValidationError
from tests.plugins.support import (
    as_image,
    box_tuple,
    character_error_rate,
    encode,
    iou,
    render_text,
)

PARAGRAPH = [
    "LensForge reads printed text with Tesseract.",
    "Pack my box with five dozen liquor jugs, then",
    "judge the quick brown fox: 42 jumps over 7 dogs!",
]


@pytest.mark.parametrize("size", [14, 22, 36])
def test_reads_a_paragraph_with_word_boxes(ocr: OcrPlugin, size: int) -> None:
    image, drawn = render_text(PARAGRAPH, size)
    result = ocr.read(as_image(image))

    assert character_error_rate(" ".join(PARAGRAPH), result.text) <= 0.02, result.text
    assert [line.text for line in result.lines] == [" ".join(line.split()) for line in PARAGRAPH]
    # Pair recognised words with drawn words in reading order; each pair must overlap.
    got = [word.text for word in result.words]
    expected = [word for word, _ in drawn]
    matcher = difflib.SequenceMatcher(a=expected, b=got, autojunk=False)
    pairs = [
        (drawn[block.a + k][1], result.words[block.b + k])
        for block in matcher.get_matching_blocks()
        for k in range(block.size)
    ]
    assert len(pairs) >= 0.9 * len(drawn)
    overlaps = []
    for ink_box, word in pairs:
        x, y, w, h = box_tuple(word.box)
        cx, cy = ink_box[0] + ink_box[2] / 2, ink_box[1] + ink_box[3] / 2
        assert x <= cx <= x + w and y <= cy <= y + h, (word, ink_box)
        overlaps.append(iou(ink_box, (x, y, w, h)))
    # Tesseract sometimes stretches one box over a descender; the typical box is tight
    assert min(overlaps) >= 0.3
    assert sorted(overlaps)[len(overlaps) // 2] >= 0.8
    # and no recognised word sits where nothing was drawn
    for word in result.words:
        assert max(iou(ink, box_tuple(word.box)) for _, ink in drawn) >= 0.3, word
    assert 0.8 <= result.confidence <= 1
    assert all(0 <= word.confidence <= 1 for word in result.words)


def test_min_confidence_drops_words_everywhere(ocr: OcrPlugin) -> None:
    image, _ = render_text(PARAGRAPH, 22)
    everything = ocr.read(as_image(image))
    threshold = sorted(w.confidence for w in everything.words)[len(everything.words) // 2]
    kept = ocr.read(as_image(image), min_confidence=threshold)
    assert 0 < len(kept.words) < len(everything.words)
    assert all(word.confidence >= threshold for word in kept.words)
    assert kept.text.split() == [word.text for word in kept.words]


def test_single_line_mode_and_blank_page(ocr: OcrPlugin) -> None:
    image, _ = render_text(["Single line of text 2026"], 24)
    result = ocr.read(as_image(image), psm=7)
    assert result.text == "Single line of text 2026"
    assert result.psm == 7

    blank = ocr.read(as_image(PILImage.new("L", (300, 120), 255)))
    assert (blank.text, blank.words, blank.lines, blank.confidence) == ("", [], [], 0.0)


def test_transparent_background_reads_as_white_paper(ocr: OcrPlugin) -> None:
    image, _ = render_text(["Transparent background"], 28)
    rgba = image.convert("RGBA")
    rgba.putalpha(image.convert("L").point(lambda v: 255 - v))  # ink opaque, paper clear
    assert ocr.read(as_image(rgba)).text == "Transparent background"


@pytest.mark.parametrize("mode", ["L", "1", "P", "LA"])
def test_every_pixel_mode_reads_the_same(ocr: OcrPlugin, mode: str) -> None:
    # Tesseract gets the pixels themselves (grey or RGB bytes): each mode must arrive intact
    image, _ = render_text(["Pixel modes 2026"], 28)
    assert ocr.read(as_image(image.convert(mode))).text == "Pixel modes 2026"


@pytest.mark.parametrize(
    ("fmt", "dpi"),
    [("PNG", (300, 300)), ("PNG", (1, 1)), ("PNG", (100000, 100000)), ("TIFF", (300, 300))],
)
def test_a_declared_resolution_is_passed_on_or_ignored_when_absurd(
    ocr: OcrPlugin, fmt: str, dpi: tuple[int, int]
) -> None:
    image, _ = render_text(["Three hundred dpi scan"], 28)
    decoded = as_image(image, fmt, dpi=dpi)  # TIFF's resolution comes as an IFDRational
    assert decoded.pil.info["dpi"][0] == pytest.approx(dpi[0], rel=0.01)  # Pillow kept it
    assert ocr.read(decoded).text == "Three hundred dpi scan"


def test_languages_are_checked_and_listed(ocr: OcrPlugin) -> None:
    assert "eng" in installed_languages()
    image, _ = render_text(["abc"], 20)
    with pytest.raises(ValidationError) as caught:
        ocr.read(as_image(image), lang="eng+zzz")
    assert caught.value.details["installed"] == installed_languages()


def test_through_the_api(api, plugin_client) -> None:
    manifest = plugin_client.get("/v1/plugins/ocr").json()
    (read,) = manifest["tools"]
    assert "Installed languages: eng" in read["description"]

    image, _ = render_text(PARAGRAPH[:1], 24)
    result = api.call("ocr", "read", image=encode(image), lang="eng", psm=6)
    assert result["text"] == PARAGRAPH[0]
    status, error = api.error("ocr", "read", image=encode(image), lang="xx")
    assert (status, error["code"]) == (422, "validation_error")
    assert "eng" in error["details"]["installed"]


def test_missing_language_data_makes_the_plugin_unavailable(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("TESSDATA_PREFIX", str(tmp_path))
    monkeypatch.setattr(ocr_module, "TESSDATA_DIRS", ())
    with pytest.raises(PluginUnavailable) as caught:
        OcrPlugin().setup()
    assert "apt-get install -y tesseract-ocr tesseract-ocr-eng" in caught.value.message
