"""``GET /`` the chat page (one static file, no build step) and ``POST /convert``, the
Traditional/Simplified switch it uses (OpenCC through ``rag.text.normalize``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from fastapi import APIRouter
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field

from rag.errors import InputError
from rag.text.normalize import to_simplified, to_traditional

__all__ = ["router"]

router = APIRouter(tags=["web"])
MAX_CHARS = 200_000
PAGE = Path(__file__).resolve().parent.parent / "static" / "index.html"


class ConvertRequest(BaseModel):
    texts: list[str] = Field(max_length=2000)
    to: Literal["simplified", "traditional"]


class ConvertResponse(BaseModel):
    texts: list[str]


@router.get("/", include_in_schema=False)
def page() -> FileResponse:
    return FileResponse(PAGE, media_type="text/html; charset=utf-8",
                        headers={"Cache-Control": "no-cache"})


@router.post("/convert", summary="Convert texts between Traditional and Simplified Chinese")
def convert(body: ConvertRequest) -> ConvertResponse:
    if sum(len(t) for t in body.texts) > MAX_CHARS:
        raise InputError(f"at most {MAX_CHARS} characters per conversion")
    fn = to_simplified if body.to == "simplified" else to_traditional
    # line by line: to_simplified is the search normalization, which would fold newlines
    return ConvertResponse(texts=["\n".join(fn(line) for line in t.split("\n")) for t in body.texts])
