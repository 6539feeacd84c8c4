"""The real ``lensforge`` command line, in subprocesses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support import ENVELOPE_KEYS, jpeg, png

pytestmark = pytest.mark.slow


def lensforge_command() -> list[str]:
    script = Path(sys.executable).with_name("lensforge")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "lensforge.cli"]


@pytest.fixture
def run_cli(tmp_path: Path) -> Any:
    """Run ``lensforge ARGS`` with its store and blobs in tmp_path; returns the process."""

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        env = {
            **os.environ,  # read at each call, so monkeypatched variables reach the CLI
            "LENSFORGE_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}",
            "LENSFORGE_DATA_DIR": str(tmp_path / "data"),
            "NO_COLOR": "1",
        }
        return subprocess.run(
            [*lensforge_command(), *args],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    return run


def envelope(stdout: str) -> dict[str, Any]:
    body = json.loads(stdout)
    assert set(body) == {"error"}
    assert set(body["error"]) == ENVELOPE_KEYS
    error: dict[str, Any] = body["error"]
    return error


def test_run_prints_the_result_json(run_cli: Any, tmp_path: Path) -> None:
    image = tmp_path / "photo.png"
    image.write_bytes(png(40, 30))
    done = run_cli("run", "image.info", "--image", str(image), "--json")
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["status"] == "SUCCESS"
    assert answer["job_id"]
    result = answer["result"]
    assert (result["format"], result["width"], result["height"]) == ("PNG", 40, 30)
    assert (tmp_path / "cli.db").is_file()  # recorded like any other job


def test_run_without_json_prints_the_result(run_cli: Any, tmp_path: Path) -> None:
    image = tmp_path / "photo.jpg"
    image.write_bytes(jpeg(16, 8))
    done = run_cli("run", "image.info", "--image", str(image))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["format"] == "JPEG"


def test_unknown_tool_exits_2_with_the_envelope(run_cli: Any, tmp_path: Path) -> None:
    image = tmp_path / "photo.png"
    image.write_bytes(png())
    done = run_cli("run", "image.nope", "--image", str(image), "--json")
    assert done.returncode == 2
    error = envelope(done.stdout)
    assert (error["code"], error["plugin"], error["tool"]) == ("tool_not_found", "image", "nope")
    assert "Traceback" not in done.stdout + done.stderr


def test_unknown_plugin_exits_2(run_cli: Any) -> None:
    done = run_cli("run", "nope", "--json")
    assert done.returncode == 2
    assert envelope(done.stdout)["code"] == "plugin_not_found"


def test_bad_image_exits_2_with_validation_error(run_cli: Any, tmp_path: Path) -> None:
    image = tmp_path / "cut.png"
    image.write_bytes(png(64, 64)[:-70])
    done = run_cli("run", "image.info", "--image", str(image), "--json")
    assert done.returncode == 2
    error = envelope(done.stdout)
    assert error["code"] == "validation_error"
    assert error["job_id"]  # the failed job is on record


def test_missing_image_file_is_a_usage_error(run_cli: Any, tmp_path: Path) -> None:
    done = run_cli("run", "image.info", "--image", str(tmp_path / "missing.png"), "--json")
    assert envelope(done.stdout)["code"] == "validation_error"
    assert done.returncode == 2


def test_a_bad_input_pair_is_a_usage_error(run_cli: Any) -> None:
    done = run_cli("run", "image.info", "--input", "colors", "--json")
    assert done.returncode == 2
    assert "key=value" in envelope(done.stdout)["message"]
    plain = run_cli("run", "image.info", "-i", "=3")
    assert plain.returncode == 2 and "validation_error" in plain.stderr and plain.stdout == ""


def test_plugins_json(run_cli: Any) -> None:
    done = run_cli("plugins", "--json")
    assert done.returncode == 0, done.stderr
    listing = json.loads(done.stdout)
    assert set(listing) == {"plugins", "load_errors"}
    plugins = {p["name"]: p for p in listing["plugins"]}
    assert "image" in plugins
    assert plugins["image"]["state"] in {"LOADED", "INITIALIZED", "UNAVAILABLE"}
    tools = {t["name"]: t for t in plugins["image"]["tools"]}
    assert tools["info"]["media_inputs"] == ["image"]
    assert tools["info"]["input_schema"]["required"] == ["image"]


def test_plugins_respects_the_block_list(run_cli: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LENSFORGE_PLUGINS_BLOCK", "image")
    done = run_cli("plugins", "--json")
    assert done.returncode == 0, done.stderr
    assert "image" not in [p["name"] for p in json.loads(done.stdout)["plugins"]]
