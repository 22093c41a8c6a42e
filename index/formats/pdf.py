"""PDF: the text layer (pypdfium2), lines rebuilt from text boxes, running headers, footers and page numbers
dropped, paragraphs reflowed to one line each and words hyphenated at line ends joined; page starts kept."""
from __future__ import annotations

import re
import statistics
from dataclasses import dataclass
from pathlib import Path

from ..ingest import SkippedFile
from . import Extracted, read_head, sniff
from .layout import hyphen_end, is_running, join_lines, running_lines, squash

_OPEN_END = re.compile(r"[^.!?…:;\"”’)\]]$")
LIGATURES = {0xFB00: "ff", 0xFB01: "fi", 0xFB02: "fl", 0xFB03: "ffi", 0xFB04: "ffl", 0xFB05: "st", 0xFB06: "st"}
_LIGATURE_CHARS = {chr(k): v for k, v in LIGATURES.items()} | {"\ufffe": "\x02"}  # get_text_range's line-end hyphen
MIN_CHARS_PER_PAGE = 10  # fewer characters on average: a scan without a text layer


@dataclass
class Line:
    """One line of a page in PDF units (y grows upwards)."""

    top: float
    bottom: float
    left: float
    right: float
    text: str

    @property
    def height(self) -> float:
        return self.top - self.bottom


def _chars(textpage, n: int) -> list[str]:
    """The page's characters, one entry per character index (so boxes line up); ligatures spelled out."""
    text = textpage.get_text_range(0, n) if n else ""
    if len(text) == n:  # one UTF-16 unit per character index (the usual case; 2.5x faster than one call each)
        return [_LIGATURE_CHARS.get(ch, ch) for ch in text]
    import pypdfium2.raw as pdfium_c

    codes = [pdfium_c.FPDFText_GetUnicode(textpage.raw, i) for i in range(n)]
    out = []
    for i, u in enumerate(codes):
        if 0xD800 <= u < 0xDC00 and i + 1 < n and 0xDC00 <= codes[i + 1] < 0xE000:
            out.append(chr(0x10000 + ((u - 0xD800) << 10) + (codes[i + 1] - 0xDC00)))
        elif 0xDC00 <= u < 0xE000 and i > 0 and 0xD800 <= codes[i - 1] < 0xDC00:
            out.append("")  # the second half of a pair joined above
        elif 0xD800 <= u < 0xE000 or u == 0 or u > 0x10FFFF:
            out.append(" ")
        else:
            out.append(LIGATURES.get(u) or chr(u))
    return out


