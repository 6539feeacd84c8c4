"""Settings defaults that depend on the machine."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from lensforge.settings import Settings


def test_default_workers_is_one_per_core_this_process_may_use() -> None:
    assert Settings().workers == len(os.sched_getaffinity(0))


@pytest.mark.skipif(shutil.which("taskset") is None, reason="taskset (util-linux) not installed")
def test_default_workers_follows_cpu_affinity() -> None:
    """Under `taskset -c 0` (or a container's cpuset) one core means one worker."""
    code = "from lensforge.settings import Settings; print(Settings().workers)"
    done = subprocess.run(
        ["taskset", "-c", "0", sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert done.stdout.strip() == "1"


_OTEL_PROBE = """
import sys, tempfile
from fastapi.testclient import TestClient
from opentelemetry import trace
from lensforge.api import create_app
from lensforge.settings import Settings

spans = []

class Tracer(trace.NoOpTracer):
    def start_span(self, name, *args, **kwargs):
        spans.append(name)
        return super().start_span(name, *args, **kwargs)

class Provider(trace.TracerProvider):
    def get_tracer(self, *args, **kwargs):
        return Tracer()

trace.set_tracer_provider(Provider())
data = tempfile.mkdtemp()
settings = Settings(
    database_url=f"sqlite:///{data}/jobs.db", data_dir=data, executor="inline",
    otel=sys.argv[1] == "on",
)
with TestClient(create_app(settings)) as client:
    assert client.get("/healthz").status_code == 200
print(len(spans))
"""


@pytest.mark.parametrize(("otel", "traced"), [("off", False), ("on", True)])
def test_fastapi_telemetry_only_when_asked_for(otel: str, traced: bool) -> None:
    """With a tracer provider configured, requests are traced only under LENSFORGE_OTEL
    (in a subprocess: the provider is process-wide)."""
    done = subprocess.run(
        [sys.executable, "-c", _OTEL_PROBE, otel],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert (int(done.stdout.split()[-1]) > 0) is traced, done.stdout
