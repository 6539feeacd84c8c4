"""Image quality measures and flags, for the ``image`` plugin.

Everything is measured on the luminance (ITU-R 601 grey), on the image reduced by an integer
factor until its long side is at most ``ANALYSIS_SIDE`` pixels, so that a threshold means
about the same on a phone photo and on a web image.

- **sharpness**: variance of the Laplacian (4-neighbour kernel), after stretching the grey
  levels between their 0.5th and 99.5th percentiles to 0-255, so that a dark or flat image is
  not called blurry for its exposure. Below ``blur_threshold`` (default 100) the image is
  *blurry*: sharp photographs score several hundred to thousands, a Gaussian blur of radius
  2 brings them near 10.
- **exposure**: mean brightness (0-1), the share of clipped shadows (grey <= 5) and of clipped
  highlights (grey >= 250), and the 1st and 99th percentiles of brightness. *underexposed*
  when even the brightest 1% of pixels stays below ``dark_threshold`` (default 0.45) or when
  more than ``clip_threshold`` (default 0.25) of the pixels are crushed to black;
  *overexposed* when even the darkest 1% is above ``bright_threshold`` (default 0.55) or more
  than ``clip_threshold`` of the pixels are blown to white.
- **contrast**: RMS contrast, the standard deviation of brightness (0-0.5). Below
  ``contrast_threshold`` (default 0.05) the image is *low_contrast*.
- **noise**: standard deviation of the noise in grey levels, by Immerkær's method (J.
  Immerkær, "Fast Noise Variance Estimation", 1996). Above ``noise_threshold`` (default 8)
  the image is *noisy*. Fine texture reads as noise too: treat it as an estimate.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from pydantic import BaseModel, Field

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage

ANALYSIS_SIDE = 1024
SHADOW_LEVEL, HIGHLIGHT_LEVEL = 5, 250


class QualityThresholds(BaseModel):
    """The limits that turn measures into flags; every one can be set per call."""

    blur_threshold: float = Field(100.0, ge=0, description="Sharpness below this: blurry.")
    dark_threshold: float = Field(
        0.45, ge=0, le=1, description="99th percentile of brightness below this: underexposed."
    )
    bright_threshold: float = Field(
        0.55, ge=0, le=1, description="1st percentile of brightness above this: overexposed."
    )
    clip_threshold: float = Field(
        0.25,
        ge=0,
        le=1,
        description="Share of clipped shadows (highlights) above this: under- (over-)exposed.",
    )
    contrast_threshold: float = Field(
        0.05, ge=0, le=1, description="RMS contrast below this: low_contrast."
    )
    noise_threshold: float = Field(
        8.0, ge=0, description="Noise estimate (grey levels) above this: noisy."
    )


class QualityFlags(BaseModel):
    blurry: bool
    underexposed: bool
    overexposed: bool
    low_contrast: bool
    noisy: bool


class QualityReport(BaseModel):
    sharpness: float = Field(ge=0, description="Variance of the Laplacian (stretched grey).")
    brightness: float = Field(ge=0, le=1, description="Mean brightness.")
    shadows_clipped: float = Field(ge=0, le=1, description="Share of pixels with grey <= 5.")
    highlights_clipped: float = Field(ge=0, le=1, description="Share of pixels with grey >= 250.")
    dark_percentile: float = Field(ge=0, le=1, description="1st percentile of brightness.")
    bright_percentile: float = Field(ge=0, le=1, description="99th percentile of brightness.")
    contrast: float = Field(ge=0, description="RMS contrast: standard deviation of brightness.")
    noise: float = Field(ge=0, description="Estimated noise standard deviation, grey levels.")
    flags: QualityFlags
    thresholds: QualityThresholds
    analysed_width: int = Field(description="Width of the image the measures were taken on.")
    analysed_height: int


def _luminance(pil: PILImage) -> PILImage:
    gray = pil.convert("L") if pil.mode != "L" else pil
    factor = math.ceil(max(gray.size) / ANALYSIS_SIDE)
    return gray.reduce(factor) if factor > 1 else gray


def assess(pil: PILImage, thresholds: QualityThresholds) -> QualityReport:
    """Measure ``pil`` and flag it against ``thresholds`` (see the module docstring)."""
    import numpy as np

    gray_image = _luminance(pil)
    g = np.asarray(gray_image, dtype=np.float32)
    n = g.size
    low, high = np.percentile(g, [0.5, 99.5])
    if g.shape[0] < 3 or g.shape[1] < 3 or high - low < 1:
        sharpness, noise = 0.0, 0.0
    else:
        s = np.clip((g - low) * (255.0 / (high - low)), 0, 255)
        lap = s[1:-1, :-2] + s[1:-1, 2:] + s[:-2, 1:-1] + s[2:, 1:-1] - 4 * s[1:-1, 1:-1]
        sharpness = float(lap.var())
        # Immerkær: convolve with [[1,-2,1],[-2,4,-2],[1,-2,1]], sigma = sqrt(pi/2)/6 * mean|.|
        k = (
            g[:-2, :-2]
            + g[:-2, 2:]
            + g[2:, :-2]
            + g[2:, 2:]
            - 2 * (g[:-2, 1:-1] + g[1:-1, :-2] + g[1:-1, 2:] + g[2:, 1:-1])
            + 4 * g[1:-1, 1:-1]
        )
        noise = float(math.sqrt(math.pi / 2) / 6 * np.abs(k).mean())
    g /= 255.0
    dark_p, bright_p = (float(v) for v in np.percentile(g, [1, 99]))
    brightness = float(g.mean())
    shadows = float(np.count_nonzero(g <= SHADOW_LEVEL / 255.0)) / n
    highlights = float(np.count_nonzero(g >= HIGHLIGHT_LEVEL / 255.0)) / n
    contrast = float(g.std())
    t = thresholds
    flags = QualityFlags(
        blurry=sharpness < t.blur_threshold,
        underexposed=bright_p < t.dark_threshold or shadows > t.clip_threshold,
        overexposed=dark_p > t.bright_threshold or highlights > t.clip_threshold,
        low_contrast=contrast < t.contrast_threshold,
        noisy=noise > t.noise_threshold,
    )
    return QualityReport(
        sharpness=round(sharpness, 3),
        brightness=round(brightness, 4),
        shadows_clipped=round(shadows, 4),
        highlights_clipped=round(highlights, 4),
        dark_percentile=round(dark_p, 4),
        bright_percentile=round(bright_p, 4),
        contrast=round(contrast, 4),
        noise=round(noise, 3),
        flags=flags,
        thresholds=thresholds,
        analysed_width=gray_image.width,
        analysed_height=gray_image.height,
    )
