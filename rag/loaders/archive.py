"""The zip-bomb guard in front of the Word, PowerPoint and Excel loaders (OOXML files are zip
archives): a corrupt or encrypted archive is refused, and so is one that would inflate past
``Limits.max_unpacked_bytes``, has a member compressed beyond any real document's ratio, or holds
more members than any real document.

Checking the sizes the archive declares is enough: Python's ``zipfile`` stops inflating a member
at its declared size (and fails its CRC check if the data goes on), so the declared total bounds
what python-docx, python-pptx and openpyxl can ever decompress.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from rag.errors import DocumentError, DocumentTooLargeError

if TYPE_CHECKING:
    from rag.loaders import Limits

__all__ = ["check_zip", "reading"]

MAX_MEMBERS = 10_000  # a large real deck has a few thousand parts (slides, media, rels)
MAX_RATIO = 200  # document XML deflates 5-50 to 1; 200 to 1 is padding or a bomb
RATIO_FLOOR = 10_000_000  # below 10 MB a high ratio costs nothing (a blank sheet's XML is all repeats)


def check_zip(data: bytes, name: str, limits: Limits) -> None:
    """Raise ``DocumentError`` for a corrupt or encrypted archive, ``DocumentTooLargeError`` for one
    that would unpack to more than ``limits`` allow; return quietly for a sane one."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError) as exc:
        raise DocumentError(f"{name}: a damaged file (not a readable zip archive: {exc})") from exc
    if len(members) > MAX_MEMBERS:
        raise DocumentTooLargeError(f"{name}: {len(members):,} parts in the archive, over the limit of"
                                    f" {MAX_MEMBERS:,}")
    if any(member.flag_bits & 0x1 for member in members):
        raise DocumentError(f"{name}: encrypted (password-protected); save it without a password")
    total = sum(member.file_size for member in members)
    if total > limits.max_unpacked_bytes:
        raise DocumentTooLargeError(f"{name}: unpacks to {total:,} bytes, over the limit of"
                                    f" {limits.max_unpacked_bytes:,}")
    for member in members:
        if member.file_size > RATIO_FLOOR and member.file_size > MAX_RATIO * max(member.compress_size, 1):
            raise DocumentTooLargeError(f"{name}: part {member.filename} inflates"
                                        f" {member.file_size // max(member.compress_size, 1):,} to 1"
                                        " (a zip bomb?)")


@contextmanager
def reading(name: str, kind: str) -> Iterator[None]:
    """Turn whatever a library raises on a damaged file into ``DocumentError``: python-docx,
    python-pptx and openpyxl fail with KeyError, ValueError, lxml's XMLSyntaxError and more,
    with no common base class to catch."""
    try:
        yield
    except DocumentError:
        raise
    except Exception as exc:
        raise DocumentError(f"{name}: not a readable {kind} file ({type(exc).__name__}: {exc})") from exc
