"""Read corpus files and find what to hide (scrape artifacts) without ever moving an offset."""
from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

from .models import Document, Span
from .words import MONTH_NAMES

SUFFIXES = (".txt", ".md", ".markdown", ".pdf", ".html", ".htm", ".xhtml", ".docx", ".epub")  # index/formats


class IngestError(Exception):
    """A path the user gave cannot be read as a corpus."""


class SkippedFile(Exception):
    """A file that is not indexable text; the message says why."""


def find_files(paths: list[Path]) -> tuple[Path, list[Path]]:
    """Expand files and folders (recursively) into text files, and the root citations are relative to."""
    if not paths:
        raise IngestError("no corpus path given")
    files: list[Path] = []
    dirs: list[Path] = []
    for p in paths:
        p = p.expanduser()
        if not p.exists():
            raise IngestError(f"no such file or directory: {p}")
        p = p.resolve()
        if p.is_dir():
            dirs.append(p)
            try:
                found = sorted(
                    f for f in p.rglob("*")
                    if f.suffix.lower() in SUFFIXES and f.is_file()
                    and not any(part.startswith(".") for part in f.relative_to(p).parts)
                )
            except OSError as exc:
                raise IngestError(f"cannot read directory {p}: {exc.strerror}") from None
            files.extend(found)
        elif p.is_file():
            files.append(p)
            dirs.append(p.parent)
        else:
            raise IngestError(f"not a regular file or directory: {p}")
    root = dirs[0] if len(dirs) == 1 else Path(_common_dir(dirs))
    unique = sorted(set(files))
    return root, unique


def doc_name(path: Path, root: Path) -> str:
    """How citations name a file: its path relative to the corpus root, or its name when outside it."""
    return path.relative_to(root).as_posix() if path.is_relative_to(root) else path.name


def _common_dir(dirs: list[Path]) -> str:
    import os

    return os.path.commonpath([str(d) for d in dirs])


