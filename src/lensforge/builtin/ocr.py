"""The ``ocr`` plugin: printed text read by Tesseract, in process through ``tesserocr``.

Robust by default: before recognition the page is turned upright (skew and quarter turns,
:mod:`lensforge.builtin.page`), small text is upscaled to the size Tesseract reads best, and
the page segmentation follows the layout (each text column read as one block). What was done
is reported in ``preprocessing``; an explicit ``psm`` or ``preprocess=false`` wins. Word
boxes are mapped back to the caller's original image.

Tesseract's language data comes from the system (Debian ``tesseract-ocr-eng`` and friends);
nothing is downloaded. When the data is missing the plugin is UNAVAILABLE and its reason
carries the install command. ``tesserocr``'s API object is not thread-safe, so each thread
keeps its own, one per language (see :class:`_Engines`).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, Field

from lensforge.builtin.page import prepare_page
from lensforge.builtin.rapid import INSTALL_HINT as RAPID_HINT
from lensforge.builtin.rapid import LANG as RAPID_LANG
from lensforge.builtin.rapid import RapidEngine, rapidocr_installed
from lensforge.errors import PluginUnavailable, ValidationError
from lensforge.media import Image
from lensforge.plugin import Plugin, ToolContext, tool
from lensforge.results import Box, TextSpan

if TYPE_CHECKING:
    import numpy as np
    from PIL.Image import Image as PILImage

INSTALL_COMMAND = "apt-get install -y tesseract-ocr tesseract-ocr-eng"
# Where distributions put Tesseract's language data; $TESSDATA_PREFIX comes first.
TESSDATA_DIRS = (
    "/usr/share/tesseract-ocr/5/tessdata",
    "/usr/share/tesseract-ocr/4.00/tessdata",
    "/usr/share/tessdata",
    "/usr/local/share/tessdata",
    "/opt/homebrew/share/tessdata",
)
_NOT_LANGUAGES = {"osd", "equ"}  # orientation/script detection and equations: not for `lang`

PageSegMode = Literal[1, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13]
DEFAULT_PSM = 6  # with preprocessing: each text column, straightened, is one uniform block
AUTO_MIN_CONFIDENCE = 0.85  # engine 'auto': below this Tesseract reading, try RapidOCR too
BLANK_STD = 3.0  # ... unless the page is blank (grey levels this flat): nothing to find


def find_tessdata() -> Path | None:
    """The first directory holding ``*.traineddata`` files, or None."""
    candidates = [os.environ.get("TESSDATA_PREFIX", ""), *TESSDATA_DIRS]
    for candidate in candidates:
        if not candidate:
            continue
        for path in (Path(candidate), Path(candidate) / "tessdata"):
            if path.is_dir() and any(path.glob("*.traineddata")):
                return path
    return None


def installed_languages(tessdata: Path | None = None) -> list[str]:
    """Codes of the languages whose data is installed (``eng``, ``deu``, ...), sorted."""
    tessdata = tessdata or find_tessdata()
    if tessdata is None:
        return []
    return sorted(p.stem for p in tessdata.glob("*.traineddata") if p.stem not in _NOT_LANGUAGES)


def _describe_read() -> str:
    languages = installed_languages()
    installed = ", ".join(languages) if languages else f"none (install: {INSTALL_COMMAND})"
    return (
        "Read printed text with Tesseract: the full text, its lines and its words, each with a "
        "box (pixels) and a confidence (0-1). `lang` names one installed language or several "
        f"joined by '+' (e.g. 'eng+deu'). Installed languages: {installed}."
    )


class Preprocessing(BaseModel):
    """What was done to the page before recognition."""

    deskew_deg: float = Field(
        description="Small rotation applied to straighten the lines (degrees, counter-clockwise)."
    )
    rotated: Literal[0, 90, 180, 270] = Field(
        description="Quarter turns applied (degrees, counter-clockwise) to set the page upright."
    )
    scale: float = Field(description="Upscaling factor applied to small text (1 = none).")
    psm: int = Field(description="The page segmentation mode used.")
    columns: int = Field(description="Text columns found; each was read as its own block.")
    flattened: bool = Field(
        default=False,
        description="Whether uneven lighting was divided out (the page's paper made white).",
    )


class OcrResult(BaseModel):
    """Text read from an image. Words below ``min_confidence`` are left out of everything."""

    text: str = Field(
        description="The kept words: lines joined by newlines, paragraphs by a blank line."
    )
    lines: list[TextSpan] = Field(description="Text lines, top to bottom; box = union of words.")
    words: list[TextSpan] = Field(description="Words in reading order.")
    confidence: float = Field(ge=0, le=1, description="Mean confidence of the kept words.")
    lang: str = Field(description="The language(s) used ('ch+en' for rapidocr).")
    psm: int = Field(description="Tesseract's page segmentation mode used (0 for rapidocr).")
    engine: Literal["tesseract", "rapidocr"] = Field(
        default="tesseract", description="The OCR engine that read the text."
    )
    preprocessing: Preprocessing | None = Field(
        default=None, description="What was done to the page first; null when nothing was."
    )


class _Engines:
    """Tesseract API objects, one per (thread, language): the API is not thread-safe."""

    def __init__(self, tessdata: Path) -> None:
        self.tessdata = tessdata
        self._local = threading.local()

    @contextmanager
    def get(self, lang: str) -> Iterator[Any]:
        engines: dict[str, Any] | None = getattr(self._local, "engines", None)
        if engines is None:
            engines = self._local.engines = {}
        api = engines.get(lang)
        if api is None:
            import tesserocr

            # tessdata path with a trailing separator: Tesseract concatenates file names to it
            api = tesserocr.PyTessBaseAPI(path=f"{self.tessdata}{os.sep}", lang=lang)
            engines[lang] = api
        try:
            yield api
        finally:
            api.Clear()


def _word_text(word: Any, level: int) -> str:
    try:
        return str(word.GetUTF8Text(level) or "").strip()
    except RuntimeError:  # tesserocr's way of saying "no text here"
        return ""


def _tess_box(bbox: tuple[int, int, int, int] | None) -> Box | None:
    if bbox is None:
        return None
    x1, y1, x2, y2 = bbox
    return Box(x=x1, y=y1, width=max(0, x2 - x1), height=max(0, y2 - y1))


def _union(boxes: list[Box]) -> Box | None:
    if not boxes:
        return None
    left = min(b.x for b in boxes)
    top = min(b.y for b in boxes)
    right = max(b.x + b.width for b in boxes)
    bottom = max(b.y + b.height for b in boxes)
    return Box(x=left, y=top, width=right - left, height=bottom - top)


def _for_tesseract(pil: PILImage) -> PILImage:
    if pil.mode in ("L", "RGB"):
        return pil
    if pil.mode in ("RGBA", "LA", "P", "PA"):
        # transparent pixels become white paper, not black
        from PIL import Image as PILImageModule

        rgba = pil.convert("RGBA")
        background = PILImageModule.new("RGBA", rgba.size, (255, 255, 255, 255))
        return PILImageModule.alpha_composite(background, rgba).convert("RGB")
    return pil.convert("RGB")


def _set_image(api: Any, pil: PILImage) -> None:
    """Hand Tesseract the pixels themselves. ``SetImage(pil)`` would first save the image in
    its own format (PNG for a decoded PNG: ~1.4 ms of compression for a small page) for
    Leptonica to decode again."""
    image = _for_tesseract(pil)
    channels = 1 if image.mode == "L" else 3
    api.SetImageBytes(image.tobytes(), image.width, image.height, channels, image.width * channels)
    # the file's resolution (PNG pHYs, JPEG JFIF or EXIF, TIFF), when plausible; else Tesseract
    # estimates it. Pillow gives numbers: ints, floats or IFDRationals.
    x_dpi = (pil.info.get("dpi") or (0,))[0]
    if 70 <= x_dpi <= 2400:
        api.SetSourceResolution(round(x_dpi))


class OcrPlugin(Plugin):
    """Optical character recognition of printed text (Tesseract 5, in process)."""

    name = "ocr"
    version = "1.0.0"
    requires_packages = ("tesserocr",)
    install_hint = f"{INSTALL_COMMAND} && pip install 'tesserocr>=2.13,<3'"

    def setup(self) -> None:
        tessdata = find_tessdata()
        languages = installed_languages(tessdata)
        if tessdata is None or not languages:
            raise PluginUnavailable(
                "Tesseract language data not found (looked in $TESSDATA_PREFIX and "
                f"{', '.join(TESSDATA_DIRS)}); install it with: {INSTALL_COMMAND}",
                plugin=self.name,
            )
        import tesserocr  # noqa: F401  (fail here, not on the first call, if it is broken)

        self.tessdata = tessdata
        self.languages = languages
        self.has_osd = (tessdata / "osd.traineddata").is_file()
        self.rapid = RapidEngine() if rapidocr_installed() else None
        self.engines = _Engines(tessdata)
        default = "eng" if "eng" in languages else languages[0]
        with self.engines.get(default):  # load the default language once, now
            pass

    def _check_lang(self, lang: str, psm: int) -> None:
        wanted = [part for part in lang.split("+") if part]
        missing = [part for part in wanted if part not in self.languages]
        if not wanted or missing:
            raise ValidationError(
                f"Language(s) {', '.join(missing) or repr(lang)} not installed; installed: "
                f"{', '.join(self.languages)}. Others install as Debian packages "
                "tesseract-ocr-<code> (e.g. tesseract-ocr-deu).",
                details={"lang": lang, "installed": self.languages},
            )
        if psm in (1, 12) and not self.has_osd:
            raise ValidationError(
                f"Page segmentation mode {psm} needs orientation data; install it with: "
                "apt-get install -y tesseract-ocr-osd",
                details={"psm": psm},
            )

    @tool(timeout_s=60, description=_describe_read())
    def read(
        self,
        image: Image,
        lang: Annotated[
            str,
            Field(
                pattern=r"^[A-Za-z_]+(\+[A-Za-z_]+)*$",
                description="Tesseract language code(s), several joined by '+'.",
            ),
        ] = "eng",
        psm: Annotated[
            PageSegMode | None,
            Field(
                description="Tesseract page segmentation mode; when omitted it follows the "
                "layout (6, one block per text column). 3 automatic, 4 one column, "
                "6 one uniform block, 7 one line, 8 one word, 11 sparse text, 13 raw line; "
                "1 and 12 also detect orientation."
            ),
        ] = None,
        preprocess: Annotated[
            bool,
            Field(
                description="Straighten and turn the page upright, upscale small text and "
                "read column by column before recognition (reported in `preprocessing`)."
            ),
        ] = True,
        min_confidence: Annotated[
            float, Field(ge=0, le=1, description="Drop words less confident than this (0-1).")
        ] = 0.0,
        engine: Annotated[
            Literal["auto", "tesseract", "rapidocr"],
            Field(
                description="'tesseract'; 'rapidocr' (PP-OCR models: better on photos and "
                "scene text, about a second per image, reads Chinese and English, ignores "
                "`lang`); 'auto': Tesseract, then RapidOCR when Tesseract's confidence is "
                f"below {AUTO_MIN_CONFIDENCE} and RapidOCR is installed, keeping the more "
                "confident reading. An explicit `psm` means Tesseract. `engine` in the "
                "result says which read the text."
            ),
        ] = "auto",
        ctx: ToolContext | None = None,
    ) -> OcrResult:
        """Read printed text: full text, lines and words with boxes (Tesseract or RapidOCR)."""
        if engine == "rapidocr":
            return self._read_rapid(image, min_confidence)
        result = self._read_tesseract(image, lang, psm, preprocess, min_confidence, ctx)
        if (
            engine == "auto"
            and psm is None
            and self.rapid is not None
            and result.confidence < AUTO_MIN_CONFIDENCE
            and (result.words or float(image.array("L").std()) >= BLANK_STD)
        ):
            if ctx is not None:
                ctx.check_cancelled()
            other = self._read_rapid(image, min_confidence)
            if other.words and other.confidence > result.confidence:
                return other
        return result

    def _read_rapid(self, image: Image, min_confidence: float) -> OcrResult:
        if self.rapid is None:
            raise ValidationError(
                f"The rapidocr engine is not installed here; install it with: {RAPID_HINT}",
                details={"engine": "rapidocr"},
            )
        bgr = image.array("RGB")[:, :, ::-1].copy()
        lines = [(False, spans) for spans in self.rapid.read(bgr, min_confidence)]
        return _result(lines, RAPID_LANG, 0, None).model_copy(update={"engine": "rapidocr"})

    def _read_tesseract(
        self,
        image: Image,
        lang: str,
        psm: int | None,
        preprocess: bool,
        min_confidence: float,
        ctx: ToolContext | None,
    ) -> OcrResult:
        chosen_psm = psm if psm is not None else DEFAULT_PSM if preprocess else 3
        self._check_lang(lang, chosen_psm)
        with self.engines.get(lang) as api:
            if not preprocess:
                api.SetPageSegMode(chosen_psm)
                _set_image(api, image.pil)
                if ctx is not None:
                    ctx.check_cancelled()
                lines = _recognise(api, min_confidence)
                return _result(lines, lang, chosen_psm, None)
            page = _for_tesseract(image.pil).convert("L")
            prepared = prepare_page(
                _gray_array(page),
                lambda pixels: _mean_confidence(api, pixels),
                split_columns=psm is None,
            )
            if ctx is not None:
                ctx.check_cancelled()
            api.SetPageSegMode(chosen_psm)
            lines = []
            for column in prepared.columns:
                pixels = column.pixels
                api.SetImageBytes(
                    pixels.tobytes(), pixels.shape[1], pixels.shape[0], 1, pixels.shape[1]
                )
                dpi = _declared_dpi(image.pil)
                if dpi:
                    api.SetSourceResolution(round(dpi * prepared.scale))
                column_lines = _recognise(api, min_confidence)
                for _, spans in column_lines:
                    for span in spans:
                        if span.box is not None:
                            x, y, w, h = column.box(
                                span.box.x, span.box.y, span.box.width, span.box.height
                            )
                            span.box = _clamped(x, y, w, h, image.width, image.height)
                lines += column_lines
                if ctx is not None:
                    ctx.check_cancelled()
        report = Preprocessing(
            deskew_deg=round(prepared.deskew_deg, 2),
            rotated=prepared.rotated,
            scale=round(prepared.scale, 3),
            psm=chosen_psm,
            columns=len(prepared.columns),
            flattened=prepared.flattened,
        )
        return _result(lines, lang, chosen_psm, report)


def _gray_array(pil: PILImage) -> np.ndarray:
    import numpy as np

    return np.asarray(pil)


def _clamped(x: float, y: float, w: float, h: float, width: int, height: int) -> Box:
    x0, y0 = max(0.0, x), max(0.0, y)
    x1, y1 = min(float(width), x + w), min(float(height), y + h)
    return Box(
        x=round(x0, 1),
        y=round(y0, 1),
        width=round(max(0.0, x1 - x0), 1),
        height=round(max(0.0, y1 - y0), 1),
    )


def _declared_dpi(pil: PILImage) -> float | None:
    x_dpi = (pil.info.get("dpi") or (0,))[0]
    return float(x_dpi) if 70 <= x_dpi <= 2400 else None


def _mean_confidence(api: Any, pixels: np.ndarray) -> float:
    """Tesseract's mean word confidence (0-100) on a grey sample, read as one block."""
    api.SetPageSegMode(6)
    api.SetImageBytes(pixels.tobytes(), pixels.shape[1], pixels.shape[0], 1, pixels.shape[1])
    return float(api.MeanTextConf())


