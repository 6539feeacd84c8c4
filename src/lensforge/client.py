"""The Python client of a LensForge server: :class:`Client` (sync) and :class:`AsyncClient`.

    from lensforge import Client

    with Client("http://127.0.0.1:8000") as lf:
        info = lf.analyze("image.info", image="photo.jpg")
        job = lf.submit("image.quality", image="scan.png")
        for update in job.progress():
            print(update.status, update.progress)
        print(job.result())

Failures raise the server's typed errors (:mod:`lensforge.errors`, rebuilt from the
envelope): ``ValidationError``, ``PluginError``, ``Cancelled``... An unreachable server raises
:class:`ConnectionFailed`. The API key comes from ``api_key=`` or ``LENSFORGE_API_KEY`` and
is sent as ``Authorization: Bearer <key>``; the server URL from ``server=``, or
``LENSFORGE_SERVER``, or ``http://127.0.0.1:8000``.
"""

from __future__ import annotations

import io
import json
import os
import time
from collections.abc import AsyncGenerator, AsyncIterator, Generator, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, ClassVar

import httpx

from lensforge.errors import LensForgeError, ValidationError, from_envelope

DEFAULT_SERVER = "http://127.0.0.1:8000"
TERMINAL_STATUSES = frozenset({"SUCCESS", "FAILED", "CANCELLED"})
STREAM_CHUNK_S = 30.0  # a quiet progress stream is reopened this often (bounds every read)

ImageInput = str | os.PathLike[str] | bytes | bytearray | BinaryIO | Mapping[str, Any]
"""A path, the bytes, an open binary file, or ``{"blob": "sha256:..."}`` for a stored blob."""


class ConnectionFailed(LensForgeError):
    """The server could not be reached (refused, unresolvable, timed out, dropped)."""

    code: ClassVar[str] = "connection_failed"
    status: ClassVar[int] = 503
    retryable: ClassVar[bool] = True
    default_message: ClassVar[str] = (
        "The LensForge server could not be reached; check --server / LENSFORGE_SERVER."
    )


@dataclass(frozen=True)
class JobInfo:
    """A job as the server reports it (``GET /v1/jobs/{id}``)."""

    id: str
    plugin: str
    tool: str
    status: str
    progress: float = 0.0
    progress_message: str | None = None
    attempts: int = 0
    max_attempts: int = 1
    cancel_requested: bool = False
    created_at: str | None = None
    updated_at: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    error: dict[str, Any] | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def terminal(self) -> bool:
        """Whether the job has finished (SUCCESS, FAILED or CANCELLED)."""
        return self.status in TERMINAL_STATUSES

    @classmethod
    def from_view(cls, view: Mapping[str, Any]) -> JobInfo:
        known = set(cls.__dataclass_fields__) - {"raw"}
        values = {key: view[key] for key in known if key in view}
        return cls(**values, raw=dict(view))


@dataclass(frozen=True)
class Outcome:
    """A finished synchronous analysis: the job's id, status and result."""

    job_id: str
    status: str
    result: Any


# -- requests and responses, shared by both clients ---------------------------------------------


