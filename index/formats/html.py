"""HTML: the main content only (trafilatura): menus, scripts, cookie banners, footers and related links dropped;
title, author and date from the page's meta tags when present."""
from __future__ import annotations

from pathlib import Path

from ..ingest import SkippedFile
from . import Extracted, read_head, sniff
from .layout import squash

MIN_CHARS = 40  # less main text than this: a page without an article (an index page, a login wall)


def decode(data: bytes) -> str:
    """Bytes of a saved page as text: UTF-8 (with or without BOM), else the charset its meta tag names, else cp1252."""
    import re

    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    m = re.search(rb"""charset=["']?([\w-]{2,40})""", data[:4096], re.I)
    for enc in ([m.group(1).decode("ascii")] if m else []) + ["cp1252"]:
        try:
            return data.decode(enc, errors="replace")
        except LookupError:
            continue
    return data.decode("latin-1")


def extract_html(page: str, url: str | None = None) -> Extracted:
    """The main text of a page as one paragraph a line, with its metadata; SkippedFile when it has none."""
    import trafilatura

    doc = trafilatura.bare_extraction(page, url=url, with_metadata=True, include_comments=False,
                                      include_tables=True, include_images=False, include_links=False,
                                      deduplicate=False)
    text = getattr(doc, "text", None) if doc is not None else None
    if not text or len(text.strip()) < MIN_CHARS:
        raise SkippedFile("no main content found (a page of links or a login wall?)")
    lines = [squash(ln) for ln in text.splitlines()]
    layer = "".join(ln + "\n" for ln in lines if ln)
    return Extracted(text=layer, format="html", title=getattr(doc, "title", None) or None,
                     author=getattr(doc, "author", None) or None, date=getattr(doc, "date", None) or None)


def read(path: Path) -> Extracted:
    """A saved web page's main text; SkippedFile for a file that is not HTML or has no main content."""
    head = read_head(path)
    kind = sniff(head)
    if kind not in ("an HTML page", "plain text"):
        raise SkippedFile(f"not HTML (the file is {kind})")
    data = path.read_bytes()
    if b"<" not in data[:65536]:
        raise SkippedFile("not HTML (no tags in it)")
    return extract_html(decode(data))
