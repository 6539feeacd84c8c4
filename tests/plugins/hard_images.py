"""Hard images with a known truth, made in code: blurred and thin codes, skewed pages.

Shared by the plugin tests and ``bench/quality.py``. Every generator takes a
``random.Random`` (or fixed parameters) so a set is the same on every run.
"""

from __future__ import annotations

import io
import random

import numpy as np
from PIL import Image as PILImage
from PIL import ImageDraw, ImageFont

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
SERIF = "/usr/share/fonts/truetype/dejavu/DejaVuSerif.ttf"

WORDS = tuple(
    " ".join(
        [
            "the quick brown fox jumps over lazy dog pack my box with five dozen liquor jugs",
            "sphinx of black quartz judge vow server reads every image tool plugin worker job",
            "queue store model result text page column line word number 2026 42 seven river",
            "mountain winter summer paper letter station market garden window",
        ]
    ).split()
)


def _blur(pixels: np.ndarray, sigma: float) -> np.ndarray:
    import cv2

    return cv2.GaussianBlur(pixels, (0, 0), sigma) if sigma > 0 else pixels


def _rotate(pixels: np.ndarray, degrees: float, fill: int = 255) -> np.ndarray:
    """Rotate counter-clockwise, growing the canvas (bilinear, like a scanner's resampling)."""
    pil = PILImage.fromarray(pixels)
    return np.asarray(
        pil.rotate(degrees, resample=PILImage.Resampling.BILINEAR, expand=True, fillcolor=fill)
    )


def _on_canvas(pixels: np.ndarray, margin: int) -> np.ndarray:
    height, width = pixels.shape
    canvas = np.full((height + 2 * margin, width + 2 * margin), 255, np.uint8)
    canvas[margin : margin + height, margin : margin + width] = pixels
    return canvas


def blurred_qr(payload: str, module: int, sigma_modules: float) -> PILImage.Image:
    """A QR code with ``module`` px modules, Gaussian-blurred by ``sigma_modules`` modules."""
    import segno

    buffer = io.BytesIO()
    segno.make_qr(payload).save(buffer, kind="png", scale=module, border=4)
    pixels = np.asarray(PILImage.open(buffer).convert("L"))
    canvas = _on_canvas(pixels, 60)
    return PILImage.fromarray(_blur(canvas, sigma_modules * module)).convert("RGB")


def barcode_1d(
    kind: str, value: str, narrow_px: float, angle: float = 0.0, sigma: float = 0.0
) -> tuple[PILImage.Image, str]:
    """A python-barcode symbol whose narrowest bar is ``narrow_px`` wide (area-resampled, so
    fractional widths give grey edges), rotated by ``angle`` degrees and blurred; the image and
    the full text a reader must return."""
    import barcode as python_barcode
    import cv2
    from barcode.writer import ImageWriter

    symbol = python_barcode.get(kind, value, writer=ImageWriter())
    # 0.5 mm modules at 254 dpi: exactly 5 px per module before resampling
    options = {
        "module_width": 0.5,
        "module_height": 15,
        "quiet_zone": 6.5,
        "write_text": False,
        "dpi": 254,
    }
    pixels = np.asarray(symbol.render(options).convert("L"))
    factor = narrow_px / 5.0
    height = max(40, round(pixels.shape[0] * max(factor, 0.5)))
    pixels = cv2.resize(
        pixels, (round(pixels.shape[1] * factor), height), interpolation=cv2.INTER_AREA
    )
    canvas = _on_canvas(pixels, 80)
    if angle:
        canvas = _rotate(canvas, angle)
    return PILImage.fromarray(_blur(canvas, sigma)).convert("RGB"), symbol.get_fullcode()


def random_words(rng: random.Random, count: int) -> list[str]:
    return [rng.choice(WORDS) for _ in range(count)]


def text_lines(rng: random.Random, lines: int, words_per_line: int) -> list[str]:
    return [" ".join(random_words(rng, words_per_line)) for _ in range(lines)]


def render_page(
    lines: list[str], size: int, font: str = FONT, margin: int | None = None
) -> PILImage.Image:
    """Black text on white, one line per entry, line pitch 1.5 x size."""
    typeface = ImageFont.truetype(font, size)
    margin = 2 * size if margin is None else margin
    pitch = round(size * 1.5)
    width = round(max(typeface.getlength(line) for line in lines)) + 2 * margin
    image = PILImage.new("L", (width, pitch * len(lines) + 2 * margin), 255)
    draw = ImageDraw.Draw(image)
    for row, line in enumerate(lines):
        draw.text((margin, margin + row * pitch), line, font=typeface, fill=0)
    return image.convert("RGB")


