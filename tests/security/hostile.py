"""Hostile inputs, made in code (no fixtures on disk), and what each must get back.

Each :class:`Hostile` case is sent as a multipart upload to ``testing.size`` (or, for the JSON
cases, as a raw body to ``POST /v1/jobs``); ``status`` and ``code`` are the documented answer.
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

from tests.support import png

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _png_chunk(tag: bytes, payload: bytes) -> bytes:
    crc = zlib.crc32(tag + payload) & 0xFFFFFFFF
    return struct.pack(">I", len(payload)) + tag + payload + struct.pack(">I", crc)


@cache
def png_bomb(width: int = 20_000, height: int = 20_000) -> bytes:
    """A real decompression bomb: a 1-bit PNG whose zero rows deflate ~1000:1.

    20000 x 20000 is 400 M pixels (1.2 GB as RGB) in a ~50 KB file.
    """
    row = b"\x00" * (1 + (width + 7) // 8)  # filter byte + packed pixels
    deflate = zlib.compressobj(9)
    idat = b"".join(deflate.compress(row) for _ in range(height)) + deflate.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (
        PNG_MAGIC
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", idat)
        + _png_chunk(b"IEND", b"")
    )


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims huge dimensions and holds almost nothing (a lying header)."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return (
        PNG_MAGIC
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", idat)
        + _png_chunk(b"IEND", b"")
    )


def noisy_jpeg(width: int = 256, height: int = 192) -> bytes:
    """A JPEG of noise (so its entropy-coded data is long, unlike a flat colour's)."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.effect_noise((width, height), 80).convert("RGB").save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def truncated_jpeg() -> bytes:
    """The first 60 % of a JPEG: its header is whole, its scan data is cut short."""
    data = noisy_jpeg()
    return data[: len(data) * 6 // 10]


def polyglot_png_zip_html() -> bytes:
    """A valid PNG with a ZIP archive and an HTML/JS page appended (GIFAR-style)."""
    zip_end = b"PK\x05\x06" + b"\x00" * 18  # an empty ZIP's end-of-central-directory
    html = b"<html><script>alert(document.cookie)</script></html>"
    return png(24, 16) + html + zip_end


def polyglot_gif_js() -> bytes:
    """Starts like a GIF, is really JavaScript (``GIF89a=...`` is valid JS)."""
    return b"GIF89a=1;alert(document.domain);//" + b"\x00" * 32


def html_page() -> bytes:
    return b"<!doctype html><html><body><img src=x onerror=alert(1)></body></html>"


def tiff_pages(pages: int = 5_000, *, loop: bool = False) -> bytes:
    """A little-endian TIFF with ``pages`` 8x8 grey pages sharing one strip.

    With ``loop`` the last page's "next IFD" points back at the first: an endless chain.
    """
    width = height = 8
    strip = bytes(range(64))
    tags = 8
    ifd_size = 2 + tags * 12 + 4
    first_ifd = 8 + len(strip)
    out = bytearray(b"II*\x00" + struct.pack("<I", first_ifd) + strip)
    for page in range(pages):
        following = first_ifd + (page + 1) * ifd_size  # the next page's IFD
        if page + 1 == pages:
            following = first_ifd if loop else 0
        entries = [
            (256, 3, 1, width),  # ImageWidth
            (257, 3, 1, height),  # ImageLength
            (258, 3, 1, 8),  # BitsPerSample
            (259, 3, 1, 1),  # Compression: none
            (262, 3, 1, 1),  # Photometric: black is zero
            (273, 4, 1, 8),  # StripOffsets
            (278, 3, 1, height),  # RowsPerStrip
            (279, 4, 1, len(strip)),  # StripByteCounts
        ]
        out += struct.pack("<H", len(entries))
        for tag, kind, count, value in entries:
            packed = struct.pack("<HI", value, 0)[:4] if kind == 3 else struct.pack("<I", value)
            out += struct.pack("<HHI", tag, kind, count) + packed
        out += struct.pack("<I", following)
    return bytes(out)


def deep_json(depth: int) -> bytes:
    inner = "[" * depth + "]" * depth
    return ('{"plugin":"shapes","tool":"count","inputs":{"data":{"x":' + inner + "}}}").encode()


def invalid_utf8_json() -> bytes:
    return b'{"plugin":"testing","tool":"echo","inputs":{"text":"caf\xc3\x28 \xff\xfe"}}'


@dataclass(frozen=True)
class Hostile:
    """One hostile request: how to build it, and the documented answer."""

    name: str
    build: Callable[[], bytes]
    status: int
    code: str | None
    kind: str = "upload"  # "upload": multipart image; "json": a raw JSON body
    note: str = ""

    @property
    def admitted(self) -> bool:
        """Whether it passes the front door, so a job row is created (and then run)."""
        return self.status == 200 or self.name == "truncated JPEG"


HOSTILE: tuple[Hostile, ...] = (
    Hostile(
        "decompression bomb PNG (20000x20000, ~50 KB)",
        png_bomb,
        413,
        "payload_too_large",
        note="refused from the header, before any decoding",
    ),
    Hostile(
        "PNG header claiming 100000x100000",
        lambda: png_header_only(100_000, 100_000),
        413,
        "payload_too_large",
    ),
    Hostile(
        "truncated JPEG",
        truncated_jpeg,
        422,
        "validation_error",
        note="header is fine; the worker's full decode fails",
    ),
    Hostile(
        "polyglot: PNG + HTML + ZIP",
        polyglot_png_zip_html,
        200,
        None,
        note="handled as the PNG it starts with; served back as image/png",
    ),
    Hostile("polyglot: GIF header + JavaScript", polyglot_gif_js, 422, "validation_error"),
    Hostile("HTML sent as image/png", html_page, 415, "unsupported_media_type"),
    Hostile("zero-byte upload", lambda: b"", 422, "validation_error"),
    Hostile(
        "TIFF with 5000 pages",
        tiff_pages,
        200,
        None,
        note="first page only; pages are never walked",
    ),
    Hostile(
        "TIFF whose IFD chain loops forever",
        lambda: tiff_pages(3, loop=True),
        200,
        None,
        note="first page only",
    ),
    Hostile("invalid UTF-8 in JSON", invalid_utf8_json, 422, "validation_error", kind="json"),
    Hostile(
        "JSON nested 100000 deep",
        lambda: deep_json(100_000),
        422,
        "validation_error",
        kind="json",
        note="the JSON parser's depth limit",
    ),
    Hostile(
        "JSON nested 40 deep (over max_input_depth=32)",
        lambda: deep_json(40),
        422,
        "validation_error",
        kind="json",
        note="the shape check's depth cap",
    ),
)
