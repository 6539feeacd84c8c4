"""multipart/form-data bodies, parsed in one pass over the body held in memory.

Starlette's ``request.form()`` copies every file part into a ``SpooledTemporaryFile`` (to disk
past 1 MiB, on a thread), which costs more than the parse itself; an image upload is read as
bytes at once anyway. Here ``python-multipart`` parses the whole body (already capped by the
body-limit middleware) in one ``write``, and each part is one slice of it.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass, field

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, MultipartState, parse_options_header
from starlette.requests import Request

from lensforge.errors import ValidationError

MAX_FIELD_BYTES = 1024 * 1024  # a text field (not a file) larger than this is refused


@dataclass
class Form:
    """A parsed form: text fields and uploaded files, each in the order sent."""

    fields: list[tuple[str, str]] = field(default_factory=list)
    files: list[tuple[str, bytes]] = field(default_factory=list)


class _Collector:
    """python-multipart callbacks that collect the parts into a :class:`Form`."""

    def __init__(self, charset: str, max_files: int, max_fields: int) -> None:
        self.charset = charset
        self.max_files, self.max_fields = max_files, max_fields
        self.form = Form()
        self._header_name = bytearray()
        self._header_value = bytearray()
        self._disposition = b""
        self._name = ""
        self._is_file = False
        self._chunks: list[bytes] = []
        self._size = 0

    def decode(self, raw: bytes) -> str:
        return raw.decode(self.charset, errors="replace")

    def on_part_begin(self) -> None:
        self._disposition, self._chunks, self._size = b"", [], 0

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def on_header_end(self) -> None:
        if self._header_name.lower() == b"content-disposition":
            self._disposition = bytes(self._header_value)
        self._header_name.clear()
        self._header_value.clear()

    def on_headers_finished(self) -> None:
        _, options = parse_options_header(self._disposition)
        if b"name" not in options:
            raise ValidationError(
                "Every part of a multipart form needs a Content-Disposition header with a name."
            )
        self._name = self.decode(options[b"name"])
        self._is_file = b"filename" in options
        if self._is_file and len(self.form.files) >= self.max_files:
            raise ValidationError(
                f"Too many files in the form (at most {self.max_files}).",
                details={"max_files": self.max_files},
            )
        if not self._is_file and len(self.form.fields) >= self.max_fields:
            raise ValidationError(
                f"Too many fields in the form (at most {self.max_fields}).",
                details={"max_fields": self.max_fields},
            )

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        self._size += end - start
        if not self._is_file and self._size > MAX_FIELD_BYTES:
            raise ValidationError(
                f"Form field '{self._name[:64]}' is larger than {MAX_FIELD_BYTES // 1024} KiB; "
                "send large values as a file part.",
                details={"field": self._name[:64], "max_bytes": MAX_FIELD_BYTES},
            )
        self._chunks.append(data[start:end])

    def on_part_end(self) -> None:
        data = self._chunks[0] if len(self._chunks) == 1 else b"".join(self._chunks)
        if self._is_file:
            self.form.files.append((self._name, data))
        else:
            self.form.fields.append((self._name, self.decode(data)))


async def read_form(request: Request, *, max_files: int, max_fields: int) -> Form:
    """The request's multipart form; :class:`ValidationError` when it is malformed."""
    _, params = parse_options_header(request.headers.get("content-type", ""))
    boundary = params.get(b"boundary")
    if not boundary:
        raise ValidationError("A multipart/form-data body needs a boundary in its Content-Type.")
    charset = params.get(b"charset", b"utf-8").decode("latin-1")
    try:
        charset = codecs.lookup(charset).name
    except LookupError:
        charset = "latin-1"
    collector = _Collector(charset, max_files, max_fields)
    callbacks = {
        "on_part_begin": collector.on_part_begin,
        "on_header_field": collector.on_header_field,
        "on_header_value": collector.on_header_value,
        "on_header_end": collector.on_header_end,
        "on_headers_finished": collector.on_headers_finished,
        "on_part_data": collector.on_part_data,
        "on_part_end": collector.on_part_end,
    }
    body = await request.body()
    try:
        parser = MultipartParser(boundary, callbacks)  # type: ignore[arg-type]
        parser.write(body)
        parser.finalize()
    except FormParserError:
        raise ValidationError("The multipart/form-data body is malformed.") from None
    if parser.state is not MultipartState.END:
        raise ValidationError(
            "The multipart/form-data body ends before its closing boundary "
            f"(--{boundary.decode('latin-1')[:70]}--)."
        )
    return collector.form
