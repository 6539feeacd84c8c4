"""Structured logs: the formatters, the per-request and per-job context, the access log.

Every line carries a stable ``event`` name (``http_request``, ``job_claimed``, ...) beside
the human message, and the context that applies: ``request_id`` and ``key_id`` inside a
request, ``job_id``, ``plugin`` and ``tool`` inside a tool call. Lines are JSON (one object
per line) or text; :func:`configure_logging` picks JSON when stderr is not a terminal.

:class:`RequestContextMiddleware` is a pure ASGI middleware: it gives each request an id
(the caller's ``X-Request-ID`` when it is a plain token, a fresh one otherwise), returns it
in the ``X-Request-ID`` response header, and writes one access line per request with the
route template (never the raw path, which may hold ids), status and duration.
"""

from __future__ import annotations

import logging
import random
import re
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Final, Literal

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

LogFormat = Literal["auto", "json", "text"]

# Context a line picks up without the caller passing it: set per request and per tool call.
_context: ContextVar[dict[str, str] | None] = ContextVar("lensforge_log_context", default=None)

# The attributes every LogRecord has; anything else on a record came from ``extra=``.
_STANDARD: Final = frozenset(
    logging.LogRecord("", 0, "", 0, "", None, None).__dict__.keys()
    | {"message", "asctime", "taskName", "color_message"}  # uvicorn's ANSI-coloured twin
)
_ORDER: Final = ("job_id", "plugin", "tool", "key_id", "request_id")
_HANDLER_MARK: Final = "_lensforge_handler"
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
access_log = logging.getLogger("lensforge.access")


def current_request_id() -> str | None:
    """The id of the request being served here, if any (for error envelopes)."""
    context = _context.get()
    return context.get("request_id") if context else None


@contextmanager
def log_context(**fields: str | None) -> Iterator[None]:
    """Lines logged inside carry ``fields`` (``job_id``, ``plugin``, ``tool``, ...)."""
    added = {k: v for k, v in fields.items() if v is not None}
    token = _context.set({**(_context.get() or {}), **added})
    try:
        yield
    finally:
        _context.reset(token)


def job_context(job_id: str | None, plugin: str, tool: str) -> Any:
    """The context of one tool call: what a tool's ``ctx.logger`` lines carry."""
    return log_context(job_id=job_id, plugin=plugin, tool=tool)


class ContextFilter(logging.Filter):
    """Copies the current request or job context onto each record (``extra=`` wins)."""

    def filter(self, record: logging.LogRecord) -> bool:
        context = _context.get()
        if context:
            for name, value in context.items():
                if not hasattr(record, name):
                    setattr(record, name, value)
        return True


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    """The record's structured fields: the known ones in a fixed order, then the rest."""
    extra = {k: v for k, v in record.__dict__.items() if k not in _STANDARD and k != "event"}
    ordered = {name: extra.pop(name) for name in _ORDER if name in extra}
    return ordered | dict(sorted(extra.items()))


def _timestamp(record: logging.LogRecord) -> str:
    seconds = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
    return f"{seconds}.{int(record.msecs):03d}Z"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, event, message, context, extras, exc."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": _timestamp(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": getattr(record, "event", "log"),
            "message": record.getMessage(),
            **_fields(record),
        }
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exc"] = record.exc_text
        return orjson.dumps(line, default=str).decode()


class TextFormatter(logging.Formatter):
    """``ts LEVEL logger event: message key=value ...`` for a terminal."""

    def format(self, record: logging.LogRecord) -> str:
        pairs = " ".join(f"{k}={v}" for k, v in _fields(record).items())
        text = (
            f"{_timestamp(record)} {record.levelname:<7} {record.name} "
            f"{getattr(record, 'event', 'log')}: {record.getMessage()}"
        )
        text = f"{text} {pairs}" if pairs else text
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


def resolve_format(log_format: LogFormat, stream: Any = None) -> Literal["json", "text"]:
    """``auto`` is JSON unless the stream (stderr by default) is a terminal."""
    if log_format != "auto":
        return log_format
    stream = sys.stderr if stream is None else stream
    isatty = getattr(stream, "isatty", None)
    return "text" if callable(isatty) and isatty() else "json"


def configure_logging(
    level: str = "info", log_format: LogFormat = "auto", stream: Any = None
) -> logging.Handler:
    """Route every log line (LensForge's, uvicorn's, plugins') through one handler on the
    root logger; calling it again replaces that handler. Returns the handler."""
    stream = sys.stderr if stream is None else stream
    handler = logging.StreamHandler(stream)
    handler.setFormatter(
        JsonFormatter() if resolve_format(log_format, stream) == "json" else TextFormatter()
    )
    handler.addFilter(ContextFilter())
    setattr(handler, _HANDLER_MARK, True)
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _HANDLER_MARK, False)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error"):  # uvicorn's lines join ours, in our format
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    logging.getLogger("uvicorn.access").disabled = True  # ours has the route template
    logging.getLogger("alembic").setLevel(max(root.level, logging.WARNING))  # migration chatter
    return handler


class RequestContextMiddleware:
    """Request id in and out (``X-Request-ID``), context for every line, one access line."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _incoming_id(scope) or f"{random.getrandbits(64):016x}"  # unique, not secret
        scope.setdefault("state", {})["request_id"] = request_id
        header = (b"x-request-id", request_id.encode())
        status = 500
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        token = _context.set({**(_context.get() or {}), "request_id": request_id})
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            _context.reset(token)
            if access_log.isEnabledFor(logging.INFO):
                _log_access(scope, request_id, status, time.perf_counter() - started)


def _incoming_id(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            text = value.decode("latin-1")
            return text if _REQUEST_ID.fullmatch(text) else None
    return None


def _log_access(scope: Scope, request_id: str, status: int, seconds: float) -> None:
    route = scope.get("route")
    template = getattr(route, "path", None) or "(no route)"
    caller = scope.get("state", {}).get("caller")
    extra: dict[str, Any] = {"event": "http_request", "request_id": request_id}
    key_id = getattr(caller, "id", None)
    if key_id is not None and key_id != "anonymous":  # anonymous: auth is off
        extra["key_id"] = key_id
    extra.update(
        method=scope["method"],
        route=template,
        status=status,
        duration_ms=round(seconds * 1000, 3),
    )
    # A record made here, not by access_log.info(): that would look up the caller's source
    # line (a stack walk), the largest cost of a line, for a place that is always this one.
    access_log.handle(
        access_log.makeRecord(
            access_log.name,
            logging.INFO,
            __file__,
            0,
            "%s %s %d",
            (scope["method"], template, status),
            None,
            extra=extra,
        )
    )