def _headers(api_key: str | None) -> dict[str, str]:
    headers = {"User-Agent": "lensforge-client", "Accept": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    return headers


def _is_upload(value: Any) -> bool:
    return isinstance(value, bytes | bytearray | os.PathLike | io.IOBase)


def _read_upload(name: str, value: Any) -> tuple[str, bytes]:
    if isinstance(value, bytes | bytearray):
        return name, bytes(value)
    if isinstance(value, os.PathLike | str):
        path = Path(value)
        try:
            return path.name, path.read_bytes()
        except OSError as exc:
            raise ValidationError(
                f"Cannot read image file {str(path)!r}: {exc.strerror or exc}.",
                details={"path": str(path)},
            ) from exc
    data = value.read()
    return getattr(value, "name", name) or name, bytes(data)


def _analysis_request(
    target: str,
    image: ImageInput | None,
    inputs: dict[str, Any],
    timeout_s: float | None,
) -> dict[str, Any]:
    """httpx keyword arguments for POST /v1/analyze or /v1/jobs: JSON, or multipart with files."""
    fields = dict(inputs)
    if image is not None:
        fields["image"] = str(image) if isinstance(image, str) else image
    uploads: dict[str, tuple[str, bytes]] = {}
    for name, value in list(fields.items()):
        if _is_upload(value) or (name == "image" and isinstance(value, str)):
            uploads[name] = _read_upload(name, value)
            del fields[name]
        elif isinstance(value, Mapping):
            fields[name] = dict(value)
    if not uploads:
        body: dict[str, Any] = {"plugin": target, "inputs": fields}
        if timeout_s is not None:
            body["timeout_s"] = timeout_s
        return {"json": body}
    form = {"plugin": target, "inputs": json.dumps(fields)}
    if timeout_s is not None:
        form["timeout_s"] = str(timeout_s)
    files = {name: (filename, data) for name, (filename, data) in uploads.items()}
    return {"data": form, "files": files}


def _error_from(response: httpx.Response) -> LensForgeError:
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        error = from_envelope(body)
    else:
        error = LensForgeError(
            f"HTTP {response.status_code} from {response.request.url}: {response.text[:200]}",
            details={"status": response.status_code},
        )
    retry_after = response.headers.get("Retry-After")
    if retry_after:
        error.headers = {"Retry-After": retry_after}
    return error


def _checked(response: httpx.Response) -> Any:
    if response.status_code >= 400:
        raise _error_from(response)
    return response.json()


def _connection_failed(exc: httpx.TransportError, server: str) -> ConnectionFailed:
    return ConnectionFailed(
        f"Cannot reach the LensForge server at {server}: {exc.__class__.__name__}: {exc}",
        details={"server": server},
    )


def _jobs_params(
    status: str | None, plugin: str | None, tool: str | None, limit: int, cursor: str | None
) -> dict[str, Any]:
    params: dict[str, Any] = {"limit": limit}
    for key, value in (("status", status), ("plugin", plugin), ("tool", tool), ("cursor", cursor)):
        if value is not None:
            params[key] = value.upper() if key == "status" else value
    return params


class _SSE:
    """Incremental Server-Sent Events parser: feed lines, get (event, data) pairs."""

    def __init__(self) -> None:
        self.event = "message"
        self.data: list[str] = []

    def feed(self, line: str) -> tuple[str, dict[str, Any]] | None:
        if line == "":
            if not self.data:
                return None
            event, data = self.event, "\n".join(self.data)
            self.event, self.data = "message", []
            return event, json.loads(data)
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            self.event = value
        elif name == "data":
            self.data.append(value)
        return None


def _server_url(server: str | None) -> str:
    return (server or os.environ.get("LENSFORGE_SERVER") or DEFAULT_SERVER).rstrip("/")


def _remaining(deadline: float | None) -> float:
    return STREAM_CHUNK_S if deadline is None else min(STREAM_CHUNK_S, deadline - time.monotonic())


def _wait_timeout(job_id: str, timeout: float | None) -> TimeoutError:
    return TimeoutError(f"Job {job_id} did not finish within {timeout} s.")


# -- the synchronous client ----------------------------------------------------------------------


class Job:
    """A submitted job on the server: wait for it, read its result, follow it, cancel it."""

    def __init__(self, client: Client, job_id: str) -> None:
        self.client = client
        self.id = job_id

    def __repr__(self) -> str:
        return f"Job({self.id!r})"

    def info(self) -> JobInfo:
        """The job as it stands now."""
        return JobInfo.from_view(self.client._get(f"/v1/jobs/{self.id}"))

    def progress(self, timeout: float | None = None) -> Iterator[JobInfo]:
        """Each change of status or progress (the SSE stream), ending with the finished job.

        ``timeout`` bounds the whole iteration (``TimeoutError`` past it).
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            remaining = _remaining(deadline)
            if remaining <= 0:
                raise _wait_timeout(self.id, timeout)
            stream = self.client._stream(f"/v1/jobs/{self.id}/stream", remaining)
            try:
                for event, data in stream:
                    info = JobInfo.from_view(data)
                    yield info
                    if event == "done" or info.terminal:
                        return
            except httpx.ReadTimeout:
                continue  # no news for a while: reopen the stream (it starts with the job)
            finally:
                stream.close()

    def wait(self, timeout: float | None = None) -> JobInfo:
        """The finished job; ``TimeoutError`` if it is still running after ``timeout`` s."""
        updates = list(self.progress(timeout))
        return updates[-1]

    def result(self, timeout: float | None = None, *, wait: bool = True) -> Any:
        """The job's result, once it finished; a failed or cancelled job raises its error.

        With ``wait=False`` an unfinished job raises ``ResultNotReady`` at once.
        """
        if wait:
            self.wait(timeout)
        return self.client._get(f"/v1/jobs/{self.id}/result")["result"]

    def cancel(self) -> JobInfo:
        """Cancel the job (``Conflict`` if it already finished)."""
        return JobInfo.from_view(self.client._send("POST", f"/v1/jobs/{self.id}/cancel"))

    def events(self) -> list[dict[str, Any]]:
        """Every state transition of the job."""
        events: list[dict[str, Any]] = self.client._get(f"/v1/jobs/{self.id}/events")["events"]
        return events


class Client:
    """A LensForge server over HTTP (sync). See the module docstring for an example."""

    def __init__(
        self,
        server: str | None = None,
        *,
        api_key: str | None = None,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.server = _server_url(server)
        key = api_key if api_key is not None else os.environ.get("LENSFORGE_API_KEY")
        self.timeout = timeout
        self._http = httpx.Client(
            base_url=self.server, headers=_headers(key), timeout=timeout, transport=transport
        )

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # plumbing
    def _send(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise _connection_failed(exc, self.server) from exc
        return _checked(response)

    def _get(self, path: str, **kwargs: Any) -> Any:
        return self._send("GET", path, **kwargs)

    def _stream(
        self, path: str, read_timeout: float
    ) -> Generator[tuple[str, dict[str, Any]], None, None]:
        timeout = httpx.Timeout(self.timeout, read=max(read_timeout, 0.01))
        try:
            with self._http.stream("GET", path, timeout=timeout) as response:
                if response.status_code >= 400:
                    response.read()
                    raise _error_from(response)
                parser = _SSE()
                for line in response.iter_lines():
                    item = parser.feed(line)
                    if item is not None:
                        yield item
        except httpx.ReadTimeout:
            raise
        except httpx.TransportError as exc:
            raise _connection_failed(exc, self.server) from exc

    # the API
    def plugins(self) -> list[dict[str, Any]]:
        """Manifests of the enabled plugins: tools with their schemas, state, metrics."""
        plugins: list[dict[str, Any]] = self._get("/v1/plugins")["plugins"]
        return plugins

    def analyze(
        self,
        target: str,
        image: ImageInput | None = None,
        *,
        timeout_s: float | None = None,
        **inputs: Any,
    ) -> Any:
        """Run ``plugin.tool`` and return its result (a durable job, waited for).

        ``image`` is a path, bytes, an open binary file or ``{"blob": "sha256:..."}``; other
        image inputs of the tool go by name in ``inputs`` the same way.
        """
        return self.run(target, image, timeout_s=timeout_s, **inputs).result

    def run(
        self,
        target: str,
        image: ImageInput | None = None,
        *,
        timeout_s: float | None = None,
        **inputs: Any,
    ) -> Outcome:
        """Like :meth:`analyze`, returning the job id beside the result."""
        request = _analysis_request(target, image, inputs, timeout_s)
        body = self._send("POST", "/v1/analyze", **request)
        if body.get("status") != "SUCCESS":  # still running after the server's wait
            body["result"] = Job(self, body["job_id"]).result()
        return Outcome(body["job_id"], "SUCCESS", body["result"])

    def submit(
        self,
        target: str,
        image: ImageInput | None = None,
        *,
        timeout_s: float | None = None,
        idempotency_key: str | None = None,
        **inputs: Any,
    ) -> Job:
        """Queue ``plugin.tool`` and return its :class:`Job` at once."""
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        body = self._send(
            "POST",
            "/v1/jobs",
            headers=headers,
            **_analysis_request(target, image, inputs, timeout_s),
        )
        return Job(self, body["job_id"])

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
        body = self._get("/v1/jobs", params=_jobs_params(status, plugin, tool, limit, cursor))
        return [JobInfo.from_view(view) for view in body["jobs"]]


# -- the asynchronous client ---------------------------------------------------------------------


class AsyncJob:
    """A submitted job on the server, for :class:`AsyncClient`."""

    def __init__(self, client: AsyncClient, job_id: str) -> None:
        self.client = client
        self.id = job_id

    def __repr__(self) -> str:
        return f"AsyncJob({self.id!r})"

    async def info(self) -> JobInfo:
        return JobInfo.from_view(await self.client._get(f"/v1/jobs/{self.id}"))

    # `timeout` mirrors the sync client on purpose; asyncio.timeout() works around it too.
    async def progress(self, timeout: float | None = None) -> AsyncIterator[JobInfo]:  # noqa: ASYNC109
        """Each change of status or progress, ending with the finished job."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            remaining = _remaining(deadline)
            if remaining <= 0:
                raise _wait_timeout(self.id, timeout)
            stream = self.client._stream(f"/v1/jobs/{self.id}/stream", remaining)
            try:
                async for event, data in stream:
                    info = JobInfo.from_view(data)
                    yield info
                    if event == "done" or info.terminal:
                        return
            except httpx.ReadTimeout:
                continue  # no news for a while: reopen the stream (it starts with the job)
            finally:
                await stream.aclose()

    async def wait(self, timeout: float | None = None) -> JobInfo:  # noqa: ASYNC109
        updates = [update async for update in self.progress(timeout)]
        return updates[-1]

    async def result(
        self,
        timeout: float | None = None,  # noqa: ASYNC109
        *,
        wait: bool = True,
    ) -> Any:
        if wait:
            await self.wait(timeout)
        return (await self.client._get(f"/v1/jobs/{self.id}/result"))["result"]

    async def cancel(self) -> JobInfo:
        return JobInfo.from_view(await self.client._send("POST", f"/v1/jobs/{self.id}/cancel"))

    async def events(self) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = (await self.client._get(f"/v1/jobs/{self.id}/events"))[
            "events"
        ]
        return events


class AsyncClient:
    """A LensForge server over HTTP (asyncio); the same methods as :class:`Client`, awaited."""

    def __init__(
        self,
        server: str | None = None,
        *,
        api_key: str | None = None,
        timeout: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
        max_connections: int = 100,
    ) -> None:
        self.server = _server_url(server)
        key = api_key if api_key is not None else os.environ.get("LENSFORGE_API_KEY")
        self.timeout = timeout
        self._http = httpx.AsyncClient(
            base_url=self.server,
            headers=_headers(key),
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

    async def _send(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = await self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise _connection_failed(exc, self.server) from exc
        return _checked(response)

    async def _get(self, path: str, **kwargs: Any) -> Any:
        return await self._send("GET", path, **kwargs)

    async def _stream(
        self, path: str, read_timeout: float
    ) -> AsyncGenerator[tuple[str, dict[str, Any]], None]:
        timeout = httpx.Timeout(self.timeout, read=max(read_timeout, 0.01))
        try:
            async with self._http.stream("GET", path, timeout=timeout) as response:
                if response.status_code >= 400:
                    await response.aread()
                    raise _error_from(response)
                parser = _SSE()
                async for line in response.aiter_lines():
                    item = parser.feed(line)
                    if item is not None:
                        yield item
        except httpx.ReadTimeout:
            raise
        except httpx.TransportError as exc:
            raise _connection_failed(exc, self.server) from exc

    async def plugins(self) -> list[dict[str, Any]]:
        plugins: list[dict[str, Any]] = (await self._get("/v1/plugins"))["plugins"]
        return plugins

    async def analyze(
        self,
        target: str,
        image: ImageInput | None = None,
        *,
        timeout_s: float | None = None,
        **inputs: Any,
    ) -> Any:
        return (await self.run(target, image, timeout_s=timeout_s, **inputs)).result

    async def run(
        self,
        target: str,
        image: ImageInput | None = None,
        *,
        timeout_s: float | None = None,
        **inputs: Any,
    ) -> Outcome:
        request = _analysis_request(target, image, inputs, timeout_s)
        body = await self._send("POST", "/v1/analyze", **request)
        if body.get("status") != "SUCCESS":
            body["result"] = await AsyncJob(self, body["job_id"]).result()
        return Outcome(body["job_id"], "SUCCESS", body["result"])

    async def submit(
        self,
        target: str,
        image: ImageInput | None = None,
        *,
        timeout_s: float | None = None,
        idempotency_key: str | None = None,
        **inputs: Any,
    ) -> AsyncJob:
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        request = _analysis_request(target, image, inputs, timeout_s)
        body = await self._send("POST", "/v1/jobs", headers=headers, **request)
        return AsyncJob(self, body["job_id"])

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
        body = await self._get("/v1/jobs", params=_jobs_params(status, plugin, tool, limit, cursor))
        return [JobInfo.from_view(view) for view in body["jobs"]]
