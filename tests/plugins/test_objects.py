"""objects.detect: letterboxing, NMS, thresholds, class filters and label mapping, checked
exactly with ONNX graphs whose outputs are known tensors in each supported layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image as PILImage

from lensforge.api import create_app
from lensforge.builtin.objects import ObjectsPlugin, fit
from lensforge.errors import ValidationError
from lensforge.models.registry import ModelRegistry
from lensforge.settings import Settings
from tests.plugins.onnx_graphs import constant_model, yolo_rows
from tests.plugins.support import as_image, encode

LABELS = ["cat", "dog", "bird"]
# A 320x160 image letterboxed into 640x640: scale 2, 160 px of grey above and below.
IMAGE = PILImage.new("RGB", (320, 160), (40, 90, 200))
CANDIDATES = [  # cx, cy, w, h (input px), scores for cat, dog, bird
    (320, 320, 100, 50, [0.9, 0.1, 0.0]),  # cat -> (135, 67.5, 50, 25)
    (325, 322, 100, 50, [0.8, 0.0, 0.0]),  # cat, overlaps the first (IoU 0.84): suppressed
    (330, 318, 100, 50, [0.0, 0.7, 0.0]),  # dog, same place: another label, kept
    (100, 200, 40, 40, [0.0, 0.0, 0.2]),  # bird below the default threshold -> (40, 10, 20, 20)
    (600, 600, 80, 80, [0.95, 0.0, 0.0]),  # inside the bottom padding: no pixels of the image
]
CAT = ("cat", 0.9, (135.0, 67.5, 50.0, 25.0))
DOG = ("dog", 0.7, (140.0, 66.5, 50.0, 25.0))
BIRD = ("bird", 0.2, (40.0, 10.0, 20.0, 20.0))


@pytest.fixture
def registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ModelRegistry:
    monkeypatch.setenv("LENSFORGE_DATA_DIR", str(tmp_path / "data"))
    return ModelRegistry(tmp_path / "data")


@pytest.fixture(scope="module")
def objects() -> ObjectsPlugin:
    plugin = ObjectsPlugin()
    plugin.setup()
    return plugin


def found(result) -> list[tuple[str, float, tuple[float, float, float, float]]]:
    return [
        (d.label, pytest.approx(d.score, abs=1e-4), (d.box.x, d.box.y, d.box.width, d.box.height))
        for d in result.detections
    ]


@pytest.mark.parametrize("layout", ["channels_first", "channels_last"])
def test_yolo_letterbox_nms_threshold_and_labels(
    objects: ObjectsPlugin, registry: ModelRegistry, tmp_path: Path, layout: str
) -> None:
    rows = yolo_rows(CANDIDATES)
    if layout == "channels_last":
        rows = rows.transpose(0, 2, 1)
    registry.add("pets", constant_model(tmp_path / "m.onnx", [rows]), "yolo", LABELS)
    assert registry.get("pets").layout == layout

    result = objects.detect(as_image(IMAGE), model="pets")
    assert result.model == "pets" and result.count == 2
    assert found(result) == [CAT, DOG]
    assert found(objects.detect(as_image(IMAGE), model="pets", threshold=0.1)) == [CAT, DOG, BIRD]
    loose = objects.detect(as_image(IMAGE), model="pets", iou=0.9)
    assert [d.label for d in loose.detections] == ["cat", "cat", "dog"]
    assert found(objects.detect(as_image(IMAGE), model="pets", classes=["dog"])) == [DOG]
    assert found(objects.detect(as_image(IMAGE), model="pets", max_detections=1)) == [CAT]


def test_letterboxing_itself() -> None:
    rgb = np.asarray(IMAGE)
    fitted = fit(rgb, 640, 640, "letterbox")
    assert fitted.tensor.shape == (1, 3, 640, 640) and fitted.tensor.dtype == np.float32
    assert (fitted.scale_x, fitted.scale_y, fitted.pad_x, fitted.pad_y) == (2, 2, 0, 160)
    assert np.allclose(fitted.tensor[0, :, 0, 0], 114 / 255)  # grey padding above
    assert np.allclose(fitted.tensor[0, :, 320, 320], np.array([40, 90, 200]) / 255)
    stretched = fit(rgb, 640, 640, "stretch")
    assert (stretched.scale_x, stretched.scale_y, stretched.pad_y) == (2, 4, 0)
    assert np.allclose(stretched.tensor[0, :, 0, 0], np.array([40, 90, 200]) / 255)
    imagenet = fit(rgb, 64, 64, "stretch", "imagenet")
    expected = (np.array([40, 90, 200]) / 255 - [0.485, 0.456, 0.406]) / [0.229, 0.224, 0.225]
    assert np.allclose(imagenet.tensor[0, :, 5, 5], expected, atol=1e-5)


def test_rtdetr_probabilities_stretched(
    objects: ObjectsPlugin, registry: ModelRegistry, tmp_path: Path
) -> None:
    rows = np.array(
        [[[0.5, 0.5, 0.25, 0.25, 0.1, 0.85, 0.0], [0.1, 0.1, 0.05, 0.05, 0.1, 0.1, 0.1]]]
    )
    registry.add("detr", constant_model(tmp_path / "d.onnx", [rows]), "rtdetr", LABELS)
    result = objects.detect(as_image(IMAGE), model="detr")
    # stretched 320x160 -> 640x640: x / 2, y / 4
    assert found(result) == [("dog", 0.85, (120.0, 60.0, 80.0, 40.0))]


def test_rfdetr_boxes_and_logits(
    objects: ObjectsPlugin, registry: ModelRegistry, tmp_path: Path
) -> None:
    boxes = np.array([[[0.5, 0.5, 0.25, 0.25], [0.2, 0.2, 0.1, 0.1]]])
    logits = np.array([[[-5.0, -5.0, 2.0], [-6.0, -6.0, -6.0]]])
    path = constant_model(tmp_path / "rf.onnx", [boxes, logits])
    assert registry.add("rf", path, "rtdetr", LABELS).normalize == "imagenet"
    result = objects.detect(as_image(IMAGE), model="rf")
    sigmoid = 1 / (1 + np.exp(-2.0))
    assert found(result) == [("bird", round(sigmoid, 4), (120.0, 60.0, 80.0, 40.0))]


def test_unknown_models_and_classes_are_input_errors(
    objects: ObjectsPlugin, registry: ModelRegistry, tmp_path: Path
) -> None:
    registry.add(
        "pets", constant_model(tmp_path / "m.onnx", [yolo_rows(CANDIDATES)]), "yolo", LABELS
    )
    with pytest.raises(ValidationError) as caught:
        objects.detect(as_image(IMAGE), model="nope")
    assert caught.value.details["registered"] == ["pets"]
    with pytest.raises(ValidationError) as caught:
        objects.detect(as_image(IMAGE), model="pets", classes=["dog", "unicorn"])
    assert caught.value.details["unknown"] == ["unicorn"]


def test_through_the_api_in_a_worker_process(registry: ModelRegistry, tmp_path: Path) -> None:
    registry.add(
        "pets", constant_model(tmp_path / "m.onnx", [yolo_rows(CANDIDATES)]), "yolo", LABELS
    )
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'lensforge.db'}",
        data_dir=tmp_path / "data",
        workers=1,
    )
    with TestClient(create_app(settings, extra_plugins=[ObjectsPlugin])) as client:
        body = {"plugin": "objects", "tool": "detect", "inputs": {}}
        from tests.support import b64

        body["inputs"] = {"image": b64(encode(IMAGE)), "model": "pets"}
        response = client.post("/v1/analyze", json=body)
        assert response.status_code == 200, response.text
        result = response.json()["result"]
        assert [(d["label"], d["box"]["x"]) for d in result["detections"]] == [
            ("cat", 135.0),
            ("dog", 140.0),
        ]
        body["inputs"]["model"] = "missing"
        response = client.post("/v1/analyze", json=body)
        assert response.status_code == 422
        assert response.json()["error"]["details"]["registered"] == ["pets"]