_Line = tuple[bool, list[TextSpan]]  # (starts a paragraph, its words)


def _recognise(api: Any, min_confidence: float) -> list[_Line]:
    """Recognise the image set on ``api``: its lines of kept words, boxes in its pixels."""
    from tesserocr import RIL, iterate_level

    lines: list[_Line] = []
    api.Recognize()
    iterator = api.GetIterator()  # None when the page holds no text
    empty = iterator is None or iterator.Empty(RIL.WORD)
    for word in () if empty else iterate_level(iterator, RIL.WORD):
        if word.IsAtBeginningOf(RIL.TEXTLINE) or not lines:
            lines.append((word.IsAtBeginningOf(RIL.PARA) or not lines, []))
        text = _word_text(word, RIL.WORD)
        confidence = min(1.0, max(0.0, float(word.Confidence(RIL.WORD)) / 100.0))
        if not text or confidence < min_confidence:
            continue
        box = _tess_box(word.BoundingBox(RIL.WORD))
        lines[-1][1].append(TextSpan(text=text, confidence=confidence, box=box))
    return lines


def _result(lines: list[_Line], lang: str, psm: int, report: Preprocessing | None) -> OcrResult:
    words: list[TextSpan] = []
    line_spans: list[TextSpan] = []
    text_parts: list[str] = []
    for new_paragraph, spans in lines:
        if not spans:
            continue
        words += spans
        line_text = " ".join(span.text for span in spans)
        line_spans.append(
            TextSpan(
                text=line_text,
                confidence=sum(span.confidence for span in spans) / len(spans),
                box=_union([span.box for span in spans if span.box is not None]),
            )
        )
        if new_paragraph and text_parts:
            text_parts.append("")
        text_parts.append(line_text)
    mean = sum(span.confidence for span in words) / len(words) if words else 0.0
    return OcrResult(
        text="\n".join(text_parts),
        lines=line_spans,
        words=words,
        confidence=mean,
        lang=lang,
        psm=psm,
        preprocessing=report,
    )
