"""Quality benchmark: each vision tool beside its raw library on hard generated images.

    .venv/bin/python bench/quality.py                    # 50 images per set, a few minutes
    .venv/bin/python bench/quality.py --images 10 --sets ocr-skewed,qr-blurred

Every set is generated here with a known truth (the generators of tests/plugins/hard_images.py,
seeded differently from the tests). For each set, in one process, one image at a time:

- ``ocr-skewed``: pages of random words (DejaVu 18-26 px) turned by +-2..12 degrees or by a
  quarter/half turn. Raw: tesserocr with its defaults (automatic page segmentation, the image
  as given). Tool: ``ocr.read`` with engine 'tesseract' (preprocessing on). Metric: mean
  character error rate (CER). Target: the tool's CER at most a fifth of raw Tesseract's.
- ``ocr-small``: pages of 9-14 px text (DejaVu Sans or Serif rendered at twice the size and
  downsampled, as a scan at low resolution), JPEG quality 60. Same sides and metric.
- ``ocr-photo``: two lines drawn straight onto scikit-image photographs. Raw Tesseract
  against ``ocr.read`` with engine 'auto' (RapidOCR when Tesseract is unsure).
- ``qr-blurred``: QR codes of 3-6 px modules, Gaussian blur sigma 0.3-0.65 of a module.
  Raw: zxing-cpp ``read_barcodes`` and OpenCV ``QRCodeDetectorAruco``. Tool: ``codes.decode``.
  Metric: recall (the exact payload decoded). Target: at least zxing's recall plus half of
  what zxing misses.
- ``barcodes-hard``: Code 128 and EAN-13, narrow bars 1.2-2.0 px, turned -80..80 degrees,
  blur sigma 0-0.6 px. Raw: zxing-cpp. Same metric and target.
- ``codes-easy``: clean QR codes and barcodes (what zxing reads at once). Metric: time per
  image. Target: ``codes.decode`` at most 1.3x zxing alone.
- ``code-free``: noise, text, photos, stripes, checkerboards. Metric: false decodes (must be 0).

Times are wall-clock per image, tool called in process (no server: ``bench/plugins.py``
measures the server's cost). Prints one table; ``--json FILE`` writes every figure; ``--check``
exits 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]

from PIL import Image as PILImage  # noqa: E402
from tests.plugins import hard_images as hard  # noqa: E402
from tests.plugins.support import character_error_rate, encode  # noqa: E402

from lensforge.media import Image  # noqa: E402

SETS = [
    "ocr-skewed",
    "ocr-small",
    "ocr-photo",
    "qr-blurred",
    "barcodes-hard",
    "codes-easy",
    "code-free",
]


@dataclass
class Side:
    """One way of reading a set: its per-image scores and times."""

    name: str
    scores: list[float] = field(default_factory=list)
    times_ms: list[float] = field(default_factory=list)

    def mean(self) -> float:
        return statistics.fmean(self.scores) if self.scores else 0.0

    def ms(self) -> float:
        return statistics.median(self.times_ms) if self.times_ms else 0.0


@dataclass
class Result:
    set: str
    metric: str
    sides: list[Side]
    target: str
    passed: bool | None


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    started = time.perf_counter()
    value = fn()
    return value, (time.perf_counter() - started) * 1000


class Readers:
    """The raw libraries called the obvious way, and the LensForge tools, loaded once."""

    def __init__(self) -> None:
        import cv2
        import tesserocr
        import zxingcpp

        from lensforge.builtin.codes import CodesPlugin
        from lensforge.builtin.ocr import OcrPlugin, find_tessdata

        self.ocr = OcrPlugin()
        self.ocr.setup()
        self.codes = CodesPlugin()
        self.codes.setup()
        self.tesseract = tesserocr.PyTessBaseAPI(path=f"{find_tessdata()}/", lang="eng")
        self.zxing = zxingcpp
        self.opencv_qr = cv2.QRCodeDetectorAruco()

    def raw_tesseract(self, pil: PILImage.Image) -> str:
        self.tesseract.SetImage(pil)
        return str(self.tesseract.GetUTF8Text())

    def raw_zxing(self, pil: PILImage.Image) -> list[str]:
        return [r.text for r in self.zxing.read_barcodes(pil) if r.valid]

    def raw_opencv_qr(self, pil: PILImage.Image) -> list[str]:
        import numpy as np

        ok, texts, _, _ = self.opencv_qr.detectAndDecodeMulti(np.asarray(pil.convert("L")))
        return [t for t in texts if t] if ok else []


def _decoded(data: bytes) -> Image:
    return Image.decode(data)


def ocr_set(readers: Readers, images: list[tuple[bytes, str]], engine: str, name: str) -> Result:
    raw, tool = Side("raw tesseract (psm 3)"), Side(f"ocr.read (engine {engine})")
    for data, truth in images:
        image = _decoded(data)
        text, ms = timed(lambda image=image: readers.raw_tesseract(image.pil))
        raw.scores.append(character_error_rate(truth, text))
        raw.times_ms.append(ms)
        result, ms = timed(lambda image=image: readers.ocr.read(image, engine=engine))
        tool.scores.append(character_error_rate(truth, result.text))
        tool.times_ms.append(ms)
    passed = tool.mean() <= raw.mean() / 5 if name != "ocr-photo" else tool.mean() < raw.mean()
    target = "CER <= raw / 5" if name != "ocr-photo" else "CER < raw"
    return Result(name, "CER (lower is better)", [raw, tool], target, passed)


def codes_set(readers: Readers, images: list[tuple[bytes, str]], name: str) -> Result:
    zxing, opencv = Side("raw zxing-cpp"), Side("raw OpenCV QRCodeDetectorAruco")
    tool = Side("codes.decode")
    qr = name.startswith("qr")
    for data, truth in images:
        image = _decoded(data)
        texts, ms = timed(lambda image=image: readers.raw_zxing(image.pil))
        zxing.scores.append(float(truth in texts))
        zxing.times_ms.append(ms)
        if qr:
            texts, ms = timed(lambda image=image: readers.raw_opencv_qr(image.pil))
            opencv.scores.append(float(truth in texts))
            opencv.times_ms.append(ms)
        result, ms = timed(lambda image=image: readers.codes.decode(image))
        tool.scores.append(float(truth in [c.text for c in result.codes]))
        tool.times_ms.append(ms)
    sides = [zxing, opencv, tool] if qr else [zxing, tool]
    if name == "codes-easy":
        ratio = tool.ms() / max(zxing.ms(), 1e-9)
        return Result(name, "recall", sides, f"time <= 1.3x zxing ({ratio:.2f}x)", ratio <= 1.3)
    needed = zxing.mean() + (1 - zxing.mean()) / 2
    return Result(name, "recall", sides, f"recall >= {needed:.2f}", tool.mean() >= needed)


def code_free_set(readers: Readers, images: list[bytes]) -> Result:
    zxing, tool = Side("raw zxing-cpp"), Side("codes.decode")
    for data in images:
        image = _decoded(data)
        texts, ms = timed(lambda image=image: readers.raw_zxing(image.pil))
        zxing.scores.append(float(len(texts)))
        zxing.times_ms.append(ms)
        result, ms = timed(lambda image=image: readers.codes.decode(image))
        tool.scores.append(float(result.count))
        tool.times_ms.append(ms)
    false = sum(tool.scores)
    return Result("code-free", "false decodes per image", [zxing, tool], "0 false", false == 0)


def make_set(name: str, count: int, rng: random.Random) -> list[Any]:
    """The images of a set, encoded (PNG, or JPEG where said) before any timing."""
    out: list[Any] = []
    for index in range(count):
        if name == "ocr-skewed":
            lines = hard.text_lines(rng, rng.randint(3, 8), rng.randint(5, 9))
            page = hard.render_page(lines, rng.randint(18, 26))
            angle = rng.choice([90, 180, 270]) if index % 5 == 4 else 0
            angle = angle or rng.choice([-1, 1]) * rng.uniform(2, 12)
            out.append((encode(hard.skewed(page, angle)), " ".join(lines)))
        elif name == "ocr-small":
            lines = hard.text_lines(rng, rng.randint(4, 10), rng.randint(6, 10))
            font = rng.choice([hard.FONT, hard.SERIF])
            page = hard.render_page(lines, 2 * rng.randint(9, 14), font=font)
            small = page.resize((page.width // 2, page.height // 2), PILImage.Resampling.LANCZOS)
            out.append((encode(small, "JPEG", quality=60), " ".join(lines)))
        elif name == "ocr-photo":
            lines = hard.text_lines(rng, 2, rng.randint(3, 5))
            background = hard.photo_backgrounds()[index % 4]
            image = hard.text_on_photo(lines, rng.randint(24, 36), background, rng)
            out.append((encode(image, "JPEG", quality=90), " ".join(lines)))
        elif name == "qr-blurred":
            payload = f"https://example.org/q/{rng.getrandbits(40):x}?n={index}"
            image = hard.blurred_qr(payload, rng.randint(3, 6), rng.uniform(0.3, 0.65))
            out.append((encode(image), payload))
        elif name == "barcodes-hard":
            kind = rng.choice(["code128", "ean13"])
            value = (
                f"LF-{rng.getrandbits(24):06x}"
                if kind == "code128"
                else "".join(rng.choice("0123456789") for _ in range(12))
            )
            image, truth = hard.barcode_1d(
                kind, value, rng.uniform(1.2, 2.0), rng.uniform(-80, 80), rng.uniform(0, 0.6)
            )
            out.append((encode(image), truth))
        elif name == "codes-easy":
            if index % 2:
                payload = f"easy {index} {rng.getrandbits(32):x}"
                out.append((encode(hard.blurred_qr(payload, rng.randint(4, 8), 0.0)), payload))
            else:
                value = f"EASY{index:04d}"
                image, truth = hard.barcode_1d("code128", value, rng.uniform(2.5, 4.0))
                out.append((encode(image), truth))
        else:
            out.append(encode(hard.code_free(index, rng)))
    return out


def run(sets: list[str], count: int, seed: int) -> list[Result]:
    readers = Readers()
    results = []
    for name in sets:
        data = make_set(name, count, random.Random(f"{seed}:{name}"))
        if name.startswith("ocr"):
            engine = "auto" if name == "ocr-photo" else "tesseract"
            results.append(ocr_set(readers, data, engine, name))
        elif name == "code-free":
            results.append(code_free_set(readers, data))
        else:
            results.append(codes_set(readers, data, name))
        print(f"  {name}: done", file=sys.stderr, flush=True)
    return results


def table(results: list[Result], count: int) -> str:
    rows = [
        f"{count} images per set; median ms per image; one process, images one at a time",
        "",
        "| set | metric | reader | score | ms/image | target |",
        "|---|---|---|---|---|---|",
    ]
    for result in results:
        for k, side in enumerate(result.sides):
            verdict = ""
            if k == len(result.sides) - 1:
                verdict = f"{result.target}: {'PASS' if result.passed else 'MISS'}"
            rows.append(
                f"| {result.set} | {result.metric} | {side.name} | {side.mean():.3f} | "
                f"{side.ms():.1f} | {verdict} |"
            )
    return "\n".join(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=50, help="images per set")
    parser.add_argument("--sets", default=",".join(SETS), help=f"comma-separated: {SETS}")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--json", type=Path, help="write every figure here")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args()
    sets = [s for s in args.sets.split(",") if s]
    unknown = sorted(set(sets) - set(SETS))
    if unknown or args.images < 1:
        parser.error(f"unknown sets {unknown}" if unknown else "--images must be >= 1")
    results = run(sets, args.images, args.seed)
    print(table(results, args.images))
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in results], indent=2))
    return 1 if args.check and not all(r.passed for r in results) else 0


if __name__ == "__main__":
    raise SystemExit(main())
