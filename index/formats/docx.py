"""Word (.docx): paragraphs and headings in document order, tables row by row ("cell | cell"), core properties."""
from __future__ import annotations

from pathlib import Path

from lxml import etree

from ..ingest import SkippedFile
from . import Extracted
from .archive import open_zip, read_member
from .layout import squash

W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
_PARSER = dict(resolve_entities=False, no_network=True, huge_tree=False, load_dtd=False)


def _xml(data: bytes, what: str):
    try:
        return etree.fromstring(data, etree.XMLParser(**_PARSER))
    except etree.XMLSyntaxError as exc:
        raise SkippedFile(f"corrupt DOCX ({what}: {exc})") from None


def _para_text(p) -> str:
    parts = []
    for el in p.iter(f"{W}t", f"{W}tab", f"{W}br", f"{W}cr", f"{W}noBreakHyphen"):
        if el.tag == f"{W}t":
            parts.append(el.text or "")
        elif el.tag == f"{W}noBreakHyphen":
            parts.append("-")
        else:
            parts.append(" ")
    return squash("".join(parts))


def _blocks(body) -> list[str]:
    """Paragraphs and table rows of a body (or a table cell), in order."""
    out = []
    for el in body:
        if el.tag == f"{W}p":
            out.append(_para_text(el))
        elif el.tag == f"{W}tbl":
            for row in el.iter(f"{W}tr"):
                cells = []
                for tc in row.findall(f"{W}tc"):
                    cell = " ".join(t for t in _blocks(tc) if t)
                    if not cells or cell != cells[-1]:  # a merged cell repeats
                        cells.append(cell)
                line = " | ".join(cells)
                if line.strip(" |"):
                    out.append(line)
        elif el.tag == f"{W}sdt":  # content controls wrap paragraphs
            content = el.find(f"{W}sdtContent")
            if content is not None:
                out += _blocks(content)
    return out


def _core(z) -> dict[str, str | None]:
    if "docProps/core.xml" not in z.NameToInfo:
        return {}
    data = read_member(z, "docProps/core.xml", "DOCX")
    root = _xml(data, "docProps/core.xml")
    ns = {"dc": "http://purl.org/dc/elements/1.1/", "dcterms": "http://purl.org/dc/terms/"}

    def first(path: str) -> str | None:
        el = root.find(path, ns)
        return squash(el.text) if el is not None and el.text and el.text.strip() else None

    created = first("dcterms:created")
    return {"title": first("dc:title"), "author": first("dc:creator"), "date": created[:10] if created else None}


def read(path: Path) -> Extracted:
    """A Word document's text, one paragraph (or table row) a line."""
    with open_zip(path, "DOCX") as z:
        root = _xml(read_member(z, "word/document.xml", "DOCX"), "word/document.xml")
        meta = _core(z)
    body = root.find(f"{W}body")
    if body is None:
        raise SkippedFile("corrupt DOCX (no document body)")
    text = "".join(line + "\n" for line in _blocks(body) if line)
    return Extracted(text=text, format="docx", **meta)
