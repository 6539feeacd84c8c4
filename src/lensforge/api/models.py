"""The REST API's bodies as named Pydantic models: what /openapi.json publishes.

Only :class:`AnalyzeRequest` and :class:`NewKey` validate requests. The response models
describe what the routes send (the routes build plain dicts, which these models document);
none is instantiated per request, so describing a response costs nothing on the hot path.
:func:`documented` gives a route its ``responses``: its success bodies and every error it
can answer, each as the one :class:`ErrorEnvelope`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import Path
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field

JOB_ID_PATTERN = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
DIGEST_PATTERN = r"^(?:[sS][hH][aA]256:)?[0-9a-fA-F]{64}$"
KEY_ID_PATTERN = r"^[0-9a-f]{12}$"
JobStatus = Literal["PENDING", "RUNNING", "SUCCESS", "FAILED", "CANCELLED"]

# Path parameters, their patterns documented (not enforced: another value is a 404, as for
# an id that does not exist, or the route's own 422).
JobId = Annotated[
    str, Path(description="A job's id.", json_schema_extra={"pattern": JOB_ID_PATTERN})
]
Digest = Annotated[
    str,
    Path(
        description="A blob's sha256, with or without 'sha256:'.",
        json_schema_extra={"pattern": DIGEST_PATTERN},
    ),
]
KeyId = Annotated[
    str, Path(description="An API key's public id.", json_schema_extra={"pattern": KEY_ID_PATTERN})
]


def operation_id(route: APIRoute) -> str:
    """A route's OpenAPI operationId: its endpoint's name (``get_job``), stable and readable."""
    return route.name


# -- requests ------------------------------------------------------------------------------------


class AnalyzeRequest(BaseModel):
    """A tool call: images as base64 strings (or a :class:`BlobRef`) inside ``inputs``."""

    model_config = ConfigDict(extra="forbid")

    plugin: str = Field(min_length=1, max_length=128, examples=["image"])
    tool: str | None = Field(None, max_length=128, examples=["info"])
    inputs: dict[str, Any] = Field(
        default_factory=dict,
        description="The tool's inputs by name; an image as base64 text or a BlobRef.",
    )
    timeout_s: float | None = Field(None, gt=0, description="Time limit for this job.")


class AnalyzeForm(BaseModel):
    """The same call as a multipart form: the image as a file part, other inputs as JSON."""

    plugin: str
    tool: str | None = None
    image: bytes | None = Field(None, description="The image (or a part named after the input).")
    inputs: str | None = Field(None, description="Other inputs, as a JSON object.")
    timeout_s: float | None = None


class BlobRef(BaseModel):
    """Stored media, by the sha256 of its content: an input, or an image a tool produced."""

    blob: str = Field(pattern=DIGEST_PATTERN, examples=["sha256:" + "0" * 64])


class StoredBlob(BaseModel):
    """An upload as stored: its reference and what it holds (an image's size, a video's
    probed facts)."""

    blob: str = Field(pattern=DIGEST_PATTERN)
    media_type: str
    size: int = Field(description="Bytes stored.")
    kind: Literal["image", "video"]
    image: dict[str, int] | None = Field(None, description="width and height.")
    video: dict[str, Any] | None = Field(
        None, description="container, codec, width, height, fps, duration_s, frame_count, ..."
    )


# A str (not a Literal): what the routes hand on is a list[str]; the pattern is the check.
Scope = Annotated[str, Field(pattern=r"^(read|analyze|admin)$", examples=["read"])]


class NewKey(BaseModel):
    """A key to create; what the schema allows is what the server accepts."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=128)
    scopes: list[Scope] = Field(min_length=1, max_length=3, examples=[["analyze", "read"]])


# -- errors --------------------------------------------------------------------------------------


class ErrorBody(BaseModel):
    code: str = Field(examples=["validation_error"], description="Stable, machine-readable.")
    message: str = Field(description="What went wrong and how to fix it.")
    details: dict[str, Any]
    retryable: bool
    plugin: str | None
    tool: str | None
    job_id: str | None
    request_id: str | None = Field(description="The request's X-Request-ID (HTTP).")
    timestamp: str = Field(examples=["2026-12-05T17:00:00.000Z"])


class ErrorEnvelope(BaseModel):
    """Every error LensForge answers, from any route."""

    error: ErrorBody


class ForgeSyteError(BaseModel):
    """The error shape of the ``/forgesyte`` routes: ForgeSyte's ``detail``, with LensForge's
    ``code`` and envelope body beside it."""

    detail: str
    code: str
    error: dict[str, Any]


# -- jobs ----------------------------------------------------------------------------------------


class JobAccepted(BaseModel):
    """A job that exists and has not finished: poll its ``Location``."""

    job_id: str
    status: JobStatus


class AnalyzeResponse(BaseModel):
    """A finished job's result, shaped by the tool's output schema (GET /v1/plugins)."""

    job_id: str
    status: Literal["SUCCESS"]
    result: Any


