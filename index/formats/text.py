"""Plain text and Markdown: the file itself is what citations index."""
from __future__ import annotations

from pathlib import Path

from ..ingest import read_text
from . import Extracted


def read(path: Path) -> Extracted:
    """The file decoded as UTF-8 with newlines untouched (metadata is found later, by ingest.clean_document)."""
    return Extracted(text=read_text(path), format="text")
