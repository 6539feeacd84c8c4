""":class:`BaseClient`: everything :class:`Client` and :class:`AsyncClient` share, with no I/O.

Building requests (defaults merged: server URL, API key, headers, time limits), reading
images into multipart uploads, turning responses and error envelopes into values or typed
exceptions. The two clients only send what this builds and hand back what it reads (httpx's
own ``_client.py`` splits its sync and async clients the same way).
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import AsyncIterator, Iterator, Mapping
from pathlib import Path
from typing import Any, Generic, TypeVar

import httpx

from lensforge.client.models import ConnectionFailed, ImageInput, JobInfo, JobResult, VideoInput
from lensforge.errors import LensForgeError, ValidationError, from_envelope

DEFAULT_SERVER = "http://127.0.0.1:8000"
UPLOAD_CHUNK = 1024 * 1024  # a video is read and sent in pieces this size, never whole

ClientT = TypeVar("ClientT", bound="BaseClient")


class BaseClient:
    """The I/O-free half of a LensForge client: what to send, and what an answer means."""

    _http: httpx.Client | httpx.AsyncClient  # set by the subclass

    def __init__(self, server: str | None, *, api_key: str | None, timeout: float) -> None:
        self.server = self._merge_server(server)
        self.timeout = timeout
        self.headers = self._merge_headers(api_key)

    @staticmethod
    def _merge_server(server: str | None) -> str:
        return (server or os.environ.get("LENSFORGE_SERVER") or DEFAULT_SERVER).rstrip("/")

    @staticmethod
    def _merge_headers(api_key: str | None) -> dict[str, str]:
        key = api_key if api_key is not None else os.environ.get("LENSFORGE_API_KEY")
        headers = {"User-Agent": "lensforge-client", "Accept": "application/json"}
        if key:
            headers["Authorization"] = f"Bearer {key}"
        return headers

    # -- requests ---------------------------------------------------------------------------------

    def build_request(self, method: str, path: str, **kwargs: Any) -> httpx.Request:
        """A request to the server, with the client's base URL, headers and time limit."""
        return self._http.build_request(method, path, **kwargs)

    def _analysis_request(
        self,
        path: str,
        target: str,
        image: ImageInput | None,
        inputs: dict[str, Any],
        timeout_s: float | None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Request:
        """POST /v1/analyze or /v1/jobs: JSON, or multipart when there are files to upload."""
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
            return self.build_request("POST", path, json=body, headers=headers)
        form = {"plugin": target, "inputs": json.dumps(fields)}
        if timeout_s is not None:
            form["timeout_s"] = str(timeout_s)
        return self.build_request("POST", path, data=form, files=uploads, headers=headers)

    def _submit_request(
        self,
        target: str,
        image: ImageInput | None,
        inputs: dict[str, Any],
        timeout_s: float | None,
        idempotency_key: str | None,
    ) -> httpx.Request:
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        return self._analysis_request("/v1/jobs", target, image, inputs, timeout_s, headers)

    def _jobs_request(
        self,
        status: str | None,
        plugin: str | None,
        tool: str | None,
        limit: int,
        cursor: str | None,
    ) -> httpx.Request:
        params: dict[str, Any] = {"limit": limit}
        filters = (("status", status), ("plugin", plugin), ("tool", tool), ("cursor", cursor))
        for key, value in filters:
            if value is not None:
                params[key] = value.upper() if key == "status" else value
        return self.build_request("GET", "/v1/jobs", params=params)

    def _blob_request(self, content: Any, size: int | None) -> httpx.Request:
        """POST /v1/blobs with a streamed body (chunks of a file, sync or async)."""
        headers = {"Content-Type": "application/octet-stream"}
        if size is not None:
            headers["Content-Length"] = str(size)
        timeout = httpx.Timeout(self.timeout, write=None, read=None)  # gigabytes may take a while
        return self.build_request(
            "POST", "/v1/blobs", content=content, headers=headers, timeout=timeout
        )

    def _stream_request(self, job_id: str, read_timeout: float) -> httpx.Request:
        timeout = httpx.Timeout(self.timeout, read=max(read_timeout, 0.01))
        return self.build_request("GET", f"/v1/jobs/{job_id}/stream", timeout=timeout)

    # -- responses --------------------------------------------------------------------------------

    def _unreachable(self, exc: httpx.TransportError) -> ConnectionFailed:
        return ConnectionFailed(
            f"Cannot reach the LensForge server at {self.server}: {exc.__class__.__name__}: {exc}",
            details={"server": self.server},
        )

    @staticmethod
    def _checked(response: httpx.Response) -> Any:
        """The response's JSON body; its typed error when the server answered one."""
        if response.status_code >= 400:
            raise _error_from(response)
        return response.json()

    @staticmethod
    def _finished(body: dict[str, Any]) -> JobResult | None:
        """A sync analysis's answer, or None when the job still ran after the server's wait."""
        if body.get("status") != "SUCCESS":
            return None
        return JobResult(body["job_id"], "SUCCESS", body["result"])

    @staticmethod
    def _job_infos(body: dict[str, Any]) -> list[JobInfo]:
        return [JobInfo.from_view(view) for view in body["jobs"]]


FRAMES_PAGE = 1000  # per-frame items read per request (the server's most)


class BaseJob(Generic[ClientT]):
    """A handle on one job of a client's server (no request is made to create it)."""

    def __init__(self, client: ClientT, job_id: str) -> None:
        self.client = client
        self.id = job_id

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.id!r})"

    def _path(self, suffix: str = "") -> str:
        return f"/v1/jobs/{self.id}{suffix}"

    @staticmethod
    def _frames_page(cursor: int | None) -> str:
        """The suffix of one page of a job's stored per-frame items."""
        return f"/frames?limit={FRAMES_PAGE}" + ("" if cursor is None else f"&cursor={cursor}")


def _error_from(response: httpx.Response) -> LensForgeError:
    """The typed error an answer carries (rebuilt from its envelope), or a generic one."""
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


def video_source(video: VideoInput) -> tuple[Any, int | None]:
    """A video to upload: (a binary file open at its start, its size if known). Bytes are
    wrapped; a path is opened (the caller closes what this returns)."""
    if isinstance(video, bytes | bytearray):
        return io.BytesIO(bytes(video)), len(video)
    if isinstance(video, os.PathLike | str):
        path = Path(video)
        try:
            return path.open("rb"), path.stat().st_size
        except OSError as exc:
            raise ValidationError(
                f"Cannot read video file {str(path)!r}: {exc.strerror or exc}.",
                details={"path": str(path)},
            ) from exc
    try:
        size: int | None = os.fstat(video.fileno()).st_size - video.tell()
    except (OSError, AttributeError, ValueError):
        size = None
    return video, size


def file_chunks(file: Any) -> Iterator[bytes]:
    while chunk := file.read(UPLOAD_CHUNK):
        yield bytes(chunk)


async def async_file_chunks(file: Any) -> AsyncIterator[bytes]:
    import asyncio

    while chunk := await asyncio.to_thread(file.read, UPLOAD_CHUNK):
        yield bytes(chunk)


def _is_upload(value: Any) -> bool:
    return isinstance(value, bytes | bytearray | os.PathLike | io.IOBase)


def _read_upload(name: str, value: Any) -> tuple[str, bytes]:
    """(file name, bytes) of an image given as bytes, a path or an open binary file."""
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
