"""Read corpus files and find what to hide (scrape artifacts) without ever moving an offset."""
from __future__ import annotations

import datetime as dt
import os
import re
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from .models import Document, Span
from .words import MONTH_NAMES

SUFFIXES = (".txt", ".md", ".markdown", ".pdf", ".html", ".htm", ".xhtml", ".docx", ".epub")  # index/formats


class IngestError(Exception):
    """A path the user gave cannot be read as a corpus."""


class SkippedFile(Exception):
    """A file that is not indexable text; the message says why."""


@dataclass
class IngestOptions:
    """How the corpus is walked and read (set from qa's Settings by `configure`; the defaults are the safe ones).

    follow_links: a link inside the corpus to a file outside its root is followed (by default it is skipped with a
    warning: a folder someone else prepared must not make qa read and quote files the user never meant to share).
    max_text_bytes: a .txt/.md file larger than this is skipped without being read.
    lock_timeout: seconds to wait for another process's build of the same index before giving up with one line.
    """

    follow_links: bool = False
    max_text_bytes: int = 128 << 20
    lock_timeout: float = 600.0


OPTIONS = IngestOptions()
READ_BLOCK = 1 << 20  # files are read in blocks of this size; binary is sniffed from the first one


def configure(**changes) -> IngestOptions:
    """Set the ingest options for this process (qa.settings.Settings.configure_index); returns the previous ones."""
    global OPTIONS
    before = OPTIONS
    OPTIONS = replace(OPTIONS, **changes)
    return before


Warn = Callable[[str], None]


def printable_name(path: str | Path) -> bool:
    """Whether a path can be a document name: valid UTF-8 (no undecodable bytes) and at most PATH_MAX long."""
    text = str(path)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return len(os.fsencode(text)) < PATH_MAX


PATH_MAX = 4096


def _walk(top: Path, warn: Warn | None) -> list[Path]:
    """Every indexable file under `top` (hidden files and folders left out), links to folders not followed, links
    to files only when their target is inside `top` (or options.follow_links); what cannot be read is skipped with a
    warning, never failing the walk."""
    found: list[Path] = []
    root = str(top)
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            with os.scandir(folder) as entries:
                listed = list(entries)
        except OSError as exc:
            if warn:
                warn(f"skipped the folder {_relative(folder, root)}: {exc.strerror or exc}")
            continue
        for entry in listed:
            name = entry.name
            if name.startswith("."):
                continue
            path = entry.path
            try:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(path)
                    continue
                if os.path.splitext(name)[1].lower() not in SUFFIXES:
                    continue
                if not printable_name(path):
                    if warn:
                        warn(f"skipped {_relative(path, root)}: its name is not valid UTF-8 or is too long")
                    continue
                if entry.is_symlink():
                    if not entry.is_file():  # broken, or a link to a folder or a device
                        continue
                    target = os.path.realpath(path)
                    if not OPTIONS.follow_links and os.path.commonpath([target, root]) != root:
                        if warn:
                            warn(f"skipped {_relative(path, root)}: a link to a file outside the corpus "
                                 "(--follow-links or QA_FOLLOW_LINKS=1 follows it)")
                        continue
                elif not entry.is_file(follow_symlinks=False):
                    continue
            except OSError as exc:
                if warn:
                    warn(f"skipped {_relative(path, root)}: {exc.strerror or exc}")
                continue
            found.append(Path(path))
    return found


def _relative(path: str, root: str) -> str:
    """A path as a warning names it: relative to the corpus root, its middle cut when very long."""
    rel = os.path.relpath(path, root) if path.startswith(root) else path
    return rel if len(rel) <= 160 else f"{rel[:60]}…{rel[-90:]} ({len(rel):,} characters)"


