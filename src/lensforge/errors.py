"""LensForge's one exception tree and its error envelope.

Every failure, from any layer, is a :class:`LensForgeError` with a stable machine-readable
``code``, an HTTP ``status`` and a message that says how to fix the problem. Every interface
renders it as the same envelope::

    {"error": {"code": "validation_error", "message": "...", "details": {...},
               "plugin": "qr", "tool": "decode", "job_id": "...", "request_id": "...",
               "timestamp": "...Z"}}
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar


def utc_timestamp(at: float | None = None) -> str:
    """An ISO-8601 UTC timestamp with millisecond precision and a ``Z`` suffix."""
    moment = datetime.now(UTC) if at is None else datetime.fromtimestamp(at, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class LensForgeError(Exception):
    """Root of every error LensForge raises on purpose."""

    code: ClassVar[str] = "internal_error"
    status: ClassVar[int] = 500
    retryable: ClassVar[bool] = False
    default_message: ClassVar[str] = "An internal error occurred; the server log has the details."

    def __init__(
        self,
        message: str | None = None,
        *,
        details: dict[str, Any] | None = None,
        plugin: str | None = None,
        tool: str | None = None,
        job_id: str | None = None,
    ) -> None:
        self.message = message or self.default_message
        self.details = details or {}
        self.plugin = plugin
        self.tool = tool
        self.job_id = job_id
        self.request_id: str | None = None  # the HTTP request that met it (its X-Request-ID)
        self.headers: dict[str, str] = {}  # extra HTTP headers (Retry-After)
        super().__init__(self.message)

    def envelope(self) -> dict[str, Any]:
        """The error as the envelope every interface returns."""
        return {
            "error": {
                "code": self.code,
                "message": self.message,
                "details": self.details,
                "retryable": self.retryable,
                "plugin": self.plugin,
                "tool": self.tool,
                "job_id": self.job_id,
                "request_id": self.request_id,
                "timestamp": utc_timestamp(),
            }
        }

    def bind(
        self, *, plugin: str | None = None, tool: str | None = None, job_id: str | None = None
    ) -> LensForgeError:
        """Fill in context that the raiser did not know, keeping what it did."""
        self.plugin = self.plugin or plugin
        self.tool = self.tool or tool
        self.job_id = self.job_id or job_id
        return self


class ValidationError(LensForgeError):
    code = "validation_error"
    status = 422
    default_message = "The request does not match the tool's input schema; see details."

    MAX_LISTED: ClassVar[int] = 20  # problems listed in one error; the rest only counted

    @classmethod
    def of_problems(
        cls, what: str, problems: list[dict[str, Any]], **context: Any
    ) -> ValidationError:
        """One error for a list of ``{field, message, type}`` problems: "Invalid inputs:
        a: ...; b: ...", listing at most :attr:`MAX_LISTED` of them (a hostile request with
        a million bad keys must not produce a million-line answer)."""
        listed = problems[: cls.MAX_LISTED]
        message = f"Invalid {what}: " + "; ".join(f"{p['field']}: {p['message']}" for p in listed)
        details: dict[str, Any] = {"errors": listed}
        if len(problems) > len(listed):
            message += f"; and {len(problems) - len(listed)} more"
            details["total_errors"] = len(problems)
        return cls(message, details=details, **context)


def pydantic_problems(errors: list[Any], root: str) -> list[dict[str, Any]]:
    """Pydantic's ``exc.errors()`` as ``{field, message, type}`` problems; ``root`` names
    the whole value (``"(inputs)"``, ``"(body)"``) when an error has no location."""
    return [
        {
            "field": ".".join(str(part) for part in err.get("loc", ())) or root,
            "message": err.get("msg", ""),
            "type": err.get("type"),
        }
        for err in errors
    ]


class PluginNotFound(LensForgeError):
    code = "plugin_not_found"
    status = 404
    default_message = "No such plugin; GET /v1/plugins lists the enabled ones."


class ToolNotFound(LensForgeError):
    code = "tool_not_found"
    status = 404
    default_message = "No such tool; GET /v1/plugins/{plugin} lists the plugin's tools."


class JobNotFound(LensForgeError):
    code = "job_not_found"
    status = 404
    default_message = "No such job; GET /v1/jobs lists your jobs."


class BlobNotFound(LensForgeError):
    code = "blob_not_found"
    status = 404
    default_message = "No such blob; blobs are addressed by the sha256 of their content."


class NotFound(LensForgeError):
    code = "not_found"
    status = 404
    default_message = "No such route; GET /docs lists the API."


class MethodNotAllowed(LensForgeError):
    code = "method_not_allowed"
    status = 405
    default_message = "This route does not accept that method; GET /docs lists the API."


class PluginUnavailable(LensForgeError):
    code = "plugin_unavailable"
    status = 503
    default_message = "The plugin is installed but cannot run here; its manifest says why."


class PluginError(LensForgeError):
    code = "plugin_error"
    status = 502
    default_message = "The tool failed while running; the job's error details say how."


class ToolError(Exception):
    """Raised by a tool to tell its caller what went wrong, in the tool's own words.

    Any other exception a tool raises reaches callers as ``plugin_error`` with only its type
    (its text may hold paths or secrets; it stays in the job's record and the log). A
    ``ToolError``'s message is shown to callers as it is, so write it for them::

        raise ToolError("The image holds no page; photograph the whole sheet.")
    """

    def __init__(self, message: str, *, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}


class Timeout(LensForgeError):
    code = "timeout"
    status = 504
    default_message = "The tool ran past its time limit; raise timeout_s or send a smaller input."


class Cancelled(LensForgeError):
    code = "cancelled"
    status = 409
    default_message = "The job was cancelled before it finished."


class WorkerLost(LensForgeError):
    code = "worker_lost"
    status = 502
    retryable = True
    default_message = "The worker running the job died (crash or kill); it may succeed on retry."


class ResourceExhausted(LensForgeError):
    code = "resource_exhausted"
    status = 503
    default_message = "The tool ran out of memory or another resource limit."


class ResultNotReady(LensForgeError):
    code = "result_not_ready"
    status = 409
    default_message = "The job has not finished yet; poll GET /v1/jobs/{id} or wait on its stream."


class Conflict(LensForgeError):
    code = "conflict"
    status = 409
    default_message = "The request conflicts with the resource's current state."


class IllegalTransition(Conflict):
    code = "illegal_transition"
    default_message = "The job is not in a state that allows this change."


class PayloadTooLarge(LensForgeError):
    code = "payload_too_large"
    status = 413
    default_message = "The request body is larger than the server accepts; send a smaller image."


class UnsupportedMediaType(LensForgeError):
    code = "unsupported_media_type"
    status = 415
    default_message = "The media type is not supported; send PNG, JPEG, GIF, BMP, TIFF or WebP."


class Unauthorized(LensForgeError):
    code = "unauthorized"
    status = 401
    default_message = "An API key is required: send 'Authorization: Bearer <key>'."


class Forbidden(LensForgeError):
    code = "forbidden"
    status = 403
    default_message = "Your API key lacks the scope this action needs."


class RateLimited(LensForgeError):
    code = "rate_limited"
    status = 429
    retryable = True
    default_message = "Too many requests; retry after the time in the Retry-After header."


class HeadersTooLarge(LensForgeError):
    code = "headers_too_large"
    status = 431
    default_message = "The request's headers are too large or too many; send fewer, smaller ones."


class StorageFull(LensForgeError):
    code = "storage_full"
    status = 507
    retryable = True
    default_message = "The server's blob storage is full; nothing was stored. Retry later."


class StoreError(LensForgeError):
    code = "store_unavailable"
    status = 503
    retryable = True
    default_message = "The job store could not be reached; try again shortly."
    retry_after_s: ClassVar[int] = 2

    def __init__(self, message: str | None = None, **context: Any) -> None:
        super().__init__(message, **context)
        self.headers = {"Retry-After": str(self.retry_after_s)}


class InternalError(LensForgeError):
    """An unexpected exception, masked: its traceback goes to the log, never to a caller."""


class RegistrationError(LensForgeError):
    """A plugin failed validation at registration; the message names the plugin and the tool."""

    code = "registration_error"


ERROR_CLASSES: dict[str, type[LensForgeError]] = {
    cls.code: cls
    for cls in (
        ValidationError,
        PluginNotFound,
        ToolNotFound,
        JobNotFound,
        BlobNotFound,
        NotFound,
        MethodNotAllowed,
        PluginUnavailable,
        PluginError,
        Timeout,
        Cancelled,
        WorkerLost,
        ResourceExhausted,
        ResultNotReady,
        Conflict,
        IllegalTransition,
        PayloadTooLarge,
        UnsupportedMediaType,
        Unauthorized,
        Forbidden,
        RateLimited,
        StoreError,
        InternalError,
        RegistrationError,
    )
}


def status_for(code: str) -> int:
    """The HTTP status for an error code (500 for codes this server does not know)."""
    cls = ERROR_CLASSES.get(code)
    return cls.status if cls else 500


def from_envelope(envelope: dict[str, Any]) -> LensForgeError:
    """Rebuild the typed error from a stored or received envelope."""
    body = envelope.get("error", envelope)
    cls = ERROR_CLASSES.get(body.get("code", ""), InternalError)
    return cls(
        body.get("message"),
        details=body.get("details") or {},
        plugin=body.get("plugin"),
        tool=body.get("tool"),
        job_id=body.get("job_id"),
    )
