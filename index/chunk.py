"""Split visible text into sentences and group them into overlapping passages, offsets computed as we go."""
from __future__ import annotations

import hashlib
import re

from .ingest import visible_text
from .models import Chunk, ChunkParams, Document

ABBREVIATIONS = frozenset(
    """mr mrs ms dr prof gen sec sen rep gov lt col maj capt sgt adm cmdr st jr sr no nos vs v etc e.g i.e
    inc ltd co corp dept est fig al approx jan feb mar apr jun jul aug sep sept oct nov dec mt ft
    u.s u.k u.n e.u d.c u.s.a p.m a.m""".split()
)
_TERMINAL = re.compile(r"[.!?…]+[\"'”’)\]]*")
_LIST_ITEM = re.compile(r"[ \t]*(?:[-–—•*]\s|\d{1,3}[.)]\s|[a-z][.)]\s|\(\w{1,3}\)\s)")
_LINE_END_PUNCT = re.compile(r"[.!?…:;][\"'”’)\]]*\s*$")
_STARTER = re.compile(r"[\"'“‘(\[]*[A-Z0-9]")
_NON_SPACE = re.compile(r"\S")
_INITIAL = re.compile(r"[a-z]")
_DOTTED = re.compile(r"(?:[a-z]\.)+[a-z]")
_MARKER = re.compile(r"\d{1,3}|[a-z]")
MAX_SENTENCE_CHARS = 1500


def _is_boundary(text: str, punct_start: int, punct_end: int, line_start: int) -> bool:
    """Whether the terminal punctuation at [punct_start, punct_end) ends a sentence."""
    after = punct_end
    n = len(text)
    if after < n and not text[after].isspace():
        return False  # "2.0", "U.S.-Russia", "fund…where"
    j = after
    while j < n and text[j] in " \t":
        j += 1
    if j >= n or text[j] == "\n":
        return True
    if not _STARTER.match(text, j):
        return False
    if text[punct_start] == ".":
        k = punct_start
        while k > line_start and not text[k - 1].isspace() and text[k - 1] not in "(\"“'‘":
            k -= 1
        word = text[k:punct_start].lower()
        if word in ("no", "nos"):
            return not text[j].isdigit()  # "No. 5" but "said no. Wait"
        if word in ABBREVIATIONS or word.rstrip(".") in ABBREVIATIONS:
            return False
        if _INITIAL.fullmatch(word):  # an initial: "J. Smith"
            return False
        if _DOTTED.fullmatch(word):  # "U.S", "e.g"
            return False
        if _MARKER.fullmatch(word) and not text[line_start:k].strip():
            return False  # a list marker: "6. The size ..."
    return True


def _line_breaks_sentence(text: str, line_end: int, next_start: int, wrapped: bool) -> bool:
    """Whether the newline(s) between a line ending at line_end and the next line starting at next_start end a sentence."""
    prev_line = text[text.rfind("\n", 0, line_end) + 1:line_end]
    if not prev_line.strip() or _LINE_END_PUNCT.search(prev_line):
        return True
    nxt = text[next_start:next_start + 40]
    if _LIST_ITEM.match(nxt):
        return True
    first = nxt.lstrip()[:1]
    if first.islower():
        return False  # a sentence broken across lines (or pages)
    blank_between = text.count("\n", line_end, next_start) > 1
    return blank_between or not wrapped


def _looks_wrapped(text: str) -> bool:
    """Hard-wrapped prose: most lines short and ending mid-sentence."""
    lines = [ln for ln in text.split("\n") if ln.strip()]
    if len(lines) < 10:
        return False
    open_ended = sum(1 for ln in lines if not _LINE_END_PUNCT.search(ln))
    long_lines = sum(1 for ln in lines if len(ln) > 100)
    return open_ended / len(lines) > 0.5 and long_lines / len(lines) < 0.1