def read_text(path: Path) -> str:
    """Decode a file as UTF-8 keeping newlines as they are; raise SkippedFile for empty, binary or non-UTF-8 files."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SkippedFile(f"unreadable ({exc.strerror})") from None
    if not data.strip():
        raise SkippedFile("empty")
    if b"\x00" in data[:8192]:
        raise SkippedFile("binary")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SkippedFile(f"not UTF-8 (byte {exc.start})") from None


# --- cleaning rules: each returns spans of the original text to hide -------------------------

_LEADING_DATE = re.compile(r"\A\s*date (\d{4}-\d{2}-\d{2})\s")
_URL = re.compile(r"(?:https?://|pic\.twitter\.com/)\S+")
_TAG = re.compile(r"</?(?:blockquote|p|div|span|em|strong|b|i|a|li|ul|ol|h[1-6]|br)\b[^>\n]{0,200}>|(?<![<\w])/(?:blockquote|p|div|span|em|strong|li|ul|ol|h[1-6])>")
_TWEET_SIGNATURE = re.compile(r"^[—–-] [^\n]{1,80}\(@\w{1,30}\)[^\n]{0,40}$", re.M)
_MARKUP = re.compile(r"\*{1,3}(?=\S)|(?<=\S)\*{1,3}|^#{1,6} ", re.M)
_FOOTER_START = [
    # publisher self-description ("The X Institute (XI) is a private, independent non-profit think tank ...")
    re.compile(r"^[^\n]{0,200}\bis an? (?:private|independent|non-?profit|nonpartisan)\b[^\n]*\b(?:think[- ]tank|institute|organi[sz]ation|foundation)\b", re.M | re.I),
    re.compile(r"^\s*(?:Latest|Related|More) [^\n]{0,40}(?:Commentaries|Articles|Stories|Posts)\s*$", re.M),
]
_WRITE_TO = re.compile(r"^\s*Write to ([A-Z][\w.'-]+(?: [A-Z][\w.'-]+){0,3}) at \S+@\S+\s*$", re.M)
_BYLINE = re.compile(r"^\s*[Bb]y ([A-Z][\w.'’-]+(?: (?:[A-Z][\w.'’-]+|and|de|van|von)){0,5})\s*$", re.M)
_DATE_LINE = re.compile(rf"^\s*(?:(\d{{1,2}}) ({MONTH_NAMES}) (\d{{4}})|({MONTH_NAMES}) (\d{{1,2}}), (\d{{4}}))\s*$", re.M)
_PARAGRAPH = re.compile(r"[^\n]+(?:\n(?!\s*\n)[^\n]+)*")


def _leading_metadata(text: str) -> tuple[list[Span], str | None]:
    m = _LEADING_DATE.match(text)
    if not m:
        return [], None
    return [Span(start=0, end=m.end() - 1)], m.group(1)


def _footer(text: str) -> tuple[list[Span], str | None]:
    """Hide publisher boilerplate and "write to" lines near the end; return the author they name."""
    spans: list[Span] = []
    author = None
    tail_from = int(len(text) * 0.6)
    cut = len(text)
    for rule in _FOOTER_START:
        for m in rule.finditer(text, tail_from):
            cut = min(cut, m.start())
            break
    if cut < len(text):
        spans.append(Span(start=cut, end=len(text)))
    for m in _WRITE_TO.finditer(text, tail_from):
        author = m.group(1)
        spans.append(Span(start=m.start(), end=m.end()))
    return spans, author


def _normalise(s: str) -> str:
    return " ".join(_MARKUP.sub("", s).split()).lower()


def _repeated_pull_quotes(text: str) -> list[Span]:
    """Hide a short standalone paragraph whose words already appear in a longer or earlier paragraph."""
    paras = [(m.start(), m.end(), _normalise(m.group())) for m in _PARAGRAPH.finditer(text)]
    joined = "\n".join(p[2] for p in paras)
    spans = []
    for i, (start, end, norm) in enumerate(paras):
        if len(norm) < 40 or len(norm) > 400 or joined.count(norm) < 2:
            continue
        for j, (_, _, other) in enumerate(paras):
            if j != i and norm in other and (len(other) > len(norm) or j < i):
                spans.append(Span(start=start, end=end))
                break
    return spans


def _date_line(text: str) -> str | None:
    for m in _DATE_LINE.finditer(text):
        day, month, year = (m.group(1), m.group(2), m.group(3)) if m.group(1) else (m.group(5), m.group(4), m.group(6))
        try:
            return dt.datetime.strptime(f"{day} {month} {year}", "%d %B %Y").date().isoformat()
        except ValueError:
            continue
    return None


def _title(text: str, hidden: list[Span]) -> str | None:
    """The first visible line, when it reads as a headline (short, no final full stop)."""
    for m in re.finditer(r"[^\n]+", text):
        line = m.group().strip()
        if not line or any(s.start <= m.start() < s.end for s in hidden):
            continue
        if _BYLINE.match(line):
            return None
        if 8 <= len(line) <= 200 and not re.search(r"[.!?:;,]$", line) and not line.startswith(("-", "*", "#")):
            return line
        return None
    return None


def merge_spans(spans: list[Span]) -> list[Span]:
    """Sort and merge overlapping or touching spans."""
    out: list[Span] = []
    for s in sorted(spans, key=lambda s: s.start):
        if out and s.start <= out[-1].end:
            out[-1] = Span(start=out[-1].start, end=max(out[-1].end, s.end))
        else:
            out.append(Span(start=s.start, end=s.end))
    return out


def clean_document(doc: str, text: str) -> Document:
    """Find artifacts and metadata in `text`; the text itself is kept exactly as read."""
    hidden, date = _leading_metadata(text)
    footer, author = _footer(text)
    hidden += footer
    hidden += [Span(start=m.start(), end=m.end()) for m in _URL.finditer(text)]
    hidden += [Span(start=m.start(), end=m.end()) for m in _TAG.finditer(text)]
    hidden += [Span(start=m.start(), end=m.end()) for m in _TWEET_SIGNATURE.finditer(text)]
    hidden += _repeated_pull_quotes(text)
    if text.startswith("\ufeff"):
        hidden.append(Span(start=0, end=1))
    hidden = merge_spans(hidden)
    markup = [Span(start=m.start(), end=m.end()) for m in _MARKUP.finditer(text)]
    if author is None:
        m = _BYLINE.search(text[:2000])
        author = m.group(1) if m else None
    return Document(
        doc=doc,
        text=text,
        hidden=hidden,
        markup=markup,
        title=_title(text, hidden),
        date=date or _date_line(text),
        author=author,
    )


def visible_text(document: Document) -> str:
    """Same length as the original: hidden characters become spaces (newlines kept), markup becomes spaces."""
    chars = list(document.text)
    for span in document.hidden:
        for i in range(span.start, span.end):
            if chars[i] != "\n":
                chars[i] = " "
    for span in document.markup:
        for i in range(span.start, span.end):
            chars[i] = " "
    return "".join(chars)
