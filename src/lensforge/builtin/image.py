"""The ``image`` plugin: facts about an image (format, size, colours, EXIF), perceptual
hashes and near-duplicate comparison, and quality measures (sharpness, exposure, noise).

Heavy libraries (NumPy, imagehash) are imported in ``setup()`` and inside the tools, never
at import time: the API process loads this class only to read its schemas.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from pydantic import BaseModel, Field

from lensforge.builtin.hashing import (
    DEFAULT_COMPARE,
    DEFAULT_THRESHOLD,
    HashAlgorithm,
    HashSize,
    ImageComparison,
    ImageHashes,
    compare_images,
    hash_image,
)
from lensforge.builtin.quality import QualityReport, QualityThresholds, assess
from lensforge.media import Image
from lensforge.plugin import Plugin, tool

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage

# EXIF tag numbers (TIFF/EXIF specification)
_ORIENTATION, _MAKE, _MODEL, _DATETIME = 0x0112, 0x010F, 0x0110, 0x0132
_EXIF_IFD, _DATETIME_ORIGINAL = 0x8769, 0x9003


class Exif(BaseModel):
    orientation: int | None = Field(None, description="EXIF orientation (1-8) of the file.")
    make: str | None = Field(None, description="Camera maker.")
    model: str | None = Field(None, description="Camera model.")
    timestamp: str | None = Field(None, description="When the picture was taken (EXIF text).")


class DominantColor(BaseModel):
    rgb: list[int] = Field(min_length=3, max_length=3, description="Red, green, blue, 0-255.")
    hex: str = Field(pattern=r"^#[0-9a-f]{6}$", description="The colour as #rrggbb.")
    share: float = Field(ge=0, le=1, description="Share of the image's pixels it stands for.")


class ImageInfo(BaseModel):
    format: str = Field(description="Format read from the bytes: PNG, JPEG, GIF, BMP, TIFF, WEBP.")
    media_type: str
    width: int = Field(description="Width in pixels, after EXIF orientation.")
    height: int = Field(description="Height in pixels, after EXIF orientation.")
    mode: str = Field(description="Pillow mode of the decoded image (RGB, RGBA, L, ...).")
    file_size: int = Field(description="Size of the encoded file in bytes.")
    mean_color: list[float] = Field(description="Mean red, green and blue, 0-255.")
    dominant_colors: list[DominantColor] = Field(
        description="The main colours (median-cut quantisation of a 128 px thumbnail), "
        "largest share first."
    )
    exif: Exif


def _text(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return str(value).strip("\x00 ") or None


def dominant_colors(rgb: PILImage, count: int) -> list[DominantColor]:
    """The ``count`` main colours of an RGB image, largest share first."""
    from PIL import Image as PILImageModule

    small = rgb.copy()
    small.thumbnail((128, 128), PILImageModule.Resampling.BOX)
    quantized = small.quantize(colors=count, method=PILImageModule.Quantize.MEDIANCUT)
    palette = quantized.getpalette() or []
    counts = sorted(quantized.getcolors(maxcolors=256) or [], key=lambda c: (-c[0], c[1]))
    total = small.width * small.height
    colors = []
    for pixels, index in counts:
        assert isinstance(index, int)  # a palette index: the image is in mode P
        r, g, b = (int(v) for v in palette[index * 3 : index * 3 + 3])
        colors.append(
            DominantColor(rgb=[r, g, b], hex=f"#{r:02x}{g:02x}{b:02x}", share=pixels / total)
        )
    return colors


class ImagePlugin(Plugin):
    """Facts about images: format, size, colours, EXIF, perceptual hashes and quality."""

    name = "image"
    version = "1.1.0"
    requires_packages = ("numpy", "imagehash")
    install_hint = "pip install 'numpy>=1.26' 'imagehash>=4.3,<5'"

    def setup(self) -> None:
        import imagehash  # noqa: F401  (and with it NumPy, SciPy, PyWavelets)
        import numpy  # noqa: F401

    @tool(timeout_s=10)
    def info(
        self,
        image: Image,
        colors: Annotated[
            int, Field(ge=1, le=16, description="How many dominant colours to report.")
        ] = 5,
    ) -> ImageInfo:
        """Format, width, height, mode, file size, mean and dominant colours, EXIF essentials."""
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
            dominant_colors=dominant_colors(rgb, colors),
            exif=Exif(
                orientation=int(orientation) if isinstance(orientation, int) else None,
                make=_text(exif.get(_MAKE)),
                model=_text(exif.get(_MODEL)),
                timestamp=_text(sub.get(_DATETIME_ORIGINAL) or exif.get(_DATETIME)),
            ),
        )

    @tool(timeout_s=20)
    def hash(
        self,
        image: Image,
        algorithms: Annotated[
            list[HashAlgorithm],
            Field(min_length=1, description="Which perceptual hashes to compute."),
        ] = ["ahash", "phash", "dhash", "whash", "colorhash"],  # noqa: B006 (pydantic copies it)
        hash_size: Annotated[
            HashSize, Field(description="Grid side of a/p/d/w hashes: 8 (64 bits) or 16.")
        ] = 8,
    ) -> ImageHashes:
        """Perceptual hashes (aHash, pHash, dHash, wHash, colour hash) as hexadecimal text.

        Resized or recompressed copies of an image get equal or nearly equal hashes; compare
        two hashes by their Hamming distance, or call image.compare.
        """
        return hash_image(image.pil, algorithms, hash_size)

    @tool(timeout_s=30)
    def compare(
        self,
        image: Image,
        other: Image,
        algorithms: Annotated[
            list[HashAlgorithm],
            Field(min_length=1, description="Hashes to compare; all must agree."),
        ] = DEFAULT_COMPARE,
        hash_size: Annotated[HashSize, Field(description="Grid side: 8 or 16.")] = 8,
        threshold: Annotated[
            float,
            Field(
                ge=0,
                le=1,
                description="Largest normalised Hamming distance (differing bits / hash bits) "
                "of a near duplicate. 0.15 is about 10 of 64 bits.",
            ),
        ] = DEFAULT_THRESHOLD,
    ) -> ImageComparison:
        """Compare two images by perceptual hashes: Hamming distances and a near-duplicate
        verdict (every chosen hash within the threshold)."""
        return compare_images(image.pil, other.pil, algorithms, hash_size, threshold)

    @tool(timeout_s=20)
    def quality(
        self,
        image: Image,
        thresholds: Annotated[
            QualityThresholds | None,
            Field(description="Override any flag threshold; the others keep their defaults."),
        ] = None,
    ) -> QualityReport:
        """Sharpness (variance of the Laplacian), exposure (clipped shadows and highlights),
        contrast and noise, with flags: blurry, underexposed, overexposed, low_contrast, noisy.
        """
        return assess(image.pil, thresholds or QualityThresholds())
