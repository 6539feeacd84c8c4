"""Page analysis before OCR: skew, orientation, text size and columns of a grey page image.

Everything works on the page's ink (Otsu-binarised, dark on light or light on dark) seen as
points, so each estimate is a few NumPy passes:

- :func:`flatten_lighting`: uneven lighting (a photographed page) divided out first.
- :func:`estimate_angle`: the rotation that makes text lines horizontal (the angle whose
  horizontal projection of the ink is sharpest), over the whole half-turn, so pages turned by
  a quarter turn are found too (which way up is left to the recogniser: :func:`text_band`
  picks a few lines to try both ways).
- :func:`line_height`: the median height of the text lines, to upscale small text.
- :func:`column_spans`: the text columns, split at wide vertical gutters.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from lensforge.builtin.enhance import Variant, crop, identity, rotate, turn, upscale

if TYPE_CHECKING:
    import numpy as np

ANALYSIS_SIDE = 1200  # estimates run on a copy at most this large
MAX_POINTS = 40_000
MIN_GAIN = 1.12  # a rotation must sharpen the line profile this much to be believed
MIN_SKEW_DEG = 0.3  # smaller skews are left alone: resampling would cost more than it gives
TARGET_LINE_PX = 30  # Tesseract reads best with lines about this tall (x-height ~ 15 px)
MAX_UPSCALE = 4.0
FLIP_MARGIN = 5.0  # points of mean confidence the upside-down reading must win by
MIN_FLIP_CONFIDENCE = 60.0  # ... and be text at all (a photo reads poorly both ways)


UNEVEN_LIGHT = 30  # grey levels between the page's lightest and darkest paper to flatten it


@dataclass(frozen=True)
class PreparedPage:
    """A page made ready for recognition: its columns, and what was done to get them."""

    columns: list[Variant]  # each maps its pixels back to the original image
    deskew_deg: float
    rotated: Literal[0, 90, 180, 270]
    scale: float
    flattened: bool


def flatten_lighting(gray: np.ndarray) -> np.ndarray | None:
    """The page divided by its paper's brightness, when that varies (a photographed or
    unevenly scanned page); None when the lighting is even or the page is dark.

    The paper is estimated by a grey dilation wider than text strokes (the ink disappears)
    followed by a median filter; dividing by it turns shading into uniform white paper, which
    a global threshold (ours and Tesseract's) then separates from the ink.
    """
    import cv2
    import numpy as np

    if float(np.median(gray)) < 100:  # light text on a dark ground: leave it as it is
        return None
    side = min(gray.shape[:2])
    kernel = max(7, side // 60) | 1
    paper = cv2.medianBlur(cv2.dilate(gray, np.ones((kernel, kernel), np.uint8)), 21)
    low, high = np.percentile(paper, [2, 98])
    if high - low < UNEVEN_LIGHT:
        return None
    flat = gray.astype(np.float32) * 255.0 / np.maximum(paper.astype(np.float32), 1.0)
    result: np.ndarray = np.clip(flat, 0, 255).astype(np.uint8)
    return result


def prepare_page(
    gray: np.ndarray,
    confidence: Callable[[np.ndarray], float],
    *,
    split_columns: bool = True,
) -> PreparedPage:
    """Straighten, turn upright, upscale and split a grey page into its text columns.

    ``confidence`` scores a recognition of a grey sample (higher is better): the page is
    turned over when a few of its lines read clearly better upside down.
    """
    flat = flatten_lighting(gray)
    if flat is not None:
        gray = flat
    angle = estimate_angle(gray)
    quarters = round(angle / 90)
    residual = angle - 90 * quarters
    page = turn(identity(gray), quarters)
    if abs(residual) >= MIN_SKEW_DEG:
        page = rotate(page, residual)
    mask = ink_mask(page.pixels)
    band = text_band(mask)
    if band is not None:
        sample = page.pixels[band[0] : band[1]]
        upright = confidence(sample)
        flipped = confidence(sample[::-1, ::-1].copy()) if upright < 90 else 0.0
        if flipped >= MIN_FLIP_CONFIDENCE and flipped > upright + FLIP_MARGIN:
            page, quarters = turn(page, 2), quarters + 2
            mask = mask[::-1, ::-1]
    height = line_height(mask)
    scale = 1.0
    if height is not None and height < 0.75 * TARGET_LINE_PX:
        bigger = upscale(page, min(MAX_UPSCALE, TARGET_LINE_PX / height))
        if bigger is not None:
            scale = bigger.pixels.shape[1] / page.pixels.shape[1]
            page = bigger
    columns = [page]
    if split_columns and height is not None:
        spans = column_spans(mask, height)
        if len(spans) > 1:
            pad = round(height * scale)
            columns = [
                crop(
                    page, round(x0 * scale) - pad, 0, round(x1 * scale) + pad, page.pixels.shape[0]
                )
                for x0, x1 in spans
            ]
    turned: Literal[0, 90, 180, 270] = [0, 90, 180, 270][quarters % 4]  # type: ignore[assignment]
    deskew = residual if abs(residual) >= MIN_SKEW_DEG else 0.0
    return PreparedPage(columns, deskew, turned, scale, flat is not None)


def ink_mask(gray: np.ndarray) -> np.ndarray:
    """Boolean mask of the text's pixels: Otsu threshold, the minority side being ink."""
    import cv2

    _, binary = cv2.threshold(gray, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    dark: np.ndarray = binary == 0
    return dark if dark.mean() <= 0.5 else ~dark


def _points(mask: np.ndarray) -> np.ndarray:
    import numpy as np

    ys, xs = np.nonzero(mask)
    points = np.stack([xs, ys], axis=1).astype(np.float32)
    if len(points) > MAX_POINTS:
        step = len(points) / MAX_POINTS
        points = points[(np.arange(MAX_POINTS) * step).astype(np.int64)]
    return points


def _sharpness(points: np.ndarray, degrees: float) -> float:
    """How peaked the ink's row profile is after rotating the page by ``degrees`` (CCW)."""
    import numpy as np

    theta = math.radians(degrees)
    rows = -points[:, 0] * math.sin(theta) + points[:, 1] * math.cos(theta)
    counts = np.bincount((rows - rows.min()).astype(np.int64))
    return float(np.dot(counts, counts))


def estimate_angle(gray: np.ndarray) -> float:
    """The rotation (degrees, CCW, in -90..90) that makes the text lines horizontal; 0 when
    the ink shows no clear line direction (a photo, noise, a blank page)."""
    import cv2

    scale = min(1.0, ANALYSIS_SIDE / max(gray.shape))
    small = cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    points = _points(ink_mask(small))
    if len(points) < 50:
        return 0.0
    coarse = [float(a) for a in range(-89, 91)]
    scores = {a: _sharpness(points, a) for a in coarse}
    best = max(coarse, key=lambda a: scores[a])
    fine = [best + step / 10 for step in range(-10, 11)]
    best = max(fine, key=lambda a: _sharpness(points, a))
    if _sharpness(points, best) < MIN_GAIN * scores[0.0]:
        return 0.0
    return ((best + 90) % 180) - 90


def text_band(mask: np.ndarray, lines: int = 3) -> tuple[int, int] | None:
    """Rows (start, end) of up to ``lines`` text lines from the middle of the page: a sample
    small enough to recognise twice when deciding which way up the page is."""
    profile = mask.sum(axis=1)
    runs = [run for run in _runs(profile > 0) if run[1] - run[0] >= 3]
    if not runs:
        return None
    first = max(0, len(runs) // 2 - lines // 2)
    chosen = runs[first : first + lines]
    pad = max(2, (chosen[0][1] - chosen[0][0]) // 2)
    return max(0, chosen[0][0] - pad), min(mask.shape[0], chosen[-1][1] + pad)


def _runs(flags: np.ndarray) -> list[tuple[int, int]]:
    """(start, end) of each run of True values."""
    import numpy as np

    padded = np.concatenate([[False], flags, [False]]).astype(np.int8)
    edges = np.nonzero(np.diff(padded))[0]
    return list(zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True))


def line_height(mask: np.ndarray) -> float | None:
    """Median height in pixels of the text lines (runs of inked rows); None if no text."""
    import numpy as np

    profile = mask.sum(axis=1)
    heights = [end - start for start, end in _runs(profile > 0) if end - start >= 3]
    return float(np.median(heights)) if heights else None


def column_spans(mask: np.ndarray, height: float) -> list[tuple[int, int]]:
    """The x ranges of the text columns, split where a gutter at least ``2.5 x height``
    wide and free of ink runs the whole height of the text."""
    columns = mask.sum(axis=0) > 0
    spans = _runs(columns)
    if not spans:
        return []
    gap = 2.5 * height
    merged = [spans[0]]
    for start, end in spans[1:]:
        if start - merged[-1][1] < gap:
            merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    # a "column" narrower than a few characters is a stray mark, not a column
    return [span for span in merged if span[1] - span[0] >= 2 * height] or merged
