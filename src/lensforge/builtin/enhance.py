"""Image enhancements shared by the vision tools: each returns the new pixels and the map back.

A tool that retries on an enhanced copy (upscaled, sharpened, rotated) must still report
coordinates in the caller's original image. Every function here therefore returns a
:class:`Variant`: the pixels plus the 2x3 affine matrix that maps a point of the variant
back to the original. Grey (``uint8``, 2-D) arrays in, grey arrays out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

# The largest side an upscaled copy may have: beyond it upscaling costs more than it finds.
MAX_UPSCALED_SIDE = 4096


@dataclass(frozen=True)
class Variant:
    """An enhanced copy of an image and how to map its points back to the original."""

    name: str
    pixels: np.ndarray
    to_original: np.ndarray  # 2x3 affine matrix, variant (x, y, 1) -> original (x, y)

    def box(
        self, x: float, y: float, width: float, height: float
    ) -> tuple[float, float, float, float]:
        """The axis-aligned box (x, y, width, height) in the original around a variant's box."""
        corners = [self.point(cx, cy) for cx in (x, x + width) for cy in (y, y + height)]
        xs = [cx for cx, _ in corners]
        ys = [cy for _, cy in corners]
        return min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)

    def point(self, x: float, y: float) -> tuple[float, float]:
        m = self.to_original
        return (
            float(m[0, 0] * x + m[0, 1] * y + m[0, 2]),
            float(m[1, 0] * x + m[1, 1] * y + m[1, 2]),
        )


def identity(gray: np.ndarray, name: str = "original") -> Variant:
    import numpy as np

    return Variant(name, gray, np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]))


def _then(first: Variant, name: str, pixels: np.ndarray, step_back: np.ndarray) -> Variant:
    """A variant of ``first``: ``step_back`` maps the new pixels to ``first``'s."""
    import numpy as np

    a = np.vstack([first.to_original, [0.0, 0.0, 1.0]])
    b = np.vstack([step_back, [0.0, 0.0, 1.0]])
    return Variant(name, pixels, (a @ b)[:2])


def sharpen(source: Variant, sigma: float, amount: float) -> Variant:
    """Unsharp masking: restores the edges of blurred bars and modules."""
    import cv2
    import numpy as np

    blurred = cv2.GaussianBlur(source.pixels, (0, 0), sigma)
    pixels = cv2.addWeighted(source.pixels, 1 + amount, blurred, -amount, 0)
    return _then(source, f"{source.name}+sharpened", pixels, np.array([[1.0, 0, 0], [0, 1.0, 0]]))


def upscale(source: Variant, factor: float) -> Variant | None:
    """Bicubic enlargement (thin bars, small text); None when the result would be too big."""
    import cv2
    import numpy as np

    height, width = source.pixels.shape[:2]
    factor = min(factor, MAX_UPSCALED_SIDE / max(height, width))
    if factor <= 1.05:
        return None
    size = (round(width * factor), round(height * factor))
    pixels = cv2.resize(source.pixels, size, interpolation=cv2.INTER_CUBIC)
    fx, fy = width / size[0], height / size[1]
    # pixel centres: x_orig + 0.5 = (x_new + 0.5) * fx
    back = np.array([[fx, 0.0, 0.5 * fx - 0.5], [0.0, fy, 0.5 * fy - 0.5]])
    return _then(source, f"{source.name}+upscaled", pixels, back)


def downscale(source: Variant, factor: float) -> Variant:
    """Area-averaged reduction by ``factor`` (< 1): a resampling unlike the bicubic upscale."""
    import cv2
    import numpy as np

    height, width = source.pixels.shape[:2]
    size = (max(1, round(width * factor)), max(1, round(height * factor)))
    pixels = cv2.resize(source.pixels, size, interpolation=cv2.INTER_AREA)
    fx, fy = width / size[0], height / size[1]
    back = np.array([[fx, 0.0, 0.5 * fx - 0.5], [0.0, fy, 0.5 * fy - 0.5]])
    return _then(source, f"{source.name}+downscaled", pixels, back)