def split_sentences(text: str, start: int = 0, end: int | None = None, wrapped: bool = False) -> list[tuple[int, int]]:
    """Sentence ranges of text[start:end], trimmed of whitespace; the ranges index `text` itself."""
    end = len(text) if end is None else end
    out: list[tuple[int, int]] = []
    sent_start = None
    pos = start
    while pos < end:
        nl = text.find("\n", pos, end)
        line_end = end if nl == -1 else nl
        line_start = pos
        i = pos
        while i < line_end:
            if sent_start is None:
                first = _NON_SPACE.search(text, i, line_end)
                if first is None:
                    break
                sent_start = i = first.start()
            # jump to the next terminal punctuation (a regex search, not a test at every character)
            m = _TERMINAL.search(text, i, line_end)
            if m is None:
                break
            if m.end() == line_end and _TERMINAL.match(text, m.start()).end() > line_end:
                break  # a run of terminal marks cut by the block's end ends no sentence
            if _is_boundary(text, m.start(), m.end(), line_start):
                out.append((sent_start, m.end()))
                sent_start = None
            i = m.end()
        if nl == -1:
            break
        next_start = nl
        while next_start < end and text[next_start].isspace():
            next_start += 1
        line_is_blank = not text[line_start:line_end].strip()
        if sent_start is not None and not line_is_blank and (
            next_start >= end or _line_breaks_sentence(text, line_end, next_start, wrapped)
        ):
            out.append((sent_start, line_end))
            sent_start = None
        pos = nl + 1
    if sent_start is not None:
        out.append((sent_start, end))
    return [piece for s, e in out for piece in _limit_length(text, *_trim(text, s, e))]


def _trim(text: str, s: int, e: int) -> tuple[int, int]:
    while e > s and text[e - 1].isspace():
        e -= 1
    return s, e


def _limit_length(text: str, s: int, e: int) -> list[tuple[int, int]]:
    """Cut run-on "sentences" (tables, lists without punctuation) at whitespace so passages stay readable."""
    pieces = []
    while e - s > MAX_SENTENCE_CHARS:
        cut = text.rfind(" ", s, s + MAX_SENTENCE_CHARS)
        if cut <= s:
            cut = s + MAX_SENTENCE_CHARS
        pieces.append(_trim(text, s, cut))
        s = cut
        while s < e and text[s].isspace():
            s += 1
    if e > s:
        pieces.append((s, e))
    return pieces


def visible_blocks(document: Document) -> list[tuple[int, int]]:
    """Ranges of the document between hidden artifacts; no passage crosses an artifact."""
    blocks = []
    pos = 0
    for span in document.hidden:
        if span.start > pos:
            blocks.append((pos, span.start))
        pos = max(pos, span.end)
    if pos < len(document.text):
        blocks.append((pos, len(document.text)))
    return blocks


def document_sentences(document: Document, clean: str | None = None) -> list[list[tuple[int, int]]]:
    """Sentences of each visible block, split on the markup-blanked text (`clean`, computed if not given)."""
    clean = visible_text(document) if clean is None else clean
    wrapped = _looks_wrapped(clean)
    blocks = []
    for b_start, b_end in visible_blocks(document):
        sentences = [
            (s, e) for s, e in split_sentences(clean, b_start, b_end, wrapped)
            if any(ch.isalnum() for ch in clean[s:e])
        ]
        if sentences:
            blocks.append(sentences)
    return blocks


def make_chunks(document: Document, params: ChunkParams, first_id: int = 0) -> list[Chunk]:
    """Windows of consecutive sentences up to params.max_chars, overlapping by params.overlap_sentences."""
    clean = visible_text(document)
    text = document.text
    chunks: list[Chunk] = []
    line, counted_to = 1, 0  # newlines are counted once, forward (chunk starts only grow), not from 0 per chunk
    for sentences in document_sentences(document, clean):
        i = 0
        while i < len(sentences):
            j = i + 1
            while j < len(sentences) and sentences[j][1] - sentences[i][0] <= params.max_chars:
                j += 1
            start, end = sentences[i][0], sentences[j - 1][1]
            search_text = " ".join(clean[start:end].split())
            line += text.count("\n", counted_to, start)
            counted_to = start
            chunks.append(Chunk(
                id=first_id + len(chunks),
                doc=document.doc,
                start=start,
                end=end,
                text=text[start:end],
                search_text=search_text,
                line_start=line,
                sentences=sentences[i:j],
                hash=hashlib.sha1(search_text.encode()).hexdigest(),
            ))
            if j >= len(sentences):
                break
            i = max(i + 1, j - params.overlap_sentences)
    return chunks
