"""Every built-in tool through the real CLI: ``lensforge run plugin.tool --image PATH --json``.

The CLI finds plugins through their entry points, so this also checks that the built-in
plugins are registered in the installed package. The runs start together (each one a
process with its own database and blob store) to keep the wall time short.
"""

from __future__ import annotations

import base64
import importlib.metadata
import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from PIL import Image as PILImage
from PIL import ImageFilter

from lensforge.blobs import BlobStore
from lensforge.builtin.codes import CodesPlugin
from lensforge.builtin.faces import FacesPlugin
from lensforge.builtin.image import ImagePlugin
from lensforge.builtin.ocr import OcrPlugin
from lensforge.tools import collect_tools
from tests.plugins.support import qr, render_text

LENSFORGE = Path(sys.executable).with_name("lensforge")
PLUGINS = {cls.name: cls for cls in (ImagePlugin, OcrPlugin, CodesPlugin, FacesPlugin)}
CALLS: dict[str, tuple[str, list[str]]] = {  # target: (image file, extra --input pairs)
    "image.info": ("astronaut.png", ["colors=2"]),
    "image.hash": ("astronaut.png", ['algorithms=["phash","dhash"]']),
    "image.compare": ("astronaut.png", ["other=@copy"]),
    "image.quality": ("blurred.png", []),
    "ocr.read": ("text.png", ["psm=6"]),
    "codes.decode": ("qr.png", []),
    "faces.detect": ("astronaut.png", []),
    "faces.redact": ("astronaut.png", ["mode=pixelate"]),
}


def registered() -> set[str]:
    return {entry.name for entry in importlib.metadata.entry_points(group="lensforge.plugins")}


@pytest.fixture(scope="module")
def cli_runs(tmp_path_factory: pytest.TempPathFactory, astronaut) -> dict[str, Any]:
    missing = set(PLUGINS) - registered()
    if missing:
        pytest.fail(
            f"plugins {sorted(missing)} have no 'lensforge.plugins' entry point: add them to "
            "pyproject.toml and reinstall (pip install -e .)"
        )
    root = tmp_path_factory.mktemp("cli")
    astronaut.save(root / "astronaut.png")
    astronaut.filter(ImageFilter.GaussianBlur(3)).save(root / "blurred.png")
    render_text(["Command line OCR"], 28)[0].save(root / "text.png")
    qr("from the command line", 5).save(root / "qr.png")
    copy = io.BytesIO()
    astronaut.resize((128, 128)).save(copy, "JPEG", quality=70)
    copy_b64 = base64.b64encode(copy.getvalue()).decode()

    processes = {}
    for target, (image, pairs) in CALLS.items():
        home = root / target
        env = {
            **os.environ,
            "LENSFORGE_DATABASE_URL": f"sqlite:///{home / 'lensforge.db'}",
            "LENSFORGE_DATA_DIR": str(home / "data"),
        }
        args = [str(LENSFORGE), "run", target, "--image", str(root / image), "--json"]
        for pair in pairs:
            args += ["--input", pair.replace("@copy", copy_b64)]
        home.mkdir()
        processes[target] = (
            subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE),
            home,
        )
    runs = {}
    for target, (process, home) in processes.items():
        out, err = process.communicate(timeout=90)
        runs[target] = {"rc": process.returncode, "out": out, "err": err, "home": home}
    return runs


@pytest.mark.slow
@pytest.mark.parametrize("target", list(CALLS))
def test_every_tool_from_the_cli(cli_runs: dict[str, Any], target: str) -> None:
    run = cli_runs[target]
    assert run["rc"] == 0, run["err"].decode()[-2000:] + run["out"].decode()[-2000:]
    answer = json.loads(run["out"])
    assert answer["status"] == "SUCCESS"
    result = answer["result"]
    plugin, tool = target.split(".")
    schema = collect_tools(PLUGINS[plugin])[tool].output_schema
    jsonschema.validators.validator_for(schema)(schema).validate(result)

    if target == "image.info":
        assert (result["width"], len(result["dominant_colors"])) == (512, 2)
    elif target == "image.hash":
        assert set(result["hashes"]) == {"phash", "dhash"}
    elif target == "image.compare":
        assert result["near_duplicate"] is True
    elif target == "image.quality":
        assert result["flags"]["blurry"] is True
    elif target == "ocr.read":
        assert result["text"] == "Command line OCR"
    elif target == "codes.decode":
        assert [c["text"] for c in result["codes"]] == ["from the command line"]
    elif target == "faces.detect":
        assert result["count"] == 1
    elif target == "faces.redact":
        stored = BlobStore(run["home"] / "data" / "blobs").get(result["image"]["blob"])
        assert PILImage.open(io.BytesIO(stored)).size == (512, 512)