def rotate(source: Variant, degrees: float, fill: int = 255) -> Variant:
    """Rotate counter-clockwise by ``degrees``, growing the canvas so nothing is cut off."""
    import cv2
    import numpy as np

    height, width = source.pixels.shape[:2]
    forward = cv2.getRotationMatrix2D((width / 2, height / 2), degrees, 1.0)
    cos, sin = abs(forward[0, 0]), abs(forward[0, 1])
    new_w = math.ceil(height * sin + width * cos)
    new_h = math.ceil(height * cos + width * sin)
    forward[0, 2] += new_w / 2 - width / 2
    forward[1, 2] += new_h / 2 - height / 2
    pixels = cv2.warpAffine(
        source.pixels, forward, (new_w, new_h), flags=cv2.INTER_CUBIC, borderValue=fill
    )
    back = cv2.invertAffineTransform(forward)
    return _then(source, f"{source.name}+rotated{degrees:+.0f}", pixels, np.asarray(back))


def turn(source: Variant, quarter_turns: int) -> Variant:
    """Rotate by a multiple of 90 degrees counter-clockwise, exactly (no resampling)."""
    import numpy as np

    k = quarter_turns % 4
    if k == 0:
        return source
    height, width = source.pixels.shape[:2]
    pixels = np.ascontiguousarray(np.rot90(source.pixels, k))
    back = {
        1: [[0.0, -1.0, width], [1.0, 0.0, 0.0]],
        2: [[-1.0, 0.0, width], [0.0, -1.0, height]],
        3: [[0.0, 1.0, 0.0], [-1.0, 0.0, height]],
    }[k]
    return _then(source, f"{source.name}+turned{90 * k}", pixels, np.array(back))


def crop(source: Variant, x0: int, y0: int, x1: int, y1: int) -> Variant:
    """The rectangle [x0, x1) x [y0, y1) of ``source`` (clamped to it)."""
    import numpy as np

    height, width = source.pixels.shape[:2]
    x0, y0 = max(0, x0), max(0, y0)
    x1, y1 = min(width, x1), min(height, y1)
    pixels = np.ascontiguousarray(source.pixels[y0:y1, x0:x1])
    back = np.array([[1.0, 0.0, float(x0)], [0.0, 1.0, float(y0)]])
    return _then(source, f"{source.name}+crop", pixels, back)


def dominant_orientations(gray: np.ndarray, tile: int = 48, top: int = 2) -> list[float]:
    """The strongest gradient directions (degrees, -90..90) among strongly oriented tiles.

    A 1-D barcode or a line of text is a patch whose gradients all point one way (the
    structure tensor's coherence is high there); :func:`rotate` by that angle makes the bars
    vertical (or the lines horizontal). The strongest 5-degree bins (weighted by gradient
    energy) are found first, then each is refined to the mean direction of its tiles.
    """
    import cv2
    import numpy as np

    pixels = gray.astype(np.float32)
    gx = cv2.Sobel(pixels, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(pixels, cv2.CV_32F, 0, 1, ksize=3)
    half = tile // 2
    jxx, jyy, jxy = (
        cv2.boxFilter(product, -1, (tile, tile))[half::tile, half::tile]
        for product in (gx * gx, gy * gy, gx * gy)
    )
    energy = jxx + jyy
    coherence = np.sqrt((jxx - jyy) ** 2 + 4 * jxy**2) / (energy + 1e-6)
    angles = 0.5 * np.degrees(np.arctan2(2 * jxy, jxx - jyy))
    strong = (coherence > 0.7) & (energy > 100)
    if strong.any():
        strong &= energy >= np.percentile(energy[strong], 50)
    if not strong.any():
        return []
    hist, edges = np.histogram(angles[strong], bins=36, range=(-90, 90), weights=energy[strong])
    order = np.argsort(hist)[::-1][:top]
    found = []
    for i in order:
        if hist[i] <= 0.25 * hist[order[0]]:
            continue
        # refine to the energy-weighted mean direction of the tiles within 5 degrees of the
        # bin's centre (on doubled angles, so -89 and 89 average to 90, not 0)
        centre = float(edges[i] + 2.5)
        near = strong & (np.abs((angles - centre + 90) % 180 - 90) <= 5)
        doubled = np.radians(2 * angles[near])
        weights = energy[near]
        mean = 0.5 * math.degrees(
            math.atan2(
                float(np.dot(weights, np.sin(doubled))), float(np.dot(weights, np.cos(doubled)))
            )
        )
        found.append(mean)
    return found
