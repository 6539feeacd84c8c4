"""The model registry: add/list/remove through the API object, the CLI and GET /v1/models;
malformed and wrong-layout models refused at add time."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from lensforge.api import create_app
from lensforge.api.routes.models import router
from lensforge.errors import Conflict, NotFound, ValidationError
from lensforge.models.commands import app as models_app
from lensforge.models.registry import ModelRegistry
from lensforge.settings import Settings
from tests.plugins.onnx_graphs import constant_model, write_labels, yolo_rows

LABELS = ["cat", "dog", "bird"]


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    candidates = yolo_rows([(320, 320, 100, 50, [0.9, 0.1, 0.0])])
    return {
        "yolo": constant_model(tmp_path / "yolo.onnx", [candidates]),
        "labels": write_labels(tmp_path / "labels.txt", LABELS),
        "two_labels": write_labels(tmp_path / "two.txt", LABELS[:2]),
        "detr": constant_model(
            tmp_path / "detr.onnx",
            [np.zeros((1, 10, 4)), np.zeros((1, 10, 3))],
            input_hw=("height", "width"),
        ),
        "garbage": tmp_path / "garbage.onnx",
    }


def test_round_trip(tmp_path: Path, files: dict[str, Path]) -> None:
    registry = ModelRegistry(tmp_path / "data")
    info = registry.add("pets", files["yolo"], "yolo", LABELS, "Apache-2.0")
    assert (info.format, info.layout, info.resize) == ("yolo", "channels_first", "letterbox")
    assert (info.input_width, info.input_height, info.labels) == (640, 640, LABELS)
    stored = registry.file(info)
    assert stored.read_bytes() == files["yolo"].read_bytes()
    assert stored.name == f"{info.sha256}.onnx"
    # the same file under a second name is stored once
    registry.add("pets-copy", files["yolo"], "yolo", LABELS)
    assert sorted(m.name for m in registry.models()) == ["pets", "pets-copy"]
    assert len(list(stored.parent.iterdir())) == 1
    with pytest.raises(Conflict):
        registry.add("pets", files["yolo"], "yolo", LABELS)
    # a DETR graph with dynamic input: 640x640 assumed, two outputs read as boxes + logits
    detr = registry.add("detr", files["detr"], "rtdetr", LABELS)
    assert (detr.layout, detr.resize, detr.input_width) == ("boxes_logits", "stretch", 640)
    # a fresh registry object (another process) sees the same index
    assert ModelRegistry(tmp_path / "data").get("pets") == info
    registry.remove("pets")
    assert stored.exists()  # still used by pets-copy
    registry.remove("pets-copy")
    assert not stored.exists()
    with pytest.raises(NotFound):
        registry.get("pets")


def test_bad_models_are_refused_at_add_time(tmp_path: Path, files: dict[str, Path]) -> None:
    registry = ModelRegistry(tmp_path / "data")
    files["garbage"].write_bytes(b"not an onnx file at all")
    with pytest.raises(ValidationError, match="ONNX Runtime cannot load it"):
        registry.add("bad", files["garbage"], "yolo", LABELS)
    with pytest.raises(ValidationError, match=r"for 2 labels it needs one output \[1, 6, N\]"):
        registry.add("bad", files["yolo"], "yolo", LABELS[:2])
    with pytest.raises(ValidationError, match="cannot be used as 'rtdetr'"):
        registry.add("bad", files["yolo"], "rtdetr", LABELS)
    three = constant_model(tmp_path / "three.onnx", [np.zeros((1, 5, 4))] * 3)
    with pytest.raises(ValidationError, match="its outputs are"):
        registry.add("bad", three, "rtdetr", LABELS)
    grey = constant_model(tmp_path / "grey.onnx", [np.zeros((1, 7, 8))])
    with pytest.raises(ValidationError):  # the input is [1, 3, ...]: fine; labels mismatch
        registry.add("bad", grey, "yolo", ["one", "two"])
    with pytest.raises(ValidationError, match="not valid"):
        registry.add("Bad Name", files["yolo"], "yolo", LABELS)
    assert registry.models() == []
    assert not (registry.root / "sha256").exists() or not any((registry.root / "sha256").iterdir())


def test_the_cli(tmp_path: Path, files: dict[str, Path]) -> None:
    runner = CliRunner()
    data = ["--data-dir", str(tmp_path / "data")]
    added = runner.invoke(
        models_app,
        [
            "add",
            "pets",
            str(files["yolo"]),
            "--format",
            "yolo",
            "--labels",
            str(files["labels"]),
            "--license",
            "MIT",
            *data,
        ],
    )
    assert added.exit_code == 0, added.output
    assert "pets\tyolo\t640x640\t3 labels\tMIT" in added.output
    listed = runner.invoke(models_app, ["list", "--json", *data])
    (entry,) = json.loads(listed.stdout)["models"]
    assert (entry["name"], entry["license"], entry["labels"]) == ("pets", "MIT", LABELS)

    refused = runner.invoke(
        models_app,
        [
            "add",
            "other",
            str(files["yolo"]),
            "--format",
            "yolo",
            "--labels",
            str(files["two_labels"]),
            "--json",
            *data,
        ],
    )
    assert refused.exit_code == 2
    assert json.loads(refused.stdout)["error"]["code"] == "validation_error"

    removed = runner.invoke(models_app, ["remove", "pets", *data])
    assert removed.exit_code == 0 and "Removed pets" in removed.output
    missing = runner.invoke(models_app, ["remove", "pets", *data])
    assert missing.exit_code == 2 and "No model named 'pets'" in missing.output


def test_get_v1_models(tmp_path: Path, files: dict[str, Path]) -> None:
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'lensforge.db'}",
        data_dir=tmp_path / "data",
        executor="inline",
    )
    ModelRegistry(settings.data_dir).add("pets", files["yolo"], "yolo", LABELS, "MIT")
    app = create_app(settings)
    app.include_router(router)
    with TestClient(app) as client:
        listing = client.get("/v1/models")
        assert listing.status_code == 200
        assert [m["name"] for m in listing.json()["models"]] == ["pets"]
        one = client.get("/v1/models/pets").json()
        assert (one["format"], one["labels"], one["license"]) == ("yolo", LABELS, "MIT")
        missing = client.get("/v1/models/nope")
        assert missing.status_code == 404
        assert missing.json()["error"]["code"] == "not_found"
