"""EPUB: chapters in spine order, each XHTML page's block elements one a line; title, author, date from the OPF."""
from __future__ import annotations

import posixpath
import re
from pathlib import Path

from lxml import etree, html as lxml_html

from ..ingest import SkippedFile
from . import Extracted
from .archive import open_zip, read_member
from .html import decode as decode_page
from .layout import squash

_PARSER = dict(resolve_entities=False, no_network=True, huge_tree=False, load_dtd=False)
BLOCKS = {"p", "h1", "h2", "h3", "h4", "h5", "h6", "li", "blockquote", "pre", "dt", "dd", "td", "th", "tr",
          "div", "section", "article", "figcaption", "caption", "address", "aside", "header", "footer", "table",
          "ul", "ol", "dl", "body", "br", "hr"}


def _local(tag) -> str:
    return tag.rsplit("}", 1)[-1].lower() if isinstance(tag, str) else ""


def block_lines(root) -> list[str]:
    """Text of an (X)HTML tree, one block element a line; scripts and styles dropped."""
    lines: list[str] = []
    buf: list[str] = []

    def flush() -> None:
        line = squash("".join(buf))
        if line:
            lines.append(line)
        buf.clear()

    def walk(el) -> None:
        tag = _local(el.tag)
        if tag in ("script", "style", "head", "nav") or not isinstance(el.tag, str):
            if el.tail:
                buf.append(el.tail)
            return
        block = tag in BLOCKS
        if block:
            flush()
        if el.text:
            buf.append(el.text)
        for child in el:
            walk(child)
        if block:
            flush()
        if el.tail:
            buf.append(el.tail)

    walk(root)
    flush()
    return lines


_XML_ENCODING = re.compile(rb"""\A\s*<\?xml[^>]*?encoding\s*=\s*["']([A-Za-z0-9._-]{1,40})["']""")
_XML_DECLARATION = re.compile(r"\A\s*<\?xml[^>]*\?>")


def _page_text(data: bytes) -> str:
    """A page that is not well-formed XML, decoded as its XML declaration says, else as a web page is (UTF-8, its
    meta charset, cp1252): the HTML parser alone read UTF-8 as Latin-1 ("â\x80®" for U+202E)."""
    text = None
    m = _XML_ENCODING.match(data)
    if m:
        try:
            text = data.decode(m.group(1).decode("ascii"), errors="replace")
        except LookupError:
            text = None
    if text is None:
        text = decode_page(data)
    return _XML_DECLARATION.sub("", text, count=1)  # lxml refuses a str that declares an encoding


def _xml(data: bytes, what: str):
    try:
        return etree.fromstring(data, etree.XMLParser(**_PARSER))
    except etree.XMLSyntaxError:
        try:
            return lxml_html.fromstring(_page_text(data))
        except (etree.ParserError, ValueError) as exc:
            raise SkippedFile(f"corrupt EPUB ({what}: {exc})") from None


def read(path: Path) -> Extracted:
    """An e-book's text, chapter after chapter as its spine orders them."""
    with open_zip(path, "EPUB") as z:
        container = _xml(read_member(z, "META-INF/container.xml", "EPUB"), "container.xml")
        rootfile = next((el.get("full-path") for el in container.iter() if _local(el.tag) == "rootfile"), None)
        if not rootfile:
            raise SkippedFile("corrupt EPUB (container.xml names no package)")
        opf = _xml(read_member(z, rootfile, "EPUB"), rootfile)
        base = posixpath.dirname(rootfile)
        items = {el.get("id"): el for el in opf.iter() if _local(el.tag) == "item"}
        meta: dict[str, str | None] = {"title": None, "author": None, "date": None}
        for el in opf.iter():
            key = {"title": "title", "creator": "author", "date": "date"}.get(_local(el.tag))
            if key and meta[key] is None and el.text and el.text.strip():
                meta[key] = squash(el.text)
        lines: list[str] = []
        for ref in (el for el in opf.iter() if _local(el.tag) == "itemref"):
            item = items.get(ref.get("idref"))
            if item is None or "nav" in (item.get("properties") or "").split():
                continue
            if "html" not in (item.get("media-type") or ""):
                continue
            name = posixpath.normpath(posixpath.join(base, item.get("href", "")))
            page = _xml(read_member(z, name, "EPUB"), name)
            body = next((el for el in page.iter() if _local(el.tag) == "body"), page)
            lines += block_lines(body)
    if meta["date"]:
        meta["date"] = meta["date"][:10]
    return Extracted(text="".join(ln + "\n" for ln in lines), format="epub", **meta)
