"""The ``codes`` plugin: QR codes and barcodes, several per image.

QR codes are read by OpenCV (``QRCodeDetectorAruco``; the classic ``QRCodeDetector`` retries
when it found codes it could not decode); 1-D barcodes and the other 2-D symbologies by
``zxing-cpp``, which also catches QR codes the OpenCV detectors missed. Both libraries ship
everything they need.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Annotated, Any, Literal, cast, get_args

from pydantic import BaseModel, Field

from lensforge.media import Image
from lensforge.plugin import Plugin, ToolContext, tool
from lensforge.results import Box, Point, Polygon

if TYPE_CHECKING:
    import numpy as np

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


class Code(BaseModel):
    """One decoded code."""

    text: str = Field(description="The decoded content (for EAN/UPC: digits with check digit).")
    format: CodeFormat = Field(description="Symbology, e.g. QRCode, EAN13, Code128.")
    polygon: Polygon = Field(
        description="Corners in the code's own orientation: top-left first, then clockwise."
    )
    box: Box = Field(description="Axis-aligned bounding box of the polygon.")
    decoder: Literal["opencv", "zxing"] = Field(description="Which library decoded it.")


class Codes(BaseModel):
    codes: list[Code] = Field(description="Every code found, top to bottom, left to right.")
    count: int


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


class CodesPlugin(Plugin):
    """Decode QR codes and barcodes (EAN, UPC, Code 128/39/93, DataMatrix, PDF417, ...)."""

    name = "codes"
    version = "1.0.0"
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

    def _opencv_qr(self, gray: np.ndarray) -> list[Code]:
        """QR codes by QRCodeDetectorAruco; the classic detector retries what it left undecoded."""
        found: list[Code] = []
        for detector in self._detectors():
            try:
                ok, texts, points, _ = detector.detectAndDecodeMulti(gray)
            except self._cv2.error:  # some degenerate inputs make OpenCV throw
                continue
            if not ok or points is None:
                break  # nothing detected: the classic detector (3-10x slower) rarely does better
            undecoded = 0
            for text, corners in zip(texts, points, strict=False):
                if not text:
                    undecoded += 1
                    continue
                polygon, box = _polygon([(float(x), float(y)) for x, y in corners])
                if not _overlaps(box, found):
                    found.append(
                        Code(text=text, format="QRCode", polygon=polygon, box=box, decoder="opencv")
                    )
            if not undecoded:
                break
        return found

    def _zxing_codes(self, gray: np.ndarray, formats: list[str], found: list[Code]) -> list[Code]:
        symbologies = self._zxing.BarcodeFormats(
            [getattr(self._zxing.BarcodeFormat, name) for name in formats]
        )
        codes: list[Code] = []
        for result in self._zxing.read_barcodes(gray, formats=symbologies):
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
            corners = [pos.top_left, pos.top_right, pos.bottom_right, pos.bottom_left]
            polygon, box = _polygon([(float(p.x), float(p.y)) for p in corners])
            if name == "QRCode" and _overlaps(box, found):
                continue
            codes.append(
                Code(
                    text=text,
                    format=cast(CodeFormat, name),
                    polygon=polygon,
                    box=box,
                    decoder="zxing",
                )
            )
        return codes

    @tool(timeout_s=30)
    def decode(
        self,
        image: Image,
        formats: Annotated[
            list[CodeFormat] | None,
            Field(description="Symbologies to look for; all of them when omitted."),
        ] = None,
        ctx: ToolContext | None = None,
    ) -> Codes:
        """Find and decode every QR code and barcode: text, format and corner polygon of each.

        A UPC-A symbol is an EAN-13 symbol whose first digit is 0: it is reported as EAN13
        unless ``formats`` asks for UPCA and not EAN13.
        """
        wanted: list[str] = list(dict.fromkeys(formats)) if formats else list(ALL_FORMATS)
        gray = image.array("L")
        codes = self._opencv_qr(gray) if "QRCode" in wanted else []
        if ctx is not None:
            ctx.check_cancelled()
        if wanted:
            codes += self._zxing_codes(gray, wanted, codes)
        codes.sort(key=lambda c: (c.box.y, c.box.x))
        return Codes(codes=codes, count=len(codes))