def find_files(paths: list[Path], warn: Warn | None = None) -> tuple[Path, list[Path]]:
    """Expand files and folders (recursively) into text files, and the root citations are relative to.

    One odd file (an undecodable or over-long name, a link leaving the corpus, a folder that cannot be listed) is
    left out with a warning; only a path the user named that does not exist is an IngestError."""
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
            files.extend(_walk(p, warn))
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
    return os.path.commonpath([str(d) for d in dirs])


def open_regular(path: Path) -> tuple[int, os.stat_result]:
    """A read-only descriptor of a regular file and its stat, opened without blocking (a FIFO, socket or device
    swapped in for the file never hangs the build); OSError otherwise (SkippedFile for a file of another kind)."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
    fd = os.open(path, flags)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise SkippedFile("not a regular file (a pipe, socket or device)")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd, st


def read_bounded(path: Path, limit: int, sniff_binary: bool = True, hasher=None,
                 keep: bool = True) -> tuple[bytes, os.stat_result]:
    """The file's bytes (read in blocks), and its stat from the same open file.

    SkippedFile when it is larger than `limit` (checked before reading: a sparse 64 GB file is never read), or, with
    sniff_binary, when its first block holds NUL bytes and no UTF-16 byte order mark (a sparse file is all NULs).
    hasher, when given, is fed every block; keep=False reads and hashes without keeping the bytes."""
    fd, st = open_regular(path)
    try:
        if st.st_size > limit:
            raise SkippedFile(f"too large ({st.st_size >> 20:,} MB; the limit is {limit >> 20:,} MB)")
        blocks: list[bytes] = []
        total = 0
        while True:
            block = os.read(fd, READ_BLOCK)
            if not block:
                break
            if not total and sniff_binary and b"\x00" in block[:8192] and not block.startswith(_UTF16_BOMS):
                raise SkippedFile("binary")
            total += len(block)
            if total > limit:  # it grew while being read
                raise SkippedFile(f"too large (more than {limit >> 20:,} MB)")
            if hasher is not None:
                hasher.update(block)
            if keep:
                blocks.append(block)
        return b"".join(blocks), st
    finally:
        os.close(fd)


def read_text(path: Path) -> str:
    """Decode a file keeping newlines as they are; raise SkippedFile for empty, binary or undecodable files."""
    try:
        data, _ = read_bounded(path, OPTIONS.max_text_bytes)
    except OSError as exc:
        raise SkippedFile(f"unreadable ({exc.strerror})") from None
    return decode_text(data)


_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")


def decode_text(data: bytes) -> str:
    """A file's bytes as text: UTF-16 when it starts with a UTF-16 byte order mark (which is dropped), else UTF-8
    (a UTF-8 byte order mark stays as the text's first character, hidden from search); SkippedFile otherwise."""
    if data.startswith(_UTF16_BOMS) and not data.startswith(b"\xff\xfe\x00\x00"):  # not UTF-32
        try:
            text = data.decode("utf-16")
        except UnicodeDecodeError as exc:
            raise SkippedFile(f"not UTF-16 (byte {exc.start + 2})") from None
        if not text.strip():
            raise SkippedFile("empty")
        if "\x00" in text[:4096]:
            raise SkippedFile("binary")
        return text
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
_TAG = re.compile(r"</?(?:blockquote|p|div|span|em|strong|b|i|a|li|ul|ol|h[1-6]|br)\b[^>\n]{0,200}>|/(?<![<\w]/)(?:blockquote|p|div|span|em|strong|li|ul|ol|h[1-6])>")
_TWEET_SIGNATURE = re.compile(r"^[—–-] [^\n]{1,80}\(@\w{1,30}\)[^\n]{0,40}$", re.M)
_MARKUP = re.compile(r"\*{1,3}(?=\S)|\*(?<=\S\*)\*{0,2}|^#{1,6} ", re.M)
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


PULL_QUOTE_BLOCK = 40  # pull quotes are 40-400 normalised characters, looked up 40 characters at a time


class _QuoteTrie:
    """Candidate pull quotes keyed by 40-character blocks, so looking one up at a position costs a few dict probes.

    Each trie node maps the next block of a candidate to a child node, and the remainder (under 40 characters) of
    the candidates that end there, by its length, to the ids of the paragraphs holding exactly that text.
    """

    def __init__(self) -> None:
        self.children: dict[str, _QuoteTrie] = {}
        self.ends: dict[int, dict[str, list[int]]] = {}

    def add(self, norm: str, i: int) -> None:
        node = self
        full = len(norm) - len(norm) % PULL_QUOTE_BLOCK
        for k in range(0, full, PULL_QUOTE_BLOCK):
            node = node.children.setdefault(norm[k:k + PULL_QUOTE_BLOCK], _QuoteTrie())
        node.ends.setdefault(len(norm) - full, {}).setdefault(norm[full:], []).append(i)

    def starting_at(self, text: str, pos: int) -> Iterator[tuple[dict[str, list[int]], str]]:
        """(table, key) of every candidate text that text[pos:] starts with."""
        node = self
        while True:
            for length, table in list(node.ends.items()):
                key = text[pos:pos + length]
                if len(key) == length and key in table:
                    yield table, key
            block = text[pos:pos + PULL_QUOTE_BLOCK]
            node = node.children.get(block) if len(block) == PULL_QUOTE_BLOCK else None
            if node is None:
                return
            pos += PULL_QUOTE_BLOCK


def _repeated_pull_quotes(text: str) -> list[Span]:
    """Hide a short standalone paragraph whose words already appear in a longer or earlier paragraph.

    Linear in the text: candidates sit in a trie of 40-character blocks and each word start of each paragraph is
    looked up once (comparing each candidate with the whole text was quadratic: 14.6 s for 4 MB). A quote counts
    where it starts a word of the other paragraph.
    """
    paras = [(m.start(), m.end(), _normalise(m.group())) for m in _PARAGRAPH.finditer(text)]
    trie = _QuoteTrie()
    for i, (_, _, norm) in enumerate(paras):
        if PULL_QUOTE_BLOCK <= len(norm) <= 400:
            trie.add(norm, i)
    found: list[int] = []
    first_blocks = trie.children
    for j, (_, _, other) in enumerate(paras):
        if len(other) < PULL_QUOTE_BLOCK:
            continue
        pos = 0
        for word in other.split(" "):
            at, pos = pos, pos + len(word) + 1
            if other[at:at + PULL_QUOTE_BLOCK] not in first_blocks:
                continue
            for table, key in trie.starting_at(other, at):
                ids = table[key]  # paragraphs of exactly this text, in order, not yet found elsewhere
                if len(other) > len(paras[ids[0]][2]):
                    found += ids  # inside a longer paragraph
                    ids.clear()
                else:  # `other` is this very text: the copies after it repeat it
                    found += [i for i in ids if i > j]
                    ids[:] = [i for i in ids if i <= j]
                if not ids:
                    del table[key]
    return [Span(start=paras[i][0], end=paras[i][1]) for i in sorted(found)]


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


_NOT_NEWLINE = re.compile(r"[^\n]")


def visible_text(document: Document) -> str:
    """Same length as the original: hidden characters become spaces (newlines kept), markup becomes spaces."""
    text = document.text
    blanks = [(s.start, s.end, _NOT_NEWLINE.sub(" ", text[s.start:s.end])) for s in document.hidden]
    blanks += [(s.start, s.end, " " * (s.end - s.start)) for s in document.markup]
    blanks.sort(key=lambda b: b[0])
    pieces, pos = [], 0
    for start, end, blank in blanks:
        if end <= pos:
            continue
        if start < pos:  # overlaps the previous blank: only its remainder is new
            blank, start = blank[pos - start:], pos
        pieces += [text[pos:start], blank]
        pos = end
    pieces.append(text[pos:])
    return "".join(pieces)
