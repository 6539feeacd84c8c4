""":class:`Client` and :class:`Job`: the blocking client, which only sends what
:class:`~lensforge.client.base.BaseClient` builds and hands back what it reads."""

from __future__ import annotations

from collections.abc import Generator, Iterator, Mapping
from typing import Any

import httpx

from lensforge.client.base import BaseClient, BaseJob, file_chunks, video_source
from lensforge.client.models import ImageInput, JobInfo, JobResult, VideoInput
from lensforge.client.progress import Event, EventParser, ProgressWatch
from lensforge.client.streams import FrameStream


class Job(BaseJob["Client"]):
    """A submitted job on the server: wait for it, read its result, follow it, cancel it."""

    def _call(self, method: str, suffix: str = "") -> Any:
        return self.client._call(method, self._path(suffix))

    def info(self) -> JobInfo:
        """The job as it stands now."""
        return JobInfo.from_view(self._call("GET"))

    def progress(self, timeout: float | None = None) -> Iterator[JobInfo]:
        """Each change of status or progress (the SSE stream), ending with the finished job.

        ``timeout`` bounds the whole iteration (``TimeoutError`` past it).
        """
        watch = ProgressWatch(self.id, timeout)
        while not watch.done:
            stream = self.client._events(self.client._stream_request(self.id, watch.read_timeout()))
            try:
                for event in stream:
                    yield watch.update(event)
                    if watch.done:
                        break
            except httpx.ReadTimeout:
                continue  # no news for a while: reopen the stream (it starts with the job)
            finally:
                stream.close()

    def wait(self, timeout: float | None = None) -> JobInfo:
        """The finished job; ``TimeoutError`` if it is still running after ``timeout`` s."""
        return list(self.progress(timeout))[-1]

    def result(self, timeout: float | None = None, *, wait: bool = True) -> Any:
        """The job's result, once it finished; a failed or cancelled job raises its error.

        With ``wait=False`` an unfinished job raises ``ResultNotReady`` at once.
        """
        if wait:
            self.wait(timeout)
        return self._call("GET", "/result")["result"]

    def frames(self) -> Iterator[dict[str, Any]]:
        """A long job's per-frame items as stored so far (``seq``, ``frame``, ``timestamp_s``,
        ``item``), oldest first, read page by page as the iteration goes."""
        cursor = None
        while True:
            page = self._call("GET", self._frames_page(cursor))
            yield from page["frames"]
            cursor = page["next_cursor"]
            if cursor is None:
                return

    def cancel(self) -> JobInfo:
        """Cancel the job (``Conflict`` if it already finished)."""
        return JobInfo.from_view(self._call("POST", "/cancel"))

    def events(self) -> list[dict[str, Any]]:
        """Every state transition of the job."""
        events: list[dict[str, Any]] = self._call("GET", "/events")["events"]
        return events


class Client(BaseClient):
    """A LensForge server over HTTP (sync). See :mod:`lensforge.client` for an example."""

    _http: httpx.Client

    def __init__(
        self,
        server: str | None = None,
        *,
        api_key: str | None = None,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__(server, api_key=api_key, timeout=timeout)
        self._http = httpx.Client(
            base_url=self.server, headers=self.headers, timeout=timeout, transport=transport
        )

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # -- I/O --------------------------------------------------------------------------------------

    def _send(self, request: httpx.Request) -> Any:
        try:
            response = self._http.send(request)
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from exc
        return self._checked(response)

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        return self._send(self.build_request(method, path, **kwargs))

    def _events(self, request: httpx.Request) -> Generator[Event, None, None]:
        """The events of a stream; ``httpx.ReadTimeout`` when it stays quiet too long."""
        try:
            response = self._http.send(request, stream=True)
            try:
                if response.status_code >= 400:
                    response.read()
                    self._checked(response)
                yield from EventParser().events(response.iter_lines())
            finally:
                response.close()
        except httpx.ReadTimeout:
            raise
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from exc

    # -- the API ----------------------------------------------------------------------------------

    def plugins(self) -> list[dict[str, Any]]:
        """Manifests of the enabled plugins: tools with their schemas, state, metrics."""
        plugins: list[dict[str, Any]] = self._call("GET", "/v1/plugins")["plugins"]
        return plugins

    def analyze(
        self,
        target: str,
        image: ImageInput | None = None,
        *,
        video: VideoInput | Mapping[str, Any] | None = None,
        timeout_s: float | None = None,
        **inputs: Any,
    ) -> Any:
        """Run ``plugin.tool`` and return its result (a durable job, waited for).

        ``image`` is a path, bytes, an open binary file or ``{"blob": "sha256:..."}``; other
        image inputs of the tool go by name in ``inputs`` the same way.
        """
        return self.run(target, image, video=video, timeout_s=timeout_s, **inputs).result

    def run(
        self,
        target: str,
        image: ImageInput | None = None,
        *,
        video: VideoInput | Mapping[str, Any] | None = None,
        timeout_s: float | None = None,
        **inputs: Any,
    ) -> JobResult:
        """Like :meth:`analyze`, returning the job id beside the result."""
        if video is not None:
            inputs["video"] = self._video_ref(video)
        request = self._analysis_request("/v1/analyze", target, image, inputs, timeout_s)
        body = self._send(request)
        finished = self._finished(body)
        if finished is None:  # still running after the server's wait
            finished = JobResult(body["job_id"], "SUCCESS", self.job(body["job_id"]).result())
        return finished

    def submit(
        self,
        target: str,
        image: ImageInput | None = None,
        *,
        video: VideoInput | Mapping[str, Any] | None = None,
        timeout_s: float | None = None,
        idempotency_key: str | None = None,
        **inputs: Any,
    ) -> Job:
        """Queue ``plugin.tool`` and return its :class:`Job` at once."""
        if video is not None:
            inputs["video"] = self._video_ref(video)
        request = self._submit_request(target, image, inputs, timeout_s, idempotency_key)
        return Job(self, self._send(request)["job_id"])

    def upload(self, file: VideoInput) -> dict[str, Any]:
        """Stream a file (a video, or an image) to ``POST /v1/blobs``, never whole in
        memory; returns what the server stored (``blob``, ``kind``, ``size``, facts)."""
        source, size = video_source(file)
        try:
            stored: dict[str, Any] = self._send(self._blob_request(file_chunks(source), size))
        finally:
            if source is not file:
                source.close()
        return stored

    def _video_ref(self, video: VideoInput | Mapping[str, Any]) -> dict[str, Any]:
        if isinstance(video, Mapping):
            return dict(video)
        return {"blob": (self.upload(video))["blob"]}

    def stream(self, target: str, *, policy: str = "drop_oldest", **inputs: Any) -> FrameStream:
        """A live frame stream on the image tool ``target`` (``WS /v1/stream``), opened by
        ``with``; see :mod:`lensforge.client.streams`."""
        return FrameStream(self.server, self.headers, target, policy, inputs)

    def job(self, job_id: str) -> Job:
        """A handle on an existing job (no request is made)."""
        return Job(self, job_id)

    def jobs(
        self,
        *,
        status: str | None = None,
        plugin: str | None = None,
        tool: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> list[JobInfo]:
        """One page of jobs, newest first."""
        return self._job_infos(self._send(self._jobs_request(status, plugin, tool, limit, cursor)))
