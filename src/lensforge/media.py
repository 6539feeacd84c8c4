"""Media input types and their guarded decoding.

Callers send an image as base64, a multipart upload or a blob reference; the front door
stores the bytes as a blob and the job holds ``{"blob": "sha256:..."}``. The ToolRunner
decodes that reference into an :class:`Image` with every check applied before a tool sees it:
byte cap, format sniffed from the bytes (never trusted from a header or filename), pixel cap
against decompression bombs (checked from the header, before decoding), full decode (a truncated
file fails here), EXIF orientation applied.
"""

from __future__ import annotations

import binascii
import io
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import core_schema

from lensforge.blobs import parse_digest
from lensforge.errors import PayloadTooLarge, UnsupportedMediaType, ValidationError
from lensforge.video.media import Video
from lensforge.video.probe import VideoLimits

if TYPE_CHECKING:
    import numpy as np
    from PIL.Image import Image as PILImage

# Magic numbers of the formats we accept, and the Pillow plugin that reads each.
_SIGNATURES: tuple[tuple[bytes, int, str, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", 0, "PNG", "image/png"),
    (b"\xff\xd8\xff", 0, "JPEG", "image/jpeg"),
    (b"GIF87a", 0, "GIF", "image/gif"),
    (b"GIF89a", 0, "GIF", "image/gif"),
    (b"BM", 0, "BMP", "image/bmp"),
    (b"II*\x00", 0, "TIFF", "image/tiff"),
    (b"MM\x00*", 0, "TIFF", "image/tiff"),
    (b"WEBP", 8, "WEBP", "image/webp"),
)
SUPPORTED_MEDIA_TYPES = sorted({media_type for *_, media_type in _SIGNATURES})


def sniff(data: bytes) -> tuple[str, str]:
    """(Pillow format, media type) read from the leading bytes, or UnsupportedMediaType."""
    for magic, offset, fmt, media_type in _SIGNATURES:
        if data[offset : offset + len(magic)] == magic and (fmt != "WEBP" or data[:4] == b"RIFF"):
            return fmt, media_type
    if not data:
        raise ValidationError("The image is empty (zero bytes).")
    raise UnsupportedMediaType(
        "The bytes are not an image in a supported format "
        f"({', '.join(SUPPORTED_MEDIA_TYPES)}); the format is read from the bytes themselves.",
        details={"supported": SUPPORTED_MEDIA_TYPES},
    )


def decode_base64(value: str, *, field: str) -> bytes:
    """Strict base64 (a ``data:...;base64,`` prefix is allowed); a clear error otherwise."""
    if value.startswith("data:"):
        _, _, value = value.partition(",")
    try:
        try:  # strict, in C: the common case costs one pass over the text
            return binascii.a2b_base64(value, strict_mode=True)
        except binascii.Error:  # line breaks (MIME style) are allowed: drop them, once
            return binascii.a2b_base64("".join(value.split()), strict_mode=True)
    except (binascii.Error, ValueError):
        raise ValidationError(
            f"Field '{field}' is not valid base64; send the file's bytes base64-encoded.",
            details={"field": field},
        ) from None


@dataclass(frozen=True)
class MediaLimits:
    """What the ToolRunner and the front door accept: images, and videos (``video``)."""

    max_bytes: int = 20 * 1024 * 1024
    max_pixels: int = 50_000_000
    video: VideoLimits = field(default_factory=VideoLimits)


def _open(data: bytes, fmt: str, limits: MediaLimits) -> PILImage:
    """Open and read only the header; refuse oversized files and images before decoding."""
    from PIL import Image as PILImageModule

    if len(data) > limits.max_bytes:
        raise PayloadTooLarge(
            f"The image is {len(data)} bytes; the limit is {limits.max_bytes}.",
            details={"bytes": len(data), "max_bytes": limits.max_bytes},
        )
    try:
        img = PILImageModule.open(io.BytesIO(data), formats=[fmt])
    except (PILImageModule.DecompressionBombError, PILImageModule.DecompressionBombWarning):
        raise PayloadTooLarge(
            "The image's dimensions are too large to decode safely.",
            details={"max_pixels": limits.max_pixels},
        ) from None
    except Exception:
        raise ValidationError(
            f"The bytes look like {fmt} but its header cannot be read; the file is corrupt."
        ) from None
    pixels = img.width * img.height
    if pixels > limits.max_pixels:
        raise PayloadTooLarge(
            f"The image is {img.width}x{img.height} ({pixels} pixels); "
            f"the limit is {limits.max_pixels} pixels.",
            details={"width": img.width, "height": img.height, "max_pixels": limits.max_pixels},
        )
    return img


def probe(data: bytes, limits: MediaLimits) -> tuple[str, int, int]:
    """Cheap front-door check from the header alone: (media type, width, height)."""
    fmt, media_type = sniff(data)
    img = _open(data, fmt, limits)
    return media_type, img.width, img.height


def _turned(exif: Any) -> bool:
    """Whether the EXIF orientation asks for the pixels to be turned or flipped."""
    return exif.get(_ORIENTATION, 1) not in (1, None)


_ORIENTATION = 0x0112


class Image:
    """A decoded, checked image handed to a tool.

    ``pil`` is the Pillow image with EXIF orientation applied (first frame of multi-frame
    files); ``data`` the original bytes; ``array()`` a NumPy copy for OpenCV-style libraries.
    As a tool parameter type it accepts base64, a multipart upload or a blob reference.
    """

    def __init__(
        self,
        pil: PILImage,
        *,
        data: bytes | None,
        format: str,
        media_type: str,
        exif: Any = None,
    ) -> None:
        self.pil = pil
        self._data = data
        self.format = format
        self.media_type = media_type
        if exif is not None:
            self.__dict__["exif"] = exif  # read while decoding: no second pass over the file

    @property
    def data(self) -> bytes:
        """The encoded file: the original bytes, or a PNG of the pixels for an image made
        in memory (a video frame), encoded the first time it is asked for."""
        if self._data is None:
            buffer = io.BytesIO()
            self.pil.save(buffer, format="PNG")
            self._data = buffer.getvalue()
        return self._data

    @property
    def width(self) -> int:
        return int(self.pil.width)

    @property
    def height(self) -> int:
        return int(self.pil.height)

    @property
    def mode(self) -> str:
        return str(self.pil.mode)

    @cached_property
    def exif(self) -> Any:
        """The EXIF tags of the original file (a ``PIL.Image.Exif``: tag number to value)."""
        from PIL import Image as PILImageModule

        return PILImageModule.open(io.BytesIO(self.data)).getexif()

    def array(self, mode: str = "RGB") -> np.ndarray:
        """The pixels as a NumPy array (height, width, channels) in ``mode``."""
        import numpy as np

        img = self.pil if self.pil.mode == mode else self.pil.convert(mode)
        return np.asarray(img)

    @classmethod
    def decode(cls, data: bytes, limits: MediaLimits | None = None) -> Image:
        """Decode bytes with every check applied (see the module docstring)."""
        from PIL import ImageOps

        limits = limits or MediaLimits()
        fmt, media_type = sniff(data)
        img = _open(data, fmt, limits)
        try:
            img.load()
            exif = img.getexif()  # the original tags (a PNG's may follow its pixels)
            oriented = ImageOps.exif_transpose(img, in_place=False) if _turned(exif) else img
        except Exception:
            raise ValidationError(
                f"The {fmt} image is truncated or corrupt and cannot be decoded."
            ) from None
        return cls(oriented, data=data, format=fmt, media_type=media_type, exif=exif)

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: type[Any], handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        # Inside a job an image is a blob reference; the ToolRunner swaps it for an Image.
        return core_schema.no_info_plain_validator_function(_validate_media_ref)

    @classmethod
    def __get_pydantic_json_schema__(
        cls, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return IMAGE_JSON_SCHEMA


IMAGE_JSON_SCHEMA: dict[str, Any] = {
    "title": "Image",
    "description": "An image: base64 bytes, or a reference to a stored blob.",
    "anyOf": [
        {"type": "string", "contentEncoding": "base64", "contentMediaType": "image/*"},
        {
            "type": "object",
            "properties": {"blob": {"type": "string", "pattern": "^sha256:[0-9a-f]{64}$"}},
            "required": ["blob"],
        },
    ],
    "x-lensforge-media": "image",
}


@dataclass(frozen=True)
class MediaRef:
    """A reference to media stored in the blob store, as held in a job's inputs."""

    blob: str


def _validate_media_ref(value: Any) -> MediaRef | Image:
    if isinstance(value, Image | MediaRef):
        return value
    if isinstance(value, dict) and set(value) <= {"blob", "media_type"} and "blob" in value:
        return MediaRef(f"sha256:{parse_digest(value['blob'])}")
    raise ValueError("expected an image: base64 bytes or {'blob': 'sha256:<hex>'}")


def is_media_schema(schema: dict[str, Any]) -> bool:
    """Whether a property's JSON Schema declares an image input."""
    if schema.get("x-lensforge-media") == "image":
        return True
    media = schema.get("contentMediaType", "")
    return isinstance(media, str) and media.startswith("image/")


__all__ = [
    "IMAGE_JSON_SCHEMA",
    "Image",
    "MediaLimits",
    "MediaRef",
    "Video",
    "VideoLimits",
    "decode_base64",
    "is_media_schema",
    "probe",
    "sniff",
]
