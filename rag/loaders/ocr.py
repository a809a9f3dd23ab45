"""Text from pictures: images (PNG, JPEG, TIFF, BMP, WebP) and PDF pages without a text layer.

RapidOCR 3 runs the PP-OCR detection, orientation and recognition models on onnxruntime; the
models ship inside its wheel, and we point it at those files by path, so it never reaches for
its download step (it would otherwise fetch any model it does not find). The engine loads once,
on first use. OCR'd lines keep their boxes, so ``layout`` joins wrapped lines into paragraphs
exactly as it does for a PDF's text layer; OCR's spaces are guesses from gaps, treated like the
spaces PDFium generates.

OCR is an extra (``pip install -e '.[ocr]'``): without it an image is refused with that line.
"""

from __future__ import annotations

import io
from functools import lru_cache
from importlib.util import find_spec
from pathlib import Path
from typing import Any

from rag.errors import DocumentError, DocumentTooLargeError, ModelError
from rag.loaders import Extracted, Limits, sniff
from rag.loaders.layout import GENERATED, Line, assemble, tidy_line

__all__ = ["available", "load", "read_lines"]

MODEL_TASKS = ("det", "cls", "rec")
INSTALL = "pip install -e '.[ocr]'"


def available() -> bool:
    """Whether the ``ocr`` extra (rapidocr) is installed."""
    return find_spec("rapidocr") is not None


@lru_cache(maxsize=1)
def engine() -> Any:
    """The RapidOCR engine on the models in its wheel, found by path (no download step runs)."""
    import rapidocr

    models = Path(rapidocr.__file__).resolve().parent / "models"
    # detection on the image as it is, shrunk to 2000 px at most: the default ("min side 736")
    # blows a strip of text up 4x and costs ten times as long
    params: dict[str, Any] = {"Global.log_level": "error", "Det.limit_type": "max",
                              "Det.limit_side_len": 2000}
    for task in MODEL_TASKS:
        found = sorted(models.glob(f"*_{task}_*.onnx"))
        if not found:
            raise ModelError(f"OCR: no {task} model in {models}; reinstall rapidocr ({INSTALL})")
        params[f"{task.capitalize()}.model_path"] = str(found[-1])
    return rapidocr.RapidOCR(params=params)


def read_lines(image: Any, page: int = 1, scale: float = 1.0) -> list[Line]:
    """The text lines in ``image`` (a PIL image, or a numpy array in OpenCV's BGR order) in
    reading order (RapidOCR sorts its boxes top to bottom, then left to right), their boxes
    divided by ``scale`` (pixels per point, for a rendered PDF page)."""
    result = engine()(image)
    boxes, texts = getattr(result, "boxes", None), getattr(result, "txts", None)
    if boxes is None or texts is None:
        return []
    lines = [Line(tidy_line(text.replace(" ", GENERATED)), float(box[:, 0].min()) / scale,
                  float(box[:, 1].min()) / scale, float(box[:, 0].max()) / scale,
                  float(box[:, 1].max()) / scale, page)
             for box, text in zip(boxes, texts, strict=True)]
    return [line for line in lines if line.text]


def load(data: bytes, name: str, limits: Limits) -> Extracted:
    if not available():
        raise DocumentError(f"{name}: an image; reading it needs OCR, which is not installed"
                            f" ({INSTALL})")
    if not limits.ocr:
        raise DocumentError(f"{name}: an image, and OCR is turned off (RAG_OCR)")
    from PIL import Image, ImageOps

    try:
        with Image.open(io.BytesIO(data)) as image:  # a multi-page TIFF: its first page only
            check_pixels(image.width, image.height, name, limits)
            picture = ImageOps.exif_transpose(image).convert("RGB")  # a photo's upright, decoded
    except Image.DecompressionBombError as exc:
        raise DocumentTooLargeError(f"{name}: {exc}") from exc
    except (OSError, SyntaxError, ValueError) as exc:  # PIL's ways of saying "not an image"
        raise DocumentError(f"{name}: not a readable image ({exc})") from exc
    text, pages = assemble([read_lines(picture)])
    if not text:
        raise DocumentError(f"{name}: OCR found no text in the image")
    return Extracted(text, sniff(data, name), text.split("\n", 1)[0][:80], pages)


def check_pixels(width: int, height: int, name: str, limits: Limits) -> None:
    """An image decodes to 3 bytes a pixel: held to the same cap as any unpacked content."""
    if width * height * 3 > limits.max_unpacked_bytes:
        raise DocumentTooLargeError(f"{name}: {width} x {height} pixels, over"
                                    f" {limits.max_unpacked_bytes:,} bytes unpacked (RAG_MAX_UNPACKED_BYTES)")
