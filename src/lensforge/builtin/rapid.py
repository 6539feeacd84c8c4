"""The second OCR engine of ``ocr.read``: RapidOCR (PP-OCR detection and recognition models
run by ONNX Runtime), better than Tesseract on photos and scene text.

Its default models ship inside the ``rapidocr`` wheel (checked: nothing is downloaded, the
plugin tests pass under ``unshare -n``). A ``RapidOCR`` object changes its own parameters on
every call, so each thread keeps its own, built on first use (about a second).
"""

from __future__ import annotations

import importlib.util
import os
import threading
from typing import TYPE_CHECKING, Any

from lensforge.results import Box, TextSpan

if TYPE_CHECKING:
    import numpy as np

INSTALL_HINT = "pip install 'rapidocr>=3.4,<4' 'onnxruntime>=1.20'"
LANG = "ch+en"  # what the default PP-OCR recognition model reads


def rapidocr_installed() -> bool:
    """Whether ``rapidocr`` and ``onnxruntime`` can be imported (without importing them)."""
    return all(importlib.util.find_spec(name) is not None for name in ("rapidocr", "onnxruntime"))


def _box(points: Any) -> Box:
    xs = [float(p[0]) for p in points]
    ys = [float(p[1]) for p in points]
    return Box(x=min(xs), y=min(ys), width=max(xs) - min(xs), height=max(ys) - min(ys))


class RapidEngine:
    """RapidOCR engines, one per thread, built on first use."""

    def __init__(self) -> None:
        self._local = threading.local()

    def _engine(self) -> Any:
        engine = getattr(self._local, "engine", None)
        if engine is None:
            from rapidocr import RapidOCR

            params: dict[str, Any] = {"Global.log_level": "error"}
            threads = os.environ.get("OMP_NUM_THREADS", "")
            if threads.isdigit():  # a worker per core: one thread per session
                params["EngineConfig.onnxruntime.intra_op_num_threads"] = int(threads)
            engine = self._local.engine = RapidOCR(params=params)
        return engine

    def read(self, bgr: np.ndarray, min_confidence: float) -> list[list[TextSpan]]:
        """Lines of words (boxes in ``bgr``'s pixels), top to bottom as RapidOCR orders them."""
        output = self._engine()(bgr, return_word_box=True)
        texts = output.txts or ()
        words_per_line = output.word_results or ()
        lines: list[list[TextSpan]] = []
        for index, line_text in enumerate(texts):
            words = words_per_line[index] if index < len(words_per_line) else ()
            spans = [
                TextSpan(text=str(text), confidence=min(1.0, max(0.0, float(score))), box=_box(pts))
                for text, score, pts in words
                if str(text).strip() and pts is not None
            ]
            if not spans and str(line_text).strip():  # no word boxes: the line as one span
                score = float(output.scores[index])
                box = _box(output.boxes[index])
                spans = [TextSpan(text=str(line_text), confidence=min(1.0, score), box=box)]
            spans = [span for span in spans if span.confidence >= min_confidence]
            if spans:
                lines.append(spans)
        return lines
