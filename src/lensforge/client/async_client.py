""":class:`AsyncClient` and :class:`AsyncJob`: the asyncio client, which only sends what
:class:`~lensforge.client.base.BaseClient` builds and hands back what it reads. Its methods are
:class:`~lensforge.client.Client`'s, awaited."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from typing import Any

import httpx

from lensforge.client.base import BaseClient, BaseJob, async_file_chunks, video_source
from lensforge.client.models import ImageInput, JobInfo, JobResult, VideoInput
from lensforge.client.progress import Event, EventParser, ProgressWatch
from lensforge.client.streams import AsyncFrameStream


class AsyncJob(BaseJob["AsyncClient"]):
    """A submitted job on the server, for :class:`AsyncClient` (see :class:`Job`)."""

    async def _call(self, method: str, suffix: str = "") -> Any:
        return await self.client._call(method, self._path(suffix))

    async def info(self) -> JobInfo:
        return JobInfo.from_view(await self._call("GET"))

    # `timeout` mirrors the sync client on purpose; asyncio.timeout() works around it too.
    async def progress(self, timeout: float | None = None) -> AsyncIterator[JobInfo]:  # noqa: ASYNC109
        """Each change of status or progress, ending with the finished job."""
        watch = ProgressWatch(self.id, timeout)
        while not watch.done:
            stream = self.client._events(self.client._stream_request(self.id, watch.read_timeout()))
            try:
                async for event in stream:
                    yield watch.update(event)
                    if watch.done:
                        break
            except httpx.ReadTimeout:
                continue  # no news for a while: reopen the stream (it starts with the job)
            finally:
                await stream.aclose()

    async def wait(self, timeout: float | None = None) -> JobInfo:  # noqa: ASYNC109
        return [update async for update in self.progress(timeout)][-1]

    async def result(self, timeout: float | None = None, *, wait: bool = True) -> Any:  # noqa: ASYNC109
        if wait:
            await self.wait(timeout)
        return (await self._call("GET", "/result"))["result"]

    async def frames(self) -> AsyncIterator[dict[str, Any]]:
        """A long job's per-frame items as stored so far, oldest first (see Job.frames)."""
        cursor = None
        while True:
            page = await self._call("GET", self._frames_page(cursor))
            for frame in page["frames"]:
                yield frame
            cursor = page["next_cursor"]
            if cursor is None:
                return

    async def cancel(self) -> JobInfo:
        return JobInfo.from_view(await self._call("POST", "/cancel"))

    async def events(self) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = (await self._call("GET", "/events"))["events"]
        return events


class AsyncClient(BaseClient):
    """A LensForge server over HTTP (asyncio); the same methods as :class:`Client`, awaited."""

    _http: httpx.AsyncClient

    def __init__(
        self,
        server: str | None = None,
        *,
        api_key: str | None = None,
        timeout: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
        max_connections: int = 100,
    ) -> None:
        super().__init__(server, api_key=api_key, timeout=timeout)
        self._http = httpx.AsyncClient(
            base_url=self.server,
            headers=self.headers,
            timeout=timeout,
            transport=transport,
            limits=httpx.Limits(max_connections=max_connections),
        )

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    # -- I/O --------------------------------------------------------------------------------------

    async def _send(self, request: httpx.Request) -> Any:
        try:
            response = await self._http.send(request)
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from exc
        return self._checked(response)

    async def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        return await self._send(self.build_request(method, path, **kwargs))

    async def _events(self, request: httpx.Request) -> AsyncGenerator[Event, None]:
        try:
            response = await self._http.send(request, stream=True)
            try:
                if response.status_code >= 400:
                    await response.aread()
                    self._checked(response)
                parser = EventParser()
                async for line in response.aiter_lines():
                    if (event := parser.feed(line)) is not None:
                        yield event
            finally:
                await response.aclose()
        except httpx.ReadTimeout:
            raise
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from exc

    # -- the API ----------------------------------------------------------------------------------

    async def plugins(self) -> list[dict[str, Any]]:
        plugins: list[dict[str, Any]] = (await self._call("GET", "/v1/plugins"))["plugins"]
        return plugins

    async def analyze(
        self,
        target: str,
        image: ImageInput | None = None,
        *,
        video: VideoInput | Mapping[str, Any] | None = None,
        timeout_s: float | None = None,
        **inputs: Any,
    ) -> Any:
        return (await self.run(target, image, video=video, timeout_s=timeout_s, **inputs)).result

    async def run(
        self,
        target: str,
        image: ImageInput | None = None,
        *,
        video: VideoInput | Mapping[str, Any] | None = None,
        timeout_s: float | None = None,
        **inputs: Any,
    ) -> JobResult:
        if video is not None:
            inputs["video"] = await self._video_ref(video)
        request = self._analysis_request("/v1/analyze", target, image, inputs, timeout_s)
        body = await self._send(request)
        finished = self._finished(body)
        if finished is None:  # still running after the server's wait
            result = await self.job(body["job_id"]).result()
            finished = JobResult(body["job_id"], "SUCCESS", result)
        return finished

    async def submit(
        self,
        target: str,
        image: ImageInput | None = None,
        *,
        video: VideoInput | Mapping[str, Any] | None = None,
        timeout_s: float | None = None,
        idempotency_key: str | None = None,
        **inputs: Any,
    ) -> AsyncJob:
        if video is not None:
            inputs["video"] = await self._video_ref(video)
        request = self._submit_request(target, image, inputs, timeout_s, idempotency_key)
        return AsyncJob(self, (await self._send(request))["job_id"])

    async def upload(self, file: VideoInput) -> dict[str, Any]:
        """Stream a file (a video, or an image) to ``POST /v1/blobs``, never whole in
        memory; returns what the server stored (``blob``, ``kind``, ``size``, facts)."""
        source, size = video_source(file)
        try:
            stored: dict[str, Any] = await self._send(
                self._blob_request(async_file_chunks(source), size)
            )
        finally:
            if source is not file:
                source.close()
        return stored

    async def _video_ref(self, video: VideoInput | Mapping[str, Any]) -> dict[str, Any]:
        if isinstance(video, Mapping):
            return dict(video)
        return {"blob": (await self.upload(video))["blob"]}

    def stream(
        self, target: str, *, policy: str = "drop_oldest", **inputs: Any
    ) -> AsyncFrameStream:
        """A live frame stream on the image tool ``target`` (``WS /v1/stream``), opened by
        ``with``; see :mod:`lensforge.client.streams`."""
        return AsyncFrameStream(self.server, self.headers, target, policy, inputs)

    def job(self, job_id: str) -> AsyncJob:
        return AsyncJob(self, job_id)

    async def jobs(
        self,
        *,
        status: str | None = None,
        plugin: str | None = None,
        tool: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> list[JobInfo]:
        request = self._jobs_request(status, plugin, tool, limit, cursor)
        return self._job_infos(await self._send(request))