def _lines(textpage) -> list[Line]:
    """The page's lines in reading (content) order, each with the box of its characters at font size."""
    n = textpage.count_chars()
    chars = _chars(textpage, n)
    out = []
    start = 0
    for i in range(n + 1):
        if i < n and chars[i] not in ("\r", "\n", "\x02"):
            continue
        # PDFium reports a hyphen ending a line as \x02 with no line break after it: end the line there
        line = squash("".join(chars[start:i]) + ("-" if i < n and chars[i] == "\x02" else ""))
        ink = [k for k in range(start, i) if chars[k].strip()]
        start = i + 1
        if not line or not ink:
            continue
        # loose boxes span the font's ascent and descent: a few characters give the line's box
        boxes = [textpage.get_charbox(k, loose=True) for k in {ink[0], ink[len(ink) // 2], ink[-1]}]
        out.append(Line(max(b[3] for b in boxes), min(b[1] for b in boxes), min(b[0] for b in boxes),
                        max(b[2] for b in boxes), line))
    return out


def _edges(lines: list[Line], edge: int = 2) -> set[int]:
    """Indexes of the lines nearest the top and the bottom of the page (where headers and footers sit)."""
    by_top = sorted(range(len(lines)), key=lambda i: -lines[i].top)
    return set(by_top[:edge]) | set(by_top[-edge:])


def _paragraphs(lines: list[Line], pitch: float, size: float, body_left: float, body_right: float) -> list[str]:
    """Group a page's lines into paragraphs: a wider gap, an indent, a change of size or a short closing line."""
    paras: list[list[str]] = []
    prev: Line | None = None
    for ln in lines:
        new = prev is None
        if prev is not None:
            gap = prev.top - ln.top
            room = body_right - prev.right
            first_word = ln.text.split(" ", 1)[0]
            char_width = (ln.right - ln.left) / max(1, len(ln.text))
            short = room > (len(first_word) + 2) * char_width and not _OPEN_END.search(prev.text[-1:])
            new = (gap > 1.35 * pitch * max(1.0, ln.height / size) or gap < 0 or ln.left > body_left + 8
                   or abs(ln.height - prev.height) > 0.35 * max(ln.height, prev.height) or short)
        if new:
            paras.append([ln.text])
        else:
            paras[-1].append(ln.text)
        prev = ln
    return [p for p in (join_lines(lines) for lines in paras) if p]


def _continues(prev: str, nxt: str, full: bool) -> bool:
    """A paragraph cut by a page break: the page ends mid-sentence on a full line, or the next starts in lower case
    (only prev's last character is read: prev may be a paragraph hundreds of pages long)."""
    return bool(_OPEN_END.search(prev[-1:])) and (nxt[:1].islower() or (full and not nxt[:1].isupper()) or
                                             (full and prev[-1:].isalpha()))


def layout(pages: list[list[Line]]) -> tuple[str, list[int]]:
    """The text layer of a document's pages and the offset where each page begins in it."""
    edges = [_edges(lines) for lines in pages]
    running = running_lines([[lines[i].text for i in sorted(e)] for lines, e in zip(pages, edges)])
    kept = [[ln for i, ln in enumerate(lines) if not (i in e and is_running(ln.text, running))]
            for lines, e in zip(pages, edges)]
    every = [ln for lines in kept for ln in lines]
    gaps = [a.top - b.top for lines in kept for a, b in zip(lines, lines[1:]) if 0 < a.top - b.top]
    pitch = statistics.median(gaps) if gaps else 12.0
    size = statistics.median([ln.height for ln in every]) if every else 10.0
    lefts = [round(ln.left) for ln in every]
    body_left = statistics.mode(lefts) if lefts else 0.0
    body_right = max((ln.right for ln in every), default=0.0)
    # each paragraph as its pieces and their length: one continued across every page of a flowing document is
    # extended page by page, never joined again from its start (that was quadratic in pages: 400 pages took 28 s)
    paras: list[list[str]] = []
    lens: list[int] = []
    marks: list[tuple[int, int]] = []  # per page: (paragraph, offset in it) where the page begins
    full = False  # the previous page's last line reaches the right margin
    for lines in kept:
        page_paras = _paragraphs(lines, pitch, size, body_left, body_right)
        if not page_paras:
            marks.append((len(paras), 0))
            continue
        head, rest = page_paras[0], page_paras[1:]
        if paras and _continues(paras[-1][-1], head, full):
            last = paras[-1]
            if hyphen_end(last[-1]) and head[:1].islower():  # join_lines' rule, across the page break
                last[-1] = last[-1][:-1]
                lens[-1] -= 1
            else:
                last.append(" ")
                lens[-1] += 1
            marks.append((len(paras) - 1, lens[-1]))
            last.append(head)
            lens[-1] += len(head)
        else:
            marks.append((len(paras), 0))
            paras.append([head])
            lens.append(len(head))
        for p in rest:
            paras.append([p])
            lens.append(len(p))
        full = lines[-1].right > body_right - 0.08 * (body_right - body_left)
    paras = ["".join(pieces) for pieces in paras]
    text = "".join(p + "\n" for p in paras)
    starts = [0]
    for p in paras:
        starts.append(starts[-1] + len(p) + 1)
    return text, [min(starts[i] + off, len(text)) for i, off in marks]


def _date(raw: str | None) -> str | None:
    m = re.match(r"D:(\d{4})(\d{2})(\d{2})", raw or "")
    return f"{m.group(1)}-{m.group(2)}-{m.group(3)}" if m else None


def _meta(value: str | None) -> str | None:
    v = (value or "").strip()
    return v if v and v.lower() not in ("(unspecified)", "untitled", "unknown") else None


def read(path: Path) -> Extracted:
    """A PDF's text layer with page starts; SkippedFile for encrypted, corrupt or scanned (textless) PDFs."""
    import pypdfium2 as pdfium

    head = read_head(path)
    if b"%PDF-" not in head[:1024]:
        raise SkippedFile(f"not a PDF (the file is {sniff(head)})")
    try:
        pdf = pdfium.PdfDocument(str(path))
    except pdfium.PdfiumError as exc:
        msg = str(exc).lower()
        if "password" in msg or "security" in msg:
            raise SkippedFile("encrypted PDF (needs a password)") from None
        raise SkippedFile(f"corrupt PDF ({str(exc).rstrip('.')})") from None
    try:
        pages = []
        for i in range(len(pdf)):
            page = pdf[i]
            textpage = page.get_textpage()
            pages.append(_lines(textpage))
            textpage.close()
            page.close()
        meta = pdf.get_metadata_dict(skip_empty=True)
    except pdfium.PdfiumError as exc:
        raise SkippedFile(f"corrupt PDF ({str(exc).rstrip('.')})") from None
    finally:
        pdf.close()
    chars = sum(len(ln.text) for lines in pages for ln in lines)
    if not pages:
        raise SkippedFile("PDF without pages")
    if chars < MIN_CHARS_PER_PAGE * len(pages):
        raise SkippedFile("no text layer (a scanned PDF? run OCR on it first)")
    text, starts = layout(pages)
    return Extracted(text=text, format="pdf", pages=starts, title=_meta(meta.get("Title")),
                     author=_meta(meta.get("Author")), date=_date(meta.get("CreationDate")))
