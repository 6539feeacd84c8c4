"""What every built-in plugin promises: light to load, described, limited, and UNAVAILABLE
(not fatal) when a dependency is missing."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from fastapi.testclient import TestClient

from lensforge.api import create_app
from lensforge.builtin import ocr as ocr_module
from lensforge.builtin.image import ImagePlugin
from lensforge.builtin.ocr import OcrPlugin
from lensforge.settings import Settings
from lensforge.tools import collect_tools
from tests.plugins.support import BUILTIN_PLUGINS, b64, encode, render_text

HEAVY = [
    "cv2",
    "numpy",
    "tesserocr",
    "zxingcpp",
    "imagehash",
    "scipy",
    "skimage",
    "pywt",
    "onnxruntime",
    "onnx",
    "rapidocr",
]


def test_loading_the_plugins_imports_no_heavy_library() -> None:
    """The API process loads every plugin class to read its schemas: that must stay light."""
    code = f"""
import json, sys
from lensforge.wiring import build_registry
from lensforge.settings import Settings
from lensforge.builtin.codes import CodesPlugin
from lensforge.builtin.faces import FacesPlugin
from lensforge.builtin.ocr import OcrPlugin
from lensforge.builtin.objects import ObjectsPlugin
from lensforge.builtin.people import PeoplePlugin
plugins = [OcrPlugin, CodesPlugin, FacesPlugin, PeoplePlugin, ObjectsPlugin]
registry = build_registry(Settings(), plugins)
manifests = [registry.manifest(name) for name in registry.names()]
print(json.dumps({{
    "heavy": [m for m in {HEAVY!r} if m in sys.modules],
    "plugins": registry.names(),
    # peak resident memory of this process image (ru_maxrss would count the forking parent)
    "rss_mb": int(next(line.split()[1] for line in open("/proc/self/status")
                       if line.startswith("VmHWM:"))) / 1024,
}}))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, check=True, text=True)
    facts = json.loads(out.stdout)
    assert facts["heavy"] == []
    assert {"image", "ocr", "codes", "faces", "people", "objects"} <= set(facts["plugins"])
    assert facts["rss_mb"] < 120


@pytest.mark.parametrize("plugin_cls", [ImagePlugin, *BUILTIN_PLUGINS])
def test_every_tool_is_described_typed_and_limited(plugin_cls) -> None:
    assert plugin_cls.version.count(".") == 2
    assert (plugin_cls.__doc__ or "").strip()
    for spec in collect_tools(plugin_cls).values():
        assert len(spec.description) > 20, spec.qualified_name
        # A call answers within a minute; a long job (a video) may take longer.
        assert spec.timeout_s is not None and (spec.timeout_s <= 60 or spec.long), (
            spec.qualified_name
        )
        assert spec.output_schema.get("type") == "object", spec.qualified_name
        assert spec.media_fields or spec.video_fields, spec.qualified_name


def test_missing_tesseract_data_is_unavailable_and_the_server_still_runs(
    monkeypatch, tmp_path
) -> None:
    monkeypatch.setenv("TESSDATA_PREFIX", str(tmp_path))
    monkeypatch.setattr(ocr_module, "TESSDATA_DIRS", ())
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'lensforge.db'}",
        data_dir=tmp_path / "data",
        executor="thread",  # setup() runs in this process, where the data is hidden
        workers=1,
    )
    inputs = {"image": b64(encode(render_text(["hello"], 20)[0]))}
    with TestClient(create_app(settings, extra_plugins=[OcrPlugin])) as client:
        body = {"plugin": "ocr", "tool": "read", "inputs": inputs}
        response = client.post("/v1/analyze", json=body)
        assert response.status_code == 503, response.text
        error = response.json()["error"]
        assert error["code"] == "plugin_unavailable"
        assert "apt-get install -y tesseract-ocr tesseract-ocr-eng" in error["message"]
        manifest = client.get("/v1/plugins/ocr").json()
        assert manifest["state"] == "UNAVAILABLE"
        assert "apt-get install -y tesseract-ocr tesseract-ocr-eng" in manifest["reason"]
        info = {"plugin": "image", "tool": "info", "inputs": inputs}
        assert client.post("/v1/analyze", json=info).status_code == 200  # the rest still works


class NoTesserocr(OcrPlugin):
    """The OCR plugin on a machine without tesserocr (worker processes import it by path)."""

    name = "ocr_without_tesserocr"
    requires_packages = ("tesserocr_not_installed_here",)


def test_missing_python_package_is_unavailable_with_the_install_hint(tmp_path) -> None:
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'lensforge.db'}",
        data_dir=tmp_path / "data",
        executor="thread",  # the state is decided at registration, whatever the executor
    )
    with TestClient(create_app(settings, extra_plugins=[NoTesserocr])) as client:
        manifest = client.get("/v1/plugins/ocr_without_tesserocr").json()
        assert manifest["state"] == "UNAVAILABLE"
        assert "pip install 'tesserocr" in manifest["reason"]
        assert "apt-get install -y tesseract-ocr tesseract-ocr-eng" in manifest["reason"]
