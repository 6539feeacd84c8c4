"""A client generated from /openapi.json by openapi-python-client (a third-party tool, not
written for LensForge) calls the real server, and every answer parses into typed objects.

The generator's own pins (httpx<0.29, typer<0.28) conflict with the project's, so it lives
in a virtualenv of its own, made once and cached (``LENSFORGE_TEST_CACHE``, by default
``~/.cache/lensforge-tests``); the generated package needs only httpx and attrs, which the
project's environment has, and is imported here.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import time
import venv
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest

from tests.api.conftest import Live
from tests.support import b64, png

pytestmark = pytest.mark.slow

GENERATOR = "openapi-python-client==0.29.1"
PACKAGE = "lensforge_generated"


def generator_venv() -> Path:
    cache = Path(os.environ.get("LENSFORGE_TEST_CACHE", Path.home() / ".cache/lensforge-tests"))
    home = cache / GENERATOR.replace("==", "-")
    exe = home / "bin" / "openapi-python-client"
    if not exe.exists():
        venv.create(home, with_pip=True, clear=True)
        pip = [str(home / "bin" / "python"), "-m", "pip", "install", "-q", GENERATOR]
        done = subprocess.run(pip, capture_output=True, text=True, timeout=300, check=False)
        if done.returncode != 0:
            pytest.skip(f"could not install {GENERATOR}: {done.stderr[-500:]}")
    return home


@pytest.fixture(scope="module")
def generated(live: Live, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModuleType]:
    home = generator_venv()
    root = tmp_path_factory.mktemp("generated")
    spec = root / "openapi.json"
    spec.write_bytes(httpx.get(f"{live.url}/openapi.json", timeout=30).content)
    command = [
        str(home / "bin" / "openapi-python-client"),
        "generate",
        "--path",
        str(spec),
        "--output-path",
        str(root / PACKAGE),
        "--meta",
        "none",
    ]
    env = {**os.environ, "PATH": f"{home / 'bin'}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    # Every schema was understood: the generator drops (and warns about) those it cannot use.
    assert "Unable to process schema" not in done.stdout + done.stderr, done.stdout
    sys.path.insert(0, str(root))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(root))
        for name in [n for n in sys.modules if n == PACKAGE or n.startswith(PACKAGE + ".")]:
            del sys.modules[name]


def part(package: ModuleType, name: str) -> Any:
    return importlib.import_module(f"{package.__name__}.{name}")


@pytest.fixture(scope="module")
def client(generated: ModuleType, live: Live) -> Iterator[Any]:
    with generated.AuthenticatedClient(base_url=live.url, token=live.key) as authenticated:
        yield authenticated


def test_analyze_json_parses_into_the_tools_result_type(generated: ModuleType, client: Any) -> None:
    models = part(generated, "models")
    analyze = part(generated, "api.analysis.analyze")
    inputs = models.AnalyzeRequestInputs.from_dict({"image": b64(png(40, 30))})
    body = models.AnalyzeRequest(plugin="image", tool="info", inputs=inputs)
    answer = analyze.sync_detailed(client=client, body=body)
    assert answer.status_code == 200, answer.content
    parsed = answer.parsed
    assert isinstance(parsed, models.AnalyzeResponse)
    assert isinstance(parsed.result, models.ImageInfoResult)
    assert (parsed.result.width, parsed.result.height) == (40, 30)
    assert parsed.result.additional_properties == {}
    assert parsed.additional_properties == {}


def test_analyze_multipart(generated: ModuleType, client: Any) -> None:
    models = part(generated, "models")
    types = part(generated, "types")
    analyze = part(generated, "api.analysis.analyze")
    image = types.File(payload=png(9, 4), file_name="p.png", mime_type="image/png")
    body = models.AnalyzeForm(plugin="image", tool="info", image=image)
    answer = analyze.sync_detailed(client=client, body=body)
    assert answer.status_code == 200, answer.content
    assert isinstance(answer.parsed.result, models.ImageInfoResult)
    assert (answer.parsed.result.width, answer.parsed.result.height) == (9, 4)


def test_submit_get_result_and_list(generated: ModuleType, client: Any) -> None:
    models = part(generated, "models")
    submit = part(generated, "api.analysis.submit_job")
    get_job = part(generated, "api.jobs.get_job")
    get_result = part(generated, "api.jobs.get_result")
    list_jobs = part(generated, "api.jobs.list_jobs")
    inputs = models.AnalyzeRequestInputs.from_dict({"image": b64(png(5, 6))})
    accepted = submit.sync(
        client=client, body=models.AnalyzeRequest(plugin="image", tool="info", inputs=inputs)
    )
    assert isinstance(accepted, models.JobAccepted)
    assert accepted.status.value in {"PENDING", "RUNNING"}  # README: either, by worker load
    for _ in range(300):
        job = get_job.sync(client=client, job_id=accepted.job_id)
        assert isinstance(job, models.Job)
        if job.status.value in ("SUCCESS", "FAILED", "CANCELLED"):
            break
        time.sleep(0.02)
    assert job.status.value == "SUCCESS"
    assert job.additional_properties == {}
    result = get_result.sync(client=client, job_id=accepted.job_id)
    assert isinstance(result, models.AnalyzeResponse)
    assert isinstance(result.result, models.ImageInfoResult)
    page = list_jobs.sync(client=client)
    assert isinstance(page, models.JobPage)
    assert all(isinstance(item, models.Job) for item in page.jobs)
    assert accepted.job_id in [item.id for item in page.jobs]


def test_an_error_parses_into_the_envelope(generated: ModuleType, client: Any) -> None:
    models = part(generated, "models")
    analyze = part(generated, "api.analysis.analyze")
    get_job = part(generated, "api.jobs.get_job")
    inputs = models.AnalyzeRequestInputs.from_dict({"image": "not base64 %%%"})
    answer = analyze.sync_detailed(
        client=client, body=models.AnalyzeRequest(plugin="image", tool="info", inputs=inputs)
    )
    assert answer.status_code == 422
    assert isinstance(answer.parsed, models.ErrorEnvelope)
    assert answer.parsed.error.code == "validation_error"
    assert "base64" in answer.parsed.error.message
    missing = get_job.sync_detailed(client=client, job_id="00000000-0000-7000-8000-000000000000")
    assert missing.status_code == 404
    assert isinstance(missing.parsed, models.ErrorEnvelope)
    assert missing.parsed.error.code == "job_not_found"
