"""The ``codes`` plugin: QR codes and barcodes, several per image, also on hard images.

One pass of ``zxing-cpp`` (the fastest reader, every symbology) reads what a clean image
holds. Only when it finds nothing does the plugin retry, within a time budget, on enhanced
copies of the image (see :mod:`lensforge.builtin.enhance`): OpenCV's QR detectors on the
original, then zxing on a sharpened copy (blurred codes), a 2x upscaled one (bars of 1-2 px)
and copies rotated to the dominant bar direction (1-D codes at an angle). Coordinates are
mapped back to the original image.

No false decodes: a payload is returned only if its symbology carries its own check (QR
Reed-Solomon, Code 128 checksum, ...) or a second reading of the code's region, resampled
differently, agrees: always for symbologies without a check (Code 39, Codabar, ITF), and
for EAN/UPC (a single mod-10 digit) when read in an enhanced copy.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from functools import partial
from typing import Annotated, Any, Literal, cast, get_args

from pydantic import BaseModel, Field

from lensforge.builtin.enhance import (
    Variant,
    crop,
    dominant_orientations,
    downscale,
    identity,
    rotate,
    sharpen,
    upscale,
)
from lensforge.media import Image
from lensforge.plugin import Plugin, ToolContext, tool
from lensforge.results import Box, Point, Polygon

CodeFormat = Literal[
    "QRCode",
    "MicroQRCode",
    "RMQRCode",
    "DataMatrix",
    "Aztec",
    "PDF417",
    "MaxiCode",
    "EAN13",
    "EAN8",
    "UPCA",
    "UPCE",
    "Code128",
    "Code39",
    "Code93",
    "Codabar",
    "ITF",
    "DataBar",
    "DataBarExp",
    "DataBarLtd",
]
ALL_FORMATS: tuple[str, ...] = get_args(CodeFormat)
# Symbologies whose payload carries no check of its own: a second reading must agree.
UNCHECKED_FORMATS = frozenset({"Code39", "Codabar", "ITF"})
# One mod-10 check digit: a second reading must agree when read in an enhanced copy.
WEAK_CHECK_FORMATS = frozenset({"EAN13", "EAN8", "UPCA", "UPCE"})
DEFAULT_RETRY_BUDGET_S = 1.0


class Code(BaseModel):
    """One decoded code."""

    text: str = Field(description="The decoded content (for EAN/UPC: digits with check digit).")
    format: CodeFormat = Field(description="Symbology, e.g. QRCode, EAN13, Code128.")
    polygon: Polygon = Field(
        description="Corners in the code's own orientation: top-left first, then clockwise."
    )
    box: Box = Field(description="Axis-aligned bounding box of the polygon.")
    decoder: Literal["opencv", "zxing"] = Field(description="Which library decoded it.")
    found_in: str = Field(
        description="The image it was read in: 'original', or the enhanced copy a retry made "
        "(e.g. 'original+sharpened', 'original+rotated-32+upscaled+sharpened')."
    )


class Codes(BaseModel):
    codes: list[Code] = Field(description="Every code found, top to bottom, left to right.")
    count: int
    attempts: list[str] = Field(
        description="The images searched, in order: 'original' first, then any retries "
        "(made only when nothing was found, within the time budget)."
    )


def _polygon(points: list[tuple[float, float]]) -> tuple[Polygon, Box]:
    xs = [x for x, _ in points]
    ys = [y for _, y in points]
    box = Box(x=min(xs), y=min(ys), width=max(xs) - min(xs), height=max(ys) - min(ys))
    return Polygon(points=[Point(x=x, y=y) for x, y in points]), box


def _overlaps(box: Box, others: list[Code]) -> bool:
    """Whether the centre of ``box`` lies inside the box of a code already found."""
    cx, cy = box.x + box.width / 2, box.y + box.height / 2
    return any(
        o.box.x <= cx <= o.box.x + o.box.width and o.box.y <= cy <= o.box.y + o.box.height
        for o in others
    )


def _retries(base: Variant) -> Iterator[Callable[[], Variant | None]]:
    """The enhanced copies to search when the original gave nothing, cheapest first."""
    yield lambda: sharpen(base, 2.0, 4.0)  # blurred modules and bars
    yield lambda: upscale(base, 2.0)  # bars 1-2 px wide
    yield lambda: _upscaled_sharp(base)  # both

    for angle in dominant_orientations(base.pixels):
        if abs(angle) > 4:  # a 1-D code at an angle: turn its bars upright
            yield partial(_rotated_sharp, base, angle)


def _rotated_sharp(source: Variant, angle: float) -> Variant:
    return _upscaled_sharp(rotate(source, angle))


def _upscaled_sharp(source: Variant) -> Variant:
    bigger = upscale(source, 2.0)
    return sharpen(bigger, 3.0, 4.0) if bigger is not None else sharpen(source, 2.0, 4.0)


class CodesPlugin(Plugin):
    """Decode QR codes and barcodes (EAN, UPC, Code 128/39/93, DataMatrix, PDF417, ...)."""

    name = "codes"
    version = "1.1.0"
    requires_packages = ("cv2", "zxingcpp", "numpy")
    install_hint = "pip install 'opencv-python-headless>=4.10,<5' 'zxing-cpp>=3.1,<4'"

    def setup(self) -> None:
        import cv2
        import numpy  # noqa: F401
        import zxingcpp

        self._cv2 = cv2
        self._zxing = zxingcpp
        self._local = threading.local()
        self._detectors()  # fail now if OpenCV lacks them

    def _detectors(self) -> tuple[Any, Any]:
        """This thread's QR detectors: OpenCV's detector objects are not thread-safe."""
        detectors: tuple[Any, Any] | None = getattr(self._local, "detectors", None)
        if detectors is None:
            detectors = (self._cv2.QRCodeDetectorAruco(), self._cv2.QRCodeDetector())
            self._local.detectors = detectors
        return detectors

    def _opencv_qr(self, variant: Variant) -> list[Code]:
        """QR codes by QRCodeDetectorAruco; the classic detector retries what it left undecoded."""
        found: list[Code] = []
        for detector in self._detectors():
            try:
                ok, texts, points, _ = detector.detectAndDecodeMulti(variant.pixels)
            except self._cv2.error:  # some degenerate inputs make OpenCV throw
                continue
            if not ok or points is None:
                break  # nothing detected: the classic detector (3-10x slower) rarely does better
            undecoded = 0
            for text, corners in zip(texts, points, strict=False):
                if not text:
                    undecoded += 1
                    continue
                polygon, box = _polygon([variant.point(float(x), float(y)) for x, y in corners])
                if not _overlaps(box, found):
                    found.append(
                        Code(
                            text=text,
                            format="QRCode",
                            polygon=polygon,
                            box=box,
                            decoder="opencv",
                            found_in=variant.name,
                        )
                    )
            if not undecoded:
                break
        return found

    def _zxing_codes(
        self, variant: Variant, formats: list[str], *, confirm: bool = True
    ) -> list[Code]:
        symbologies = self._zxing.BarcodeFormats(
            [getattr(self._zxing.BarcodeFormat, name) for name in formats]
        )
        codes: list[Code] = []
        for result in self._zxing.read_barcodes(variant.pixels, formats=symbologies):
            if not result.valid:
                continue
            name = result.format.name
            text = result.text
            # A UPC-A symbol is an EAN-13 symbol whose first digit is 0.
            if name == "EAN13" and "EAN13" not in formats and text.startswith("0"):
                name = "UPCA"
            if name == "UPCA" and len(text) == 13 and text.startswith("0"):
                text = text[1:]
            if name not in ALL_FORMATS:
                continue
            pos = result.position
            corners = [
                (float(p.x), float(p.y))
                for p in (pos.top_left, pos.top_right, pos.bottom_right, pos.bottom_left)
            ]
            polygon, box = _polygon([variant.point(x, y) for x, y in corners])
            if name == "QRCode" and _overlaps(box, codes):
                continue
            if (
                confirm
                and self._needs_second_reading(name, variant)
                and not self._read_again(variant, corners, result.format.name, result.text)
            ):
                continue
            codes.append(
                Code(
                    text=text,
                    format=cast(CodeFormat, name),
                    polygon=polygon,
                    box=box,
                    decoder="zxing",
                    found_in=variant.name,
                )
            )
        return codes

    @staticmethod
    def _needs_second_reading(name: str, variant: Variant) -> bool:
        """Codes without a checksum always; EAN/UPC (one mod-10 digit: a misread passes one
        time in ten) when read in an enhanced copy, whose sharpening can invent bars."""
        if name in UNCHECKED_FORMATS:
            return True
        return name in WEAK_CHECK_FORMATS and variant.name != "original"

    def _read_again(
        self, variant: Variant, corners: list[tuple[float, float]], symbology: str, text: str
    ) -> bool:
        """Whether the code's region, cut from ``variant`` and resampled differently, reads
        as the same text."""
        xs = [x for x, _ in corners]
        ys = [y for _, y in corners]
        pad = 0.3 * max(max(xs) - min(xs), max(ys) - min(ys)) + 20
        region = crop(
            variant,
            int(min(xs) - pad),
            int(min(ys) - pad),
            int(max(xs) + pad) + 1,
            int(max(ys) + pad) + 1,
        )
        symbologies = getattr(self._zxing.BarcodeFormat, symbology)
        for second in (upscale(region, 1.3), downscale(region, 0.8)):
            if second is None:
                continue
            results = self._zxing.read_barcodes(second.pixels, formats=symbologies)
            if any(result.valid and result.text == text for result in results):
                return True
        return False

    @tool(timeout_s=30)
    def decode(
        self,
        image: Image,
        formats: Annotated[
            list[CodeFormat] | None,
            Field(description="Symbologies to look for; all of them when omitted."),
        ] = None,
        retry_budget_s: Annotated[
            float,
            Field(
                ge=0,
                le=20,
                description="Time allowed for retries on enhanced copies (sharpened, "
                "upscaled, rotated) when the image itself gave nothing; 0 turns them off.",
            ),
        ] = DEFAULT_RETRY_BUDGET_S,
        ctx: ToolContext | None = None,
    ) -> Codes:
        """Find and decode every QR code and barcode: text, format and corner polygon of each.

        Hard images (blurred, thin bars, 1-D codes at an angle) are retried on enhanced
        copies when the image itself gives nothing. A UPC-A symbol is an EAN-13 symbol whose
        first digit is 0: it is reported as EAN13 unless ``formats`` asks for UPCA and not
        EAN13.
        """
        started = time.monotonic()
        wanted: list[str] = list(dict.fromkeys(formats)) if formats else list(ALL_FORMATS)
        base = identity(image.array("L"))
        codes = self._zxing_codes(base, wanted)
        attempts = [base.name]
        if not codes and retry_budget_s > 0:
            codes = self._retry(base, wanted, started + retry_budget_s, attempts, ctx)
        codes.sort(key=lambda c: (c.box.y, c.box.x))
        return Codes(codes=codes, count=len(codes), attempts=attempts)

    def _retry(
        self,
        base: Variant,
        wanted: list[str],
        deadline: float,
        attempts: list[str],
        ctx: ToolContext | None,
    ) -> list[Code]:
        if "QRCode" in wanted:
            attempts.append("original (opencv)")
            found = self._opencv_qr(base)
            if found:
                return found
        for make in _retries(base):
            if time.monotonic() >= deadline:
                break
            if ctx is not None:
                ctx.check_cancelled()
            variant = make()
            if variant is None:
                continue
            attempts.append(variant.name)
            found = self._zxing_codes(variant, wanted)
            if found:
                return found
        return []
