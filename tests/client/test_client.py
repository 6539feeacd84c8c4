"""``lensforge.Client`` and ``lensforge.AsyncClient`` against a real server."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import httpx
import pytest

from lensforge import AsyncClient, Client
from lensforge.client import ConnectionFailed, JobInfo
from lensforge.errors import Cancelled, Conflict, JobNotFound, PluginError, ValidationError
from tests.mcp_server.support import HttpServer
from tests.support import free_port, png

pytestmark = pytest.mark.slow


def test_plugins_and_analyze_with_every_kind_of_image(server: HttpServer, tmp_path: Path) -> None:
    path = tmp_path / "a.png"
    path.write_bytes(png(30, 20))
    with Client(server.url) as lf:
        names = {plugin["name"] for plugin in lf.plugins()}
        assert {"testing", "image", "single"} <= names
        assert lf.analyze("testing.size", image=path) == {"width": 30, "height": 20}
        assert lf.analyze("testing.size", image=str(path)) == {"width": 30, "height": 20}
        assert lf.analyze("testing.size", png(5, 6)) == {"width": 5, "height": 6}
        assert lf.analyze("testing.size", io.BytesIO(png(7, 8))) == {"width": 7, "height": 8}
        assert lf.analyze("testing.echo", text="hi", times=2) == {"text": "hi", "times": 2}
        assert lf.analyze("single", value=21) == {"value": 42}
        outcome = lf.run("testing.noop")
        assert outcome.status == "SUCCESS" and outcome.result == {"ok": True}
        assert lf.job(outcome.job_id).info().status == "SUCCESS"


def test_errors_are_the_servers_typed_errors(server: HttpServer, tmp_path: Path) -> None:
    with Client(server.url) as lf:
        with pytest.raises(ValidationError) as invalid:
            lf.analyze("testing.echo", text="hi", times="many")
        assert invalid.value.details["errors"][0]["field"] == "times"
        assert invalid.value.tool == "echo"
        with pytest.raises(PluginError) as failed:
            lf.analyze("testing.fail", message="nope")
        assert failed.value.job_id
        with pytest.raises(JobNotFound):
            lf.job("no-such-job").info()
        with pytest.raises(ValidationError, match="Cannot read image file"):
            lf.analyze("testing.size", image=tmp_path / "missing.png")
    with Client(f"http://127.0.0.1:{free_port()}") as nowhere, pytest.raises(ConnectionFailed):
        nowhere.plugins()


def test_submit_wait_result_progress_and_cancel(server: HttpServer) -> None:
    with Client(server.url) as lf:
        job = lf.submit("testing.sleep", seconds=0.8)
        updates = list(job.progress(timeout=20))
        assert updates[-1].status == "SUCCESS" and updates[-1].terminal
        progress = [u.progress for u in updates if u.status == "RUNNING"]
        assert len(progress) >= 2 and progress == sorted(progress)
        assert job.wait(timeout=5).status == "SUCCESS"
        assert job.result() == {"slept": 0.8}
        assert [e["to"] for e in job.events()][-1] == "SUCCESS"

        long = lf.submit("testing.sleep", seconds=30)
        with pytest.raises(TimeoutError):
            long.wait(timeout=0.3)
        assert long.cancel().status in ("RUNNING", "CANCELLED")
        assert long.wait(timeout=10).status == "CANCELLED"
        with pytest.raises(Cancelled):
            long.result()
        with pytest.raises(Conflict):
            long.cancel()
        listed = lf.jobs(status="cancelled", tool="sleep")
        assert long.id in {info.id for info in listed}
        assert all(isinstance(info, JobInfo) for info in listed)

        same = lf.submit("testing.noop", idempotency_key="client-test-1")
        again = lf.submit("testing.noop", idempotency_key="client-test-1")
        assert same.id == again.id


def test_async_client(server: HttpServer) -> None:
    async def go() -> None:
        async with AsyncClient(server.url) as lf:
            results = await asyncio.gather(
                *(lf.analyze("testing.size", png(10 + i, 10)) for i in range(5))
            )
            assert [r["width"] for r in results] == [10, 11, 12, 13, 14]
            job = await lf.submit("testing.sleep", seconds=0.5)
            updates = [update async for update in job.progress(timeout=20)]
            assert updates[-1].status == "SUCCESS"
            assert await job.result() == {"slept": 0.5}
            with pytest.raises(ValidationError):
                await lf.analyze("testing.echo")
            assert job.id in {info.id for info in await lf.jobs(tool="sleep")}

    asyncio.run(go())


def test_api_key_and_server_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"plugins": []})

    monkeypatch.setenv("LENSFORGE_API_KEY", "lfk_secret")
    monkeypatch.setenv("LENSFORGE_SERVER", "http://127.0.0.1:9/")
    with Client(transport=httpx.MockTransport(answer)) as lf:
        assert lf.server == "http://127.0.0.1:9"
        lf.plugins()
    with Client(api_key="explicit", transport=httpx.MockTransport(answer)) as lf:
        lf.plugins()
    assert seen[0].headers["Authorization"] == "Bearer lfk_secret"
    assert seen[1].headers["Authorization"] == "Bearer explicit"
    assert str(seen[0].url) == "http://127.0.0.1:9/v1/plugins"
