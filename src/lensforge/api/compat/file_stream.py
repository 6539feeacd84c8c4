"""FileStream: the one file part of a ``multipart/form-data`` body, read as it arrives.

:func:`lensforge.api.multipart.read_form` parses a body held whole in memory, which suits an
image. A video may be gigabytes: here the body is fed to ``python-multipart`` chunk by chunk
as the server receives it, and the named file part's bytes are handed on (to the blob
store's writer) as soon as they are parsed, so no more than a chunk is ever held. Text parts
are skipped (bounded in size and number); a second file, or a file under another name, is
refused.
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, MultipartState, parse_options_header
from starlette.requests import Request

from lensforge.api.multipart import MAX_FIELD_BYTES
from lensforge.errors import ValidationError

MAX_TEXT_PARTS = 16


class FileStream:
    """The bytes of file part ``name`` of ``request``'s form; iterate :meth:`chunks` once."""

    def __init__(self, request: Request, name: str = "file") -> None:
        self.request = request
        self.name = name
        self.found = False
        self._ready: deque[bytes] = deque()
        self._header_name = bytearray()
        self._header_value = bytearray()
        self._disposition = b""
        self._capturing = False
        self._text_parts = 0
        self._text_size = 0

    async def chunks(self) -> AsyncIterator[bytes]:
        """The file's bytes, chunk by chunk; ValidationError for a malformed form or one
        without the file."""
        _, params = parse_options_header(self.request.headers.get("content-type", ""))
        boundary = params.get(b"boundary")
        if not boundary:
            raise ValidationError(
                "The body must be multipart/form-data (with a boundary) holding the file "
                f"as a field named '{self.name}'."
            )
        callbacks = {
            "on_part_begin": self._part_begin,
            "on_header_field": self._header_field,
            "on_header_value": self._header_value_part,
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._part_data,
            "on_part_end": self._part_end,
        }
        parser = MultipartParser(boundary, callbacks)  # type: ignore[arg-type]
        try:
            async for chunk in self.request.stream():
                parser.write(chunk)
                while self._ready:
                    yield self._ready.popleft()
            parser.finalize()
        except FormParserError:
            raise ValidationError("The multipart/form-data body is malformed.") from None
        while self._ready:
            yield self._ready.popleft()
        if parser.state is not MultipartState.END:
            raise ValidationError("The multipart/form-data body ends before its closing boundary.")
        if not self.found:
            raise ValidationError(f"The form needs the file as a field named '{self.name}'.")

    # -- python-multipart callbacks ---------------------------------------------------------

    def _part_begin(self) -> None:
        self._disposition, self._capturing, self._text_size = b"", False, 0

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def _header_value_part(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _header_end(self) -> None:
        if self._header_name.lower() == b"content-disposition":
            self._disposition = bytes(self._header_value)
        self._header_name.clear()
        self._header_value.clear()

    def _headers_finished(self) -> None:
        _, options = parse_options_header(self._disposition)
        name = options.get(b"name", b"").decode("utf-8", errors="replace")
        if b"filename" not in options:
            self._text_parts += 1
            if self._text_parts > MAX_TEXT_PARTS:
                raise ValidationError(f"Too many fields in the form (at most {MAX_TEXT_PARTS}).")
            return
        if name != self.name or self.found:
            raise ValidationError(
                f"The form takes one file, as a field named '{self.name}' "
                f"(got {'another' if self.found else 'one named'} '{name[:64]}')."
            )
        self.found = self._capturing = True

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._capturing:
            self._ready.append(bytes(data[start:end]))
            return
        self._text_size += end - start
        if self._text_size > MAX_FIELD_BYTES:
            raise ValidationError(
                f"A form field is larger than {MAX_FIELD_BYTES // 1024} KiB.",
                details={"max_bytes": MAX_FIELD_BYTES},
            )

    def _part_end(self) -> None:
        self._capturing = False


__all__ = ["FileStream"]