class Job(BaseModel):
    id: str
    plugin: str
    tool: str
    status: JobStatus
    progress: float | None
    progress_message: str | None
    attempts: int
    max_attempts: int
    cancel_requested: bool
    created_at: str | None
    updated_at: str | None
    started_at: str | None
    finished_at: str | None
    error: ErrorBody | None = Field(None, description="Only when it failed or was cancelled.")


class JobPage(BaseModel):
    jobs: list[Job]
    next_cursor: str | None = Field(description="Pass as ?cursor= for the next page.")


class JobEvent(BaseModel):
    from_: JobStatus | None = Field(alias="from")
    to: JobStatus
    at: str
    worker: str | None
    reason: str | None


class JobEvents(BaseModel):
    job_id: str
    events: list[JobEvent]


class JobFrame(BaseModel):
    seq: int = Field(description="Position among the job's stored items, from 0.")
    frame: int | None = Field(description="The video frame the item is about, from 0.")
    timestamp_s: float | None
    item: dict[str, Any] = Field(
        description="What the tool stored for this frame (video.analyze: the image tool's "
        "result or error; video.track: the boxes with their track ids)."
    )


class JobFrames(BaseModel):
    job_id: str
    frames: list[JobFrame]
    next_cursor: int | None = Field(description="Pass as ?cursor= for the next page.")


# -- plugins -------------------------------------------------------------------------------------


class Metrics(BaseModel):
    calls: int
    successes: int
    errors: dict[str, int]
    latency_ms: dict[str, float | None]


class ToolResources(BaseModel):
    """What one call needs (Ray resource requests)."""

    cpus: float | None
    gpus: float
    memory_mb: int | None


class ToolManifest(BaseModel):
    name: str
    qualified_name: str
    description: str
    input_schema: dict[str, Any]
    output_schema: dict[str, Any]
    timeout_s: float | None
    retry_on: list[str]
    media_inputs: list[str] = Field(description="Image inputs.")
    video_inputs: list[str] = Field(description="Video inputs (blob references).")
    resources: ToolResources
    long: bool = Field(description="Usually runs long (MCP answers it with a task at once).")
    metrics: Metrics


class PluginManifest(BaseModel):
    name: str
    version: str
    description: str
    state: str = Field(examples=["INITIALIZED"])
    reason: str | None
    metrics: Metrics
    tools: list[ToolManifest]


class PluginList(BaseModel):
    plugins: list[PluginManifest]
    load_errors: dict[str, str]


# -- keys, audit, system -------------------------------------------------------------------------


class KeyInfo(BaseModel):
    id: str
    name: str
    scopes: list[str]
    created_at: float
    revoked_at: float | None


class CreatedKey(KeyInfo):
    key: str = Field(description="The secret: shown this once, never again.")


class KeyList(BaseModel):
    keys: list[KeyInfo]


class RevokedKey(BaseModel):
    id: str
    revoked: Literal[True]


class AuditEvent(BaseModel):
    id: int
    at: str
    event: str
    key_id: str | None
    detail: dict[str, Any]


class AuditPage(BaseModel):
    events: list[AuditEvent]
    next_cursor: int | None


class Health(BaseModel):
    status: Literal["ok"]


class Readiness(BaseModel):
    status: Literal["ready"]
    plugins: dict[str, str] = Field(description="Each plugin's lifecycle state.")


# -- a route's documented answers ----------------------------------------------------------------

_WHY = {
    400: "A body that cannot be parsed as the declared content type.",
    401: "No valid API key (auth on).",
    403: "The API key lacks the scope this route declares.",
    404: "No such job, plugin, tool, blob or key (another tenant's answers the same).",
    405: "The route does not serve this method.",
    409: "The job's state does not allow it (not finished, cancelled, a reused key).",
    413: "The body is larger than the server's limit.",
    415: "The media is in no format this server reads.",
    416: "The Range asked for lies beyond the blob's end.",
    431: "The request's headers are too large or too many.",
    507: "The server's blob storage is full; nothing was stored.",
    422: "The request does not match the route's or the tool's schema.",
    429: "Too many requests for this key; see Retry-After.",
    500: "An unexpected error; quote its request id to the operator.",
    502: "The tool raised, or its worker died.",
    503: "The plugin cannot run here, it ran out of a resource, or the store is down.",
    504: "The tool ran past its time limit.",
}
GUARDED = (401, 403, 429, 500)  # what any non-public route may answer


def documented(
    ok: dict[int, tuple[type[BaseModel], str]], *errors: int, public: bool = False
) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route: its success bodies, then each error it may answer (those
    of every guarded route added unless ``public``), all errors as the ErrorEnvelope."""
    codes = sorted({*errors, *((500,) if public else GUARDED)})
    answers: dict[int | str, dict[str, Any]] = {
        status: {"model": model, "description": why} for status, (model, why) in ok.items()
    }
    answers.update({code: {"model": ErrorEnvelope, "description": _WHY[code]} for code in codes})
    return answers
