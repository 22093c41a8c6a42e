"""Format extractors that turn a file into the text the index searches, with a map back to the source.

`.txt` and `.md` are read as they are (offsets index the file itself). PDF, HTML, DOCX and EPUB become a *text
layer*: plain text, one paragraph a line, that the index stores beside its records and that citations index.
Non-text files are read in a separate worker process under a time, memory and size limit, so a hostile or broken
file is skipped with a reason instead of crashing or hanging a build.
"""
from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field

from ..ingest import SkippedFile

FORMATS = {".txt": "text", ".md": "text", ".markdown": "text", ".pdf": "pdf", ".html": "html", ".htm": "html",
           ".xhtml": "html", ".docx": "docx", ".epub": "epub"}
MAX_FILE_BYTES = 200 << 20  # a larger file is skipped without being opened
MAX_UNZIPPED_BYTES = 256 << 20  # DOCX/EPUB: the archive's members may expand to at most this much in all
MAX_RATIO = 200  # ... and no member of more than 1 MB may be compressed more than this (zip bombs)
MAX_TEXT_CHARS = 20_000_000  # a text layer longer than this is refused
TIMEOUT_SECONDS = 60.0  # per file, in the worker
MEMORY_BYTES = 3 << 30  # the worker's address-space limit
EXTRACTOR_VERSION = 2  # 2: EPUB chapters that are not XML keep their encoding. Raise when a format's text layer changes: indexes re-read (only) their non-text files

__all__ = ["FORMATS", "EXTRACTOR_VERSION", "Extracted", "SkippedFile", "format_of", "extract", "Extractor"]


class Extracted(BaseModel):
    """A file's searchable text and what maps it back to the source."""

    text: str
    format: str = Field(description="text, pdf, html, docx or epub")
    title: str | None = None
    author: str | None = None
    date: str | None = None
    pages: list[int] | None = Field(default=None, description="PDF: offset in `text` where each page begins")


def format_of(path: Path) -> str | None:
    """The format a file name asks for, or None for a file the index does not read."""
    return FORMATS.get(path.suffix.lower())


def sniff(head: bytes) -> str:
    """What a file's first bytes say it is, for a 'claims one format, is another' warning."""
    h = head.lstrip()[:512].lower()
    if head.startswith(b"%PDF-") or b"%pdf-" in head[:1024].lower():
        return "a PDF"
    if head.startswith(b"PK\x03\x04"):
        return "a zip archive"
    if head.startswith(b"\x89PNG"):
        return "a PNG image"
    if head.startswith(b"\xff\xd8\xff"):
        return "a JPEG image"
    if head.startswith((b"\xd0\xcf\x11\xe0",)):
        return "an old Office (OLE) file"
    if h.startswith((b"<!doctype html", b"<html")) or b"<body" in h:
        return "an HTML page"
    if b"\x00" in head:
        return "binary data"
    return "plain text"


def extract(path: Path) -> Extracted:
    """Read one file in this process (no time limit); raise SkippedFile with the reason when it cannot be read."""
    fmt = format_of(path)
    if fmt is None:
        raise SkippedFile(f"unsupported file type {path.suffix!r}")
    if fmt == "text":
        from .text import read

        return read(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise SkippedFile(f"unreadable ({exc.strerror})") from None
    if size == 0:
        raise SkippedFile("empty")
    if size > MAX_FILE_BYTES:
        raise SkippedFile(f"too large ({size >> 20} MB; the limit is {MAX_FILE_BYTES >> 20} MB)")
    if fmt == "pdf":
        from .pdf import read
    elif fmt == "html":
        from .html import read
    elif fmt == "docx":
        from .docx import read
    else:
        from .epub import read
    out = read(path)
    if len(out.text) > MAX_TEXT_CHARS:
        raise SkippedFile(f"text too long ({len(out.text):,} characters; the limit is {MAX_TEXT_CHARS:,})")
    if not out.text.strip():
        raise SkippedFile("no text found")
    return out


def read_head(path: Path, n: int = 2048) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read(n)
    except OSError as exc:
        raise SkippedFile(f"unreadable ({exc.strerror})") from None


from .worker import Extractor  # noqa: E402  (needs extract above)
