"""The ``image`` plugin: facts about an image (format, size, colour, EXIF)."""

from __future__ import annotations

from pydantic import BaseModel, Field

from lensforge.media import Image
from lensforge.plugin import Plugin, tool

# EXIF tag numbers (TIFF/EXIF specification)
_ORIENTATION, _MAKE, _MODEL, _DATETIME = 0x0112, 0x010F, 0x0110, 0x0132
_EXIF_IFD, _DATETIME_ORIGINAL = 0x8769, 0x9003


class Exif(BaseModel):
    orientation: int | None = Field(None, description="EXIF orientation (1-8) of the file.")
    make: str | None = Field(None, description="Camera maker.")
    model: str | None = Field(None, description="Camera model.")
    timestamp: str | None = Field(None, description="When the picture was taken (EXIF text).")


class ImageInfo(BaseModel):
    format: str = Field(description="Format read from the bytes: PNG, JPEG, GIF, BMP, TIFF, WEBP.")
    media_type: str
    width: int = Field(description="Width in pixels, after EXIF orientation.")
    height: int = Field(description="Height in pixels, after EXIF orientation.")
    mode: str = Field(description="Pillow mode of the decoded image (RGB, RGBA, L, ...).")
    file_size: int = Field(description="Size of the encoded file in bytes.")
    mean_color: list[float] = Field(description="Mean red, green and blue, 0-255.")
    exif: Exif


def _text(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return str(value).strip("\x00 ") or None


class ImagePlugin(Plugin):
    """Facts about images: format, dimensions, colour and camera metadata."""

    name = "image"
    version = "1.0.0"

    @tool(timeout_s=10)
    def info(self, image: Image) -> ImageInfo:
        """Format, width, height, mode, file size, mean colour and the EXIF essentials."""
        from PIL import ImageStat

        exif = image.exif
        sub = exif.get_ifd(_EXIF_IFD)
        rgb = image.pil.convert("RGB")
        mean = ImageStat.Stat(rgb).mean
        orientation = exif.get(_ORIENTATION)
        return ImageInfo(
            format=image.format,
            media_type=image.media_type,
            width=image.width,
            height=image.height,
            mode=image.mode,
            file_size=len(image.data),
            mean_color=[round(float(c), 2) for c in mean[:3]],
            exif=Exif(
                orientation=int(orientation) if isinstance(orientation, int) else None,
                make=_text(exif.get(_MAKE)),
                model=_text(exif.get(_MODEL)),
                timestamp=_text(sub.get(_DATETIME_ORIGINAL) or exif.get(_DATETIME)),
            ),
        )
