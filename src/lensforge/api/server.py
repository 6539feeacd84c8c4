"""Serving the app with uvicorn, with limits on what a connection may send before the app.

uvicorn's default HTTP parser (httptools) accepts request heads of any size: a client could
send a 200 MB header, which is read whole (and authentication, which needs the headers, only
runs after it). :class:`BoundedHttpToolsProtocol` counts a request's head as it arrives and
answers ``431`` (the error envelope, ``headers_too_large``) as soon as it passes
``max_header_bytes`` or ``max_headers`` fields, closing the connection; nothing past the
limit is buffered. Bodies are capped later, by the app (``BodyLimitMiddleware``).
"""

from __future__ import annotations

from typing import Any

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from lensforge.errors import HeadersTooLarge
from lensforge.logs import configure_logging
from lensforge.settings import Settings

STATUS_LINE = b"HTTP/1.1 431 Request Header Fields Too Large\r\n"


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """httptools' protocol with a cap on each request's head (see the module docstring)."""

    max_header_bytes = 64 * 1024
    max_headers = 100

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_head = True  # between a message's start and the end of its headers
        self._head_bytes = 0
        self._fields = 0
        self._refused = False

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        if self._in_head:
            self._head_bytes += len(data)
        super().data_received(data)
        # Still in the head after this chunk (a head that ended inside it is within limits).
        if self._in_head and (
            self._head_bytes > self.max_header_bytes or self._fields > self.max_headers
        ):
            self._refuse()

    def on_header(self, name: bytes, value: bytes) -> None:
        self._fields += 1
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        if self._fields > self.max_headers:  # many small fields in one chunk
            self._refuse()
            return
        self._in_head = False
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._in_head, self._head_bytes, self._fields = True, 0, 0

    def _refuse(self) -> None:
        self._refused = True
        error = HeadersTooLarge(
            f"The request head passed {self.max_header_bytes} bytes or "
            f"{self.max_headers} header fields.",
            details={"max_header_bytes": self.max_header_bytes, "max_headers": self.max_headers},
        )
        body = orjson.dumps(error.envelope())
        self.transport.write(
            STATUS_LINE
            + b"content-type: application/json\r\n"
            + b"content-length: "
            + str(len(body)).encode()
            + b"\r\nconnection: close\r\n\r\n"
            + body
        )
        self.transport.close()


def protocol_for(settings: Settings) -> type[BoundedHttpToolsProtocol]:
    """The protocol class with this server's limits."""
    return type(
        "BoundedHttpToolsProtocol",
        (BoundedHttpToolsProtocol,),
        {"max_header_bytes": settings.max_header_bytes, "max_headers": settings.max_headers},
    )


def run_server(app: Any, settings: Settings, *, log_level: str | None = None) -> None:
    """Serve ``app`` on ``settings.host:port`` until interrupted."""
    import uvicorn

    level = (log_level or settings.log_level).lower()
    configure_logging(level, settings.log_format)
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        http=protocol_for(settings),
        log_level=level,
        log_config=None,  # uvicorn's lines go through LensForge's handler (lensforge.logs)
        access_log=False,  # LensForge's access line has the route template
    )
