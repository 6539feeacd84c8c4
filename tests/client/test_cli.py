"""The ``lensforge`` commands that talk to a server, run as real processes against a real one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from lensforge import cli
from lensforge.cli import output
from lensforge.client import ConnectionFailed
from lensforge.errors import Cancelled, Conflict, PluginError, ValidationError
from tests.mcp_server.support import ROOT, HttpServer
from tests.support import free_port, png

pytestmark = pytest.mark.slow


def lensforge(server: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LENSFORGE_SERVER": server, "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "lensforge.cli", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def as_json(done: subprocess.CompletedProcess[str]) -> Any:
    return json.loads(done.stdout)


def test_exit_codes_are_the_documented_ones() -> None:
    assert (cli.EXIT_OK, cli.EXIT_JOB_FAILED, cli.EXIT_USAGE, cli.EXIT_CONNECTION) == (0, 1, 2, 3)
    assert output.exit_code(ConnectionFailed()) == cli.EXIT_CONNECTION
    assert output.exit_code(ValidationError()) == cli.EXIT_USAGE
    assert output.exit_code(Conflict()) == cli.EXIT_USAGE
    assert output.exit_code(PluginError()) == cli.EXIT_JOB_FAILED
    assert output.exit_code(Cancelled()) == cli.EXIT_JOB_FAILED


def test_submit_job_result_jobs_and_cancel(server: HttpServer, tmp_path: Path) -> None:
    image = tmp_path / "photo.png"
    image.write_bytes(png(64, 48))
    waited = lensforge(server.url, "submit", "testing.size", "--image", str(image), "--wait")
    assert waited.returncode == 0, waited.stderr
    assert json.loads(waited.stdout) == {"width": 64, "height": 48}

    queued = lensforge(server.url, "submit", "testing.echo", "-i", "text=hey", "-i", "times=3")
    job_id = queued.stdout.strip()
    assert queued.returncode == 0 and job_id
    result = as_json(lensforge(server.url, "result", job_id, "--wait", "--json"))
    assert result == {"job_id": job_id, "status": "SUCCESS", "result": {"text": "hey", "times": 3}}
    shown = as_json(lensforge(server.url, "job", job_id, "--json"))
    assert shown["id"] == job_id and shown["status"] == "SUCCESS"
    listed = as_json(lensforge(server.url, "jobs", "--status", "success", "--json"))
    assert job_id in {job["id"] for job in listed["jobs"]}
    table = lensforge(server.url, "jobs", "--tool", "echo")
    assert table.returncode == 0 and job_id in table.stdout

    long = as_json(lensforge(server.url, "submit", "testing.sleep", "-i", "seconds=30", "--json"))
    cancelled = lensforge(server.url, "cancel", long["job_id"], "--json")
    assert cancelled.returncode == 0, cancelled.stderr
    assert as_json(cancelled)["cancel_requested"] is True
    again = lensforge(server.url, "cancel", long["job_id"], "--json")
    assert again.returncode == cli.EXIT_USAGE
    assert as_json(again)["error"]["code"] == "conflict"


def test_exit_codes(server: HttpServer) -> None:
    bad = lensforge(server.url, "submit", "testing.echo", "-i", "times=1", "--json")
    assert bad.returncode == cli.EXIT_USAGE
    assert as_json(bad)["error"]["code"] == "validation_error"
    unknown = lensforge(server.url, "submit", "nothing.here")
    assert unknown.returncode == cli.EXIT_USAGE and "plugin_not_found" in unknown.stderr
    failed = lensforge(server.url, "submit", "testing.fail", "--wait", "--json")
    assert failed.returncode == cli.EXIT_JOB_FAILED
    assert as_json(failed)["error"]["code"] == "plugin_error"
    nowhere = lensforge(f"http://127.0.0.1:{free_port()}", "jobs", "--json")
    assert nowhere.returncode == cli.EXIT_CONNECTION
    assert as_json(nowhere)["error"]["code"] == "connection_failed"


def test_batch_analyze_reports_each_file(server: HttpServer, tmp_path: Path) -> None:
    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(50):
        (folder / f"img{i:02d}.png").write_bytes(png(10 + i, 10))
    (folder / "broken.png").write_bytes(b"this is not an image")
    (folder / "notes.txt").write_text("not an image either, and not picked from a folder")
    output = tmp_path / "results.jsonl"
    done = lensforge(
        server.url, "analyze", "testing.size", str(folder), "-c", "8", "-o", str(output), "--json"
    )
    assert done.returncode == cli.EXIT_JOB_FAILED, done.stderr  # partial failure
    summary = as_json(done)
    assert summary == {
        "total": 51,
        "succeeded": 50,
        "failed": 1,
        "unreachable": 0,
        "output": str(output),
    }
    records = [json.loads(line) for line in output.read_text().splitlines()]
    assert len(records) == 51
    by_name = {Path(r["path"]).name: r for r in records}
    assert by_name["broken.png"]["status"] == "FAILED"
    assert by_name["broken.png"]["error"]["code"] == "unsupported_media_type"
    assert by_name["img07.png"]["result"] == {"width": 17, "height": 10}
    assert all(r["job_id"] for r in records if r["status"] == "SUCCESS")

    # a glob, results on stdout, one missing file reported for itself
    globbed = lensforge(
        server.url, "analyze", "testing.size", str(folder / "img0*.png"), str(tmp_path / "gone.png")
    )
    assert globbed.returncode == cli.EXIT_JOB_FAILED
    lines = [json.loads(line) for line in globbed.stdout.splitlines()]
    assert len(lines) == 11
    missing = next(r for r in lines if r["path"].endswith("gone.png"))
    assert missing["error"]["code"] == "validation_error"

    everything_fine = lensforge(
        server.url, "analyze", "testing.size", str(folder / "img1*.png"), "-o", str(output)
    )
    assert everything_fine.returncode == 0
    assert "10/10 succeeded" in everything_fine.stdout
    nothing = lensforge(server.url, "analyze", "testing.size", str(tmp_path / "none*.png"))
    assert nothing.returncode == cli.EXIT_USAGE
