"""AnalysisExecutionService: the front door every interface calls.

It resolves the plugin and tool, checks the request's shape (media stored as blobs after a
header-only check, inputs validated against the tool's schema), creates the job, then waits
for it (sync) or returns it at once (async). Synchronous analysis is a job like any other.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import orjson

from lensforge.blobs import Blobs, blob_refs, parse_digest
from lensforge.errors import BlobNotFound, LensForgeError, ValidationError
from lensforge.execution.jobs import JobExecutionService
from lensforge.execution.streams import StreamHub, StreamLimits, StreamSession
from lensforge.execution.uploads import StoredUpload, store_upload
from lensforge.media import MediaLimits, decode_base64, probe
from lensforge.registry import Registry
from lensforge.store import Event, FrameItem, JobRecord, NewJob
from lensforge.tools import ToolSpec
from lensforge.video.probe import probe_video

INLINE_MEDIA_BYTES = 1024 * 1024  # media up to this size is prepared on the event loop


@dataclass
class AnalysisRequest:
    """A call to one tool, as any interface received it."""

    plugin: str
    tool: str | None = None
    inputs: dict[str, Any] = field(default_factory=dict)
    uploads: dict[str, bytes] = field(default_factory=dict)  # raw media bytes by field name
    owner: str = "anonymous"
    admin: bool = True  # may reference any stored blob (auth off, or an admin key)
    idempotency_key: str | None = None
    timeout_s: float | None = None


class AnalysisExecutionService:
    """Turns requests into jobs; the only entry into the execution chain."""

    def __init__(
        self,
        registry: Registry,
        jobs: JobExecutionService,
        blobs: Blobs,
        *,
        limits: MediaLimits,
        max_timeout_s: float,
        sync_wait_s: float,
        default_timeout_s: float | None = None,
        max_input_depth: int = 32,
        max_input_string: int = 1_000_000,
        max_input_keys: int = 1_000,
    ) -> None:
        self.max_input_depth = max_input_depth
        self.max_input_string = max_input_string
        self.max_input_keys = max_input_keys
        self.registry = registry
        self.jobs = jobs
        self.blobs = blobs
        self.limits = limits
        self.max_timeout_s = max_timeout_s
        self.default_timeout_s = max_timeout_s if default_timeout_s is None else default_timeout_s
        self.sync_wait_s = sync_wait_s

    # -- the job operations every interface uses (reads and cancel), by job id --------------

    async def get(self, job_id: str, *, owner: str | None = None) -> JobRecord:
        """The job, or JobNotFound (also for another owner's job when ``owner`` is given)."""
        return await self.jobs.get(job_id, owner=owner)

    async def list_jobs(self, **filters: Any) -> list[JobRecord]:
        return await self.jobs.list_jobs(**filters)

    async def events(self, job_id: str, *, owner: str | None = None) -> list[Event]:
        return await self.jobs.events(job_id, owner=owner)

    def watch(self, job_id: str, *, owner: str | None = None) -> AsyncIterator[JobRecord]:
        return self.jobs.watch(job_id, owner=owner)

    async def wait(
        self, job_id: str, timeout_s: float, *, current: JobRecord | None = None
    ) -> JobRecord:
        return await self.jobs.wait(job_id, timeout_s, current=current)

    async def cancel(
        self, job_id: str, *, owner: str | None = None, wait_s: float = 2.0
    ) -> JobRecord:
        return await self.jobs.cancel(job_id, owner=owner, wait_s=wait_s)

    async def frames(
        self, job_id: str, *, owner: str | None = None, after: int = -1, limit: int = 100
    ) -> list[FrameItem]:
        """A video job's stored per-frame items after ``after`` (a seq), oldest first."""
        return await self.jobs.frames(job_id, owner=owner, after=after, limit=limit)

    async def owns_blob(self, digest: str, owner: str) -> bool:
        return await self.jobs.owns_blob(digest, owner)

    async def upload(self, chunks: AsyncIterable[bytes], owner: str) -> StoredUpload:
        """Stream an upload into the blob store, checked by kind (an image or a video: see
        :mod:`lensforge.execution.uploads`), and make it the caller's."""
        stored = await store_upload(self.blobs, chunks, self.limits)
        await self.jobs.own_blob(parse_digest(stored.blob), owner)
        return stored

    @cached_property
    def streams(self) -> StreamHub:
        """The live frame streams this service opened (their per-key counts and totals)."""
        return StreamHub(self.jobs.plugins.executor, self.blobs, self.limits)

    def open_stream(
        self,
        plugin: str,
        tool: str | None,
        inputs: dict[str, Any],
        *,
        owner: str,
        policy: str = "drop_oldest",
        limits: StreamLimits | None = None,
    ) -> StreamSession:
        """A live frame stream on one image tool (see :mod:`lensforge.execution.streams`):
        frames are tool calls on the executor, not jobs; the stream itself is recorded."""
        spec = self.resolve(plugin, tool)
        try:
            self._check_shape(spec, inputs)
            return self.streams.open(spec, inputs, owner=owner, policy=policy, limits=limits)
        except LensForgeError as exc:
            raise exc.bind(plugin=spec.plugin, tool=spec.name) from None

    async def counts(self) -> dict[str, int]:
        return await self.jobs.counts()

    async def ping(self) -> None:
        await self.jobs.ping()

    @property
    def write_stats(self) -> tuple[int, int]:
        """Store transactions run so far, and the writes they carried (group commit)."""
        return self.jobs.write_stats

    def workers_alive(self) -> int:
        """Worker processes alive (local executor), else how many calls it takes at once."""
        executor = self.jobs.plugins.executor
        pids = getattr(executor, "pids", None)
        if callable(pids):
            return len(pids())
        return int(getattr(executor, "workers", executor.capacity))

    def default_tool(self, plugin: str) -> str:
        """The name of a plugin's first tool (for callers that name only the plugin)."""
        return next(iter(self.registry.get(plugin).tools))

    def resolve(self, plugin: str, tool: str | None) -> ToolSpec:
        spec = self.registry.resolve(plugin, tool)
        self.registry.check_available(spec.plugin)
        return spec

    def prepare(self, request: AnalysisRequest, spec: ToolSpec | None = None) -> NewJob:
        """Everything that can be checked before the job exists; raises on bad input.

        The tool is resolved here, once per call (or given, already resolved), and the job's
        time limit and retry policy are fixed from the request, the tool's declaration and
        the server default: the rest of the chain reads them from the job.
        """
        if spec is None:
            spec = self.resolve(request.plugin, request.tool)
        try:
            self._check_shape(spec, request.inputs)
            inputs = self._store_media(spec, dict(request.inputs), request.uploads)
            spec.validate_inputs(inputs)
            timeout_s = self._timeout(request.timeout_s) or spec.timeout_s or self.default_timeout_s
        except LensForgeError as exc:
            raise exc.bind(plugin=spec.plugin, tool=spec.name) from None
        digest = None  # only an idempotent retry needs to know it is the same request
        if request.idempotency_key is not None:
            digest = hashlib.sha256(
                orjson.dumps(
                    [spec.plugin, spec.name, inputs, timeout_s], option=orjson.OPT_SORT_KEYS
                )
            ).hexdigest()
        return NewJob(
            plugin=spec.plugin,
            tool=spec.name,
            inputs=inputs,
            owner=request.owner,
            max_attempts=spec.max_attempts or 1,
            timeout_s=timeout_s,
            retry_on=tuple(spec.retry_on),
            idempotency_key=request.idempotency_key,
            request_hash=digest,
        )

    async def submit(self, request: AnalysisRequest) -> tuple[JobRecord, bool]:
        """Create the job and return it at once (async analysis)."""
        return await self.jobs.submit(await self._checked(request))

    async def analyze(self, request: AnalysisRequest, wait_s: float | None = None) -> JobRecord:
        """Create the job and wait for it to finish (sync analysis)."""
        wait_s = self.sync_wait_s if wait_s is None else wait_s
        return await self.jobs.submit_and_wait(await self._checked(request), wait_s)

    async def _checked(self, request: AnalysisRequest) -> NewJob:
        if not request.admin:
            for digest in blob_refs(request.inputs):  # a blob named by reference must be yours
                if not await self.jobs.owns_blob(digest, request.owner):
                    raise BlobNotFound(
                        "The inputs name a blob this caller has not uploaded.",
                        details={"blob": f"sha256:{digest}"},
                    )
        return await self._prepare(request)

    async def _prepare(self, request: AnalysisRequest) -> NewJob:
        size = sum(map(len, request.uploads.values())) + sum(
            len(v) for v in request.inputs.values() if isinstance(v, str)
        )
        spec = self.resolve(request.plugin, request.tool)
        if size > INLINE_MEDIA_BYTES or spec.video_fields:  # decoding, probing, writing: a thread
            return await asyncio.to_thread(self.prepare, request, spec)
        return self.prepare(request, spec)  # cheaper here than the hop to a thread

    def _store_media(
        self, spec: ToolSpec, inputs: dict[str, Any], uploads: dict[str, bytes]
    ) -> dict[str, Any]:
        unknown = set(uploads) - set(spec.media_fields) - set(spec.video_fields)
        if unknown:
            raise ValidationError(
                f"Uploaded file field(s) {sorted(unknown)} are not media inputs of this tool; "
                f"its media inputs are {[*spec.media_fields, *spec.video_fields]}.",
                details={"fields": sorted(unknown)},
            )
        for name in spec.video_fields:
            inputs[name] = self._store_video(name, uploads.get(name, inputs.get(name)))
        for name in spec.media_fields:
            value = uploads.get(name, inputs.get(name))
            if isinstance(value, str):
                value = decode_base64(value, field=name)
            if isinstance(value, bytes):
                try:
                    probe(value, self.limits)
                except LensForgeError as exc:
                    exc.details.setdefault("field", name)
                    raise
                inputs[name] = {"blob": self.blobs.put(value)}
            elif isinstance(value, dict) and "blob" in value:
                ref = f"sha256:{parse_digest(str(value['blob']))}"
                inputs[name] = {"blob": ref}  # one canonical spelling from here on
                if not self.blobs.exists(ref):
                    raise BlobNotFound(
                        f"Field '{name}' names a blob this server does not hold.",
                        details={"field": name, "blob": str(value["blob"])[:80]},
                    )
        return inputs

    def _store_video(self, name: str, value: Any) -> Any:
        """A video input: an uploaded file (probed, then stored) or a stored blob (probed
        where it lies, on the local store; an S3 one is probed when its job starts)."""
        try:
            if isinstance(value, bytes):
                with self.blobs.writer(self.limits.video.max_bytes) as writer:
                    writer.write(value)
                    probe_video(writer.path, self.limits.video)
                    return {"blob": writer.commit()}
            if isinstance(value, str):
                raise ValidationError(
                    f"Field '{name}' is a video: upload it (multipart, or POST /v1/blobs) and "
                    'pass {"blob": "sha256:..."}; videos are not sent as base64.'
                )
            if isinstance(value, dict) and "blob" in value:
                ref = f"sha256:{parse_digest(str(value['blob']))}"
                if not self.blobs.exists(ref):
                    raise BlobNotFound(
                        f"Field '{name}' names a blob this server does not hold.",
                        details={"blob": str(value["blob"])[:80]},
                    )
                if self.blobs.location == "local":
                    with self.blobs.local_path(ref) as path:
                        probe_video(path, self.limits.video)
                return {"blob": ref}
        except LensForgeError as exc:
            exc.details.setdefault("field", name)
            raise
        return value  # missing or malformed: the schema check says what is wrong

    def _check_shape(self, spec: ToolSpec, inputs: dict[str, Any]) -> None:
        """Refuse hostile shapes (too many keys, deep nesting, huge strings) before any
        schema work, so a hostile request costs one walk and one short error."""
        keys = 0

        def walk(value: Any, depth: int, path: str) -> None:
            nonlocal keys
            if depth > self.max_input_depth:
                raise ValidationError(
                    f"Inputs nest deeper than {self.max_input_depth} levels (at {path}).",
                    details={"field": path, "max_depth": self.max_input_depth},
                )
            if isinstance(value, dict):
                keys += len(value)
                if keys > self.max_input_keys:
                    raise too_many_keys()
                for key, item in value.items():
                    if len(key) > self.max_input_string:
                        raise ValidationError(
                            f"A key inside {path} is longer than {self.max_input_string} "
                            "characters.",
                            details={"field": path, "max_length": self.max_input_string},
                        )
                    walk(item, depth + 1, f"{path}.{key[:64]}")
            elif isinstance(value, list):
                for index, item in enumerate(value):
                    walk(item, depth + 1, f"{path}[{index}]")
            elif isinstance(value, str) and len(value) > self.max_input_string:
                raise ValidationError(
                    f"Input {path} is longer than {self.max_input_string} characters.",
                    details={"field": path, "max_length": self.max_input_string},
                )

        def too_many_keys() -> ValidationError:
            return ValidationError(
                f"Inputs hold more than {self.max_input_keys} keys; send fewer fields.",
                details={"max_keys": self.max_input_keys},
            )

        keys = len(inputs)
        if keys > self.max_input_keys:
            raise too_many_keys()
        for name, value in inputs.items():
            if name not in spec.media_fields:
                walk(value, 1, name)

    def _timeout(self, requested: float | None) -> float | None:
        if requested is None:
            return None
        if not 0 < requested <= self.max_timeout_s:
            raise ValidationError(
                f"timeout_s must be between 0 and {self.max_timeout_s:g} seconds.",
                details={"timeout_s": requested, "max_timeout_s": self.max_timeout_s},
            )
        return requested
