"""people.detect: the standing man of ``skimage.data.camera()``, nothing where no one is."""

from __future__ import annotations

import random

import numpy as np
import pytest
from PIL import Image as PILImage

from lensforge.builtin.people import PeoplePlugin
from tests.plugins.hard_images import render_page, text_lines
from tests.plugins.support import as_image, box_tuple, encode, iou

# The cameraman, head to the bottom edge (his legs run out of the frame), checked by eye.
CAMERAMAN = (0, 70, 275, 442)


def test_finds_the_standing_cameraman(people: PeoplePlugin, cameraman) -> None:
    result = people.detect(as_image(cameraman))
    assert result.model == "hog-people"
    assert result.count == 1
    (person,) = result.detections
    assert person.label == "person" and 0.2 <= person.score <= 1
    assert iou(box_tuple(person.box), CAMERAMAN) >= 0.6, person.box


def test_a_larger_copy_gives_the_scaled_box(people: PeoplePlugin, cameraman) -> None:
    big = cameraman.resize((1280, 1280))
    (person,) = people.detect(as_image(big, "JPEG")).detections
    assert iou(box_tuple(person.box), tuple(2.5 * v for v in CAMERAMAN)) >= 0.6


def test_thresholds_and_min_height_filter(people: PeoplePlugin, cameraman) -> None:
    assert people.detect(as_image(cameraman), threshold=0.9).detections == []
    assert people.detect(as_image(cameraman), min_height=600).detections == []


@pytest.mark.parametrize("kind", ["blank", "text", "noise", "grey noise"])
def test_nothing_where_no_one_is(people: PeoplePlugin, kind: str) -> None:
    rng = random.Random(kind)
    if kind == "blank":
        image = PILImage.new("RGB", (640, 480), "white")
    elif kind == "text":
        image = render_page(text_lines(rng, 10, 8), 22)
    else:
        shape = (480, 640, 3) if kind == "noise" else (480, 640)
        pixels = np.random.default_rng(7).integers(0, 256, shape, dtype=np.uint8)
        image = PILImage.fromarray(pixels).convert("RGB")
    assert people.detect(as_image(image)).detections == []


def test_tiny_images_are_searched_safely(people: PeoplePlugin) -> None:
    """OpenCV's HOG crashes the process on inputs smaller than its window: never given one."""
    for size in [(1, 1), (40, 90), (90, 40), (130, 70)]:
        assert people.detect(as_image(PILImage.new("RGB", size, "grey"))).count == 0


def test_through_the_api(api, cameraman) -> None:
    result = api.call("people", "detect", image=encode(cameraman))
    assert result["count"] == 1 and result["detections"][0]["label"] == "person"
    status, error = api.error("people", "detect", image=encode(cameraman), threshold=2)
    assert (status, error["code"]) == (422, "validation_error")
