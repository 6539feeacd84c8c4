"""The ``ocr`` plugin: printed text read by Tesseract, in process through ``tesserocr``.

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

from lensforge.errors import PluginUnavailable, ValidationError
from lensforge.media import Image
from lensforge.plugin import Plugin, ToolContext, tool
from lensforge.results import Box, TextSpan

if TYPE_CHECKING:
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


class OcrResult(BaseModel):
    """Text read from an image. Words below ``min_confidence`` are left out of everything."""

    text: str = Field(
        description="The kept words: lines joined by newlines, paragraphs by a blank line."
    )
    lines: list[TextSpan] = Field(description="Text lines, top to bottom; box = union of words.")
    words: list[TextSpan] = Field(description="Words in reading order.")
    confidence: float = Field(ge=0, le=1, description="Mean confidence of the kept words.")
    lang: str = Field(description="The language(s) used.")
    psm: int = Field(description="The page segmentation mode used.")


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
            PageSegMode,
            Field(
                description="Tesseract page segmentation mode: 3 automatic (default), "
                "4 one column, 6 one uniform block, 7 one line, 8 one word, 11 sparse text, "
                "13 raw line; 1 and 12 also detect orientation."
            ),
        ] = 3,
        min_confidence: Annotated[
            float, Field(ge=0, le=1, description="Drop words less confident than this (0-1).")
        ] = 0.0,
        ctx: ToolContext | None = None,
    ) -> OcrResult:
        """Read printed text with Tesseract: full text, lines and words with boxes."""
        from tesserocr import RIL, iterate_level

        self._check_lang(lang, psm)
        words: list[TextSpan] = []
        lines: list[list[TextSpan]] = []
        paragraph_starts: set[int] = set()  # indexes into `lines`
        with self.engines.get(lang) as api:
            api.SetPageSegMode(psm)
            _set_image(api, image.pil)
            if ctx is not None:
                ctx.check_cancelled()
            api.Recognize()
            iterator = api.GetIterator()  # None when the page holds no text
            empty = iterator is None or iterator.Empty(RIL.WORD)
            for word in () if empty else iterate_level(iterator, RIL.WORD):
                new_line = word.IsAtBeginningOf(RIL.TEXTLINE) or not lines
                new_para = word.IsAtBeginningOf(RIL.PARA) or not lines
                text = _word_text(word, RIL.WORD)
                confidence = min(1.0, max(0.0, float(word.Confidence(RIL.WORD)) / 100.0))
                if new_line:
                    lines.append([])
                    if new_para:
                        paragraph_starts.add(len(lines) - 1)
                if not text or confidence < min_confidence:
                    continue
                span = TextSpan(
                    text=text, confidence=confidence, box=_tess_box(word.BoundingBox(RIL.WORD))
                )
                words.append(span)
                lines[-1].append(span)
        line_spans: list[TextSpan] = []
        text_parts: list[str] = []
        for index, line in enumerate(lines):
            if not line:
                continue
            line_text = " ".join(span.text for span in line)
            line_spans.append(
                TextSpan(
                    text=line_text,
                    confidence=sum(span.confidence for span in line) / len(line),
                    box=_union([span.box for span in line if span.box is not None]),
                )
            )
            if index in paragraph_starts and text_parts:
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
        )
