"""Pure text rules shared by the format extractors: paragraphs, de-hyphenation, running headers and page numbers."""
from __future__ import annotations

import re
from collections import Counter

_SPACE = re.compile(r"[ \t\u00a0\u2000-\u200b\u202f\u3000]+")
_PAGE_NUMBER = re.compile(r"^(?:page|p\.|seite|pág\.?)?\s*[-–—(\[]?\s*\d{1,4}\s*[-–—)\]]?(?:\s*(?:of|/|von|de)\s*\d{1,4})?$",
                          re.I)
_ROMAN = re.compile(r"^[ivxlc]{1,7}$", re.I)
_HYPHEN_END = re.compile(r"(?<=[^\W\d_])[-\u00ad\u2010]$")


def squash(s: str) -> str:
    """One line of text: runs of blanks made one space, ends trimmed; a soft hyphen ending the line (PDFium writes
    it as \\x02) becomes "-" for join_lines, one inside the line is dropped."""
    s = _SPACE.sub(" ", s).strip()
    if s.endswith(("\u00ad", "\x02")):
        s = s[:-1] + "-"
    return s.replace("\u00ad", "").replace("\x02", "").strip()


def hyphen_end(text: str) -> bool:
    """Whether text ends with a word hyphenated at a line end (a letter, then a hyphen); reads two characters (a
    search for the pattern anchored at the end tried every position: quadratic when a paragraph grows line by line)."""
    return bool(_HYPHEN_END.search(text[-2:]))


def join_lines(lines: list[str]) -> str:
    """Lines of one paragraph as one line; a word hyphenated across a line end is joined back. Linear in the
    paragraph's length."""
    pieces: list[str] = []
    for raw in lines:
        line = squash(raw)
        if not line:
            continue
        if pieces and hyphen_end(pieces[-1]) and line[:1].islower():
            pieces[-1] = pieces[-1][:-1]
        elif pieces:
            pieces.append(" ")
        pieces.append(line)
    return squash("".join(pieces))


def is_page_number(line: str) -> bool:
    """A line that is only a page number ("12", "- 12 -", "Page 3 of 9", "iv")."""
    s = line.strip()
    return bool(s) and (bool(_PAGE_NUMBER.match(s)) or bool(_ROMAN.match(s)))


def _shape(line: str) -> str:
    return re.sub(r"\d+", "#", line.strip().lower())


def running_lines(edges: list[list[str]]) -> set[str]:
    """Shapes (digits as #) of the edge lines (top and bottom of each page) that recur on at least half the pages."""
    if len(edges) < 2:
        return set()
    counts: Counter[str] = Counter()
    for lines in edges:
        counts.update({_shape(ln) for ln in lines if ln.strip()})
    need = max(2, (len(edges) + 1) // 2)
    return {shape for shape, n in counts.items() if n >= need}


def is_running(line: str, running: set[str]) -> bool:
    """Whether an edge line is a running header or footer, or a page number."""
    return _shape(line) in running or is_page_number(line)