def skewed(page: PILImage.Image, degrees: float) -> PILImage.Image:
    """The page turned by ``degrees`` (counter-clockwise), white where the scan had no paper."""
    return page.rotate(
        degrees, resample=PILImage.Resampling.BILINEAR, expand=True, fillcolor="white"
    )


def shaded(page: PILImage.Image, strength: float, seed: int = 1) -> PILImage.Image:
    """The page under uneven light: darker towards the right and the bottom (down to
    ``1 - strength`` of full brightness), plus a little sensor noise, like a phone photo."""
    grey = np.asarray(page.convert("L")).astype(np.float32)
    height, width = grey.shape
    ys, xs = np.mgrid[0:height, 0:width]
    light = 1.0 - strength * (0.7 * xs / width + 0.3 * ys / height)
    noise = np.random.default_rng(seed).normal(0, 4, grey.shape)
    return PILImage.fromarray(np.clip(grey * light + noise, 0, 255).astype(np.uint8)).convert("RGB")


def two_columns(
    left: list[str], right: list[str], size: int
) -> tuple[PILImage.Image, tuple[int, int, int, int]]:
    """Two text columns side by side, with a wide gutter; also the right column's box."""
    typeface = ImageFont.truetype(FONT, size)
    pitch = round(size * 1.5)
    margin = 2 * size
    col_width = round(max(typeface.getlength(line) for line in left + right))
    gutter = 4 * size
    rows = max(len(left), len(right))
    image = PILImage.new("L", (2 * col_width + gutter + 2 * margin, rows * pitch + 2 * margin), 255)
    draw = ImageDraw.Draw(image)
    for row, line in enumerate(left):
        draw.text((margin, margin + row * pitch), line, font=typeface, fill=0)
    right_x = margin + col_width + gutter
    for row, line in enumerate(right):
        draw.text((right_x, margin + row * pitch), line, font=typeface, fill=0)
    return image.convert("RGB"), (right_x, margin, col_width, rows * pitch)


def photo_backgrounds() -> list[np.ndarray]:
    """Real photographs bundled with scikit-image (no download), RGB uint8."""
    from skimage import data

    return [data.astronaut(), data.coffee(), data.chelsea(), data.rocket()]


def text_on_photo(
    lines: list[str], size: int, background: np.ndarray, rng: random.Random
) -> PILImage.Image:
    """Dark or light text drawn straight onto a photograph (no box behind it), like a sign
    or a caption in a picture: the colour is chosen to contrast with the region's mean."""
    photo = PILImage.fromarray(background).convert("RGB")
    typeface = ImageFont.truetype(SERIF if rng.random() < 0.5 else FONT, size)
    pitch = round(size * 1.5)
    width = round(max(typeface.getlength(line) for line in lines)) + 2 * size
    height = pitch * len(lines) + 2 * size
    scale = max(width / photo.width, height / photo.height, 1.0)
    if scale > 1:
        photo = photo.resize((round(photo.width * scale) + 1, round(photo.height * scale) + 1))
    x = rng.randint(0, photo.width - width)
    y = rng.randint(0, photo.height - height)
    region = np.asarray(photo.convert("L"))[y : y + height, x : x + width]
    fill = (20, 20, 20) if region.mean() > 110 else (245, 245, 245)
    draw = ImageDraw.Draw(photo)
    for row, line in enumerate(lines):
        draw.text((x + size, y + size + row * pitch), line, font=typeface, fill=fill)
    return photo.crop((x, y, x + width, y + height))


def code_free(index: int, rng: random.Random) -> PILImage.Image:
    """An image with no code in it: noise, stripes of text, a photo or a fine texture."""
    kind = index % 5
    if kind == 0:
        noise = np.asarray(
            [[rng.randrange(256) for _ in range(320)] for _ in range(240)], dtype=np.uint8
        )
        return PILImage.fromarray(_blur(noise, rng.choice([0.0, 0.8, 1.5]))).convert("RGB")
    if kind == 1:
        return render_page(text_lines(rng, 6, 7), rng.choice([14, 18, 24]))
    if kind == 2:
        photo = photo_backgrounds()[index // 5 % 4]
        return PILImage.fromarray(photo).rotate(rng.choice([0, 15, 90]))
    if kind == 3:  # stripes that look a little like bars
        widths = [rng.choice([1, 2, 3, 4]) for _ in range(120)]
        row = np.concatenate([np.full(w, 255 * (i % 2), np.uint8) for i, w in enumerate(widths)])
        pixels = np.tile(row, (120, 1))
        return PILImage.fromarray(_on_canvas(_blur(pixels, 0.7), 30)).convert("RGB")
    checker = np.kron(
        np.asarray([[rng.randrange(2) * 255 for _ in range(40)] for _ in range(40)], np.uint8),
        np.ones((6, 6), np.uint8),
    )
    return PILImage.fromarray(_on_canvas(_blur(checker, 1.5), 20)).convert("RGB")
