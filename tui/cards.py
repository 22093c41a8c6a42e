"""What a compact answer card shows of each passage (pure: no widgets, so it is easy to test).

The top passage is shown whole; the others as one line (citation, score, the sentence that answers). Text is
never shown twice in a card: a passage whose sentence already appears above says so instead, and an expanded
passage leaves out the part of its document an earlier passage already shows.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from qa import Answer, Passage
from qa.render import display_scores


WINDOW_CHARS = 320  # an expanded passage shows about this much around its answering sentence
SHORT_SCREEN_ROWS = 30  # below this many rows an expanded passage shows its answering sentence alone


@dataclass
class PassageView:
    """One passage as a card shows it."""

    passage: Passage
    score: float  # on the answer's 0–1 confidence scale
    highlight: bool  # the passage gives the answer: its span is marked
    expanded: bool
    duplicate_of: int | None = None  # rank of an earlier passage that shows the same sentence
    window: int = WINDOW_CHARS  # characters an expanded passage may show around its answering sentence
    shown_elsewhere: list[tuple[int, int, int]] = field(default_factory=list)  # (start, end, rank), file offsets


def squash(text: str) -> str:
    """Whitespace runs as one space (for one-line summaries and comparisons)."""
    return re.sub(r"\s+", " ", text).strip()


def _key(text: str) -> str:
    return re.sub(r"[^\w]+", " ", text.lower()).strip()


def answering_ranks(reply: Answer) -> set[int]:
    """Ranks of the passages that give the answer: only these get a highlighted span."""
    if not reply.answered:
        return set()
    with_span = {p.rank for p in reply.passages if p.answer}
    if reply.groups:
        return with_span & {r for g in reply.groups for r in g.ranks}
    return with_span


def sentence(passage: Passage) -> tuple[str, tuple[int, int] | None]:
    """The passage's answering sentence and the answer span inside it (offsets into the returned text)."""
    base = passage.citation.start
    s, e = passage.sentence_start - base, passage.sentence_end - base
    if not 0 <= s < e <= len(passage.text):
        s, e = 0, len(passage.text)
    raw = passage.text[s:e]
    span = None
    if passage.answer_start is not None and passage.answer_end is not None:
        a, b = passage.answer_start - base - s, passage.answer_end - base - s
        if 0 <= a < b <= len(raw):
            span = (a, b)
    return raw, span


def window_for(rows: int) -> int:
    """How much of an expanded passage a card shows on a screen of this many rows (a short one: the sentence)."""
    return WINDOW_CHARS if rows >= SHORT_SCREEN_ROWS else 0


def card_views(reply: Answer, expanded: set[int] | None = None, window: int = WINDOW_CHARS) -> list[PassageView]:
    """The card's passages in order; `expanded` holds the ranks shown whole (default: the top passage), each with
    up to `window` characters around its answering sentence."""
    expanded = {reply.passages[0].rank} if expanded is None and reply.passages else (expanded or set())
    marked = answering_ranks(reply)
    views: list[PassageView] = []
    seen_text: dict[str, int] = {}  # sentence key -> rank of the first passage that shows it
    shown_ranges: list[tuple[str, int, int, int]] = []  # (doc, start, end, rank) of expanded passages
    for p, score in zip(reply.passages, display_scores(reply)):
        view = PassageView(p, score, p.rank in marked, p.rank in expanded, window=window)
        c = p.citation
        if view.expanded:
            view.shown_elsewhere = [(max(s, c.start), min(e, c.end), r) for doc, s, e, r in shown_ranges
                                    if doc == c.doc and s < c.end and c.start < e]
            lo, hi = focus_window(p, window)
            shown_ranges.append((c.doc, c.start + lo, c.start + hi, p.rank))
            for text in _SENTENCE_END.split(p.text[lo:hi]):
                seen_text.setdefault(_key(text), p.rank)
        else:
            key = _key(sentence(p)[0])
            inside = next((r for doc, s, e, r in shown_ranges
                           if doc == c.doc and s <= p.sentence_start and p.sentence_end <= e), None)
            view.duplicate_of = inside if inside is not None else seen_text.get(key)
            seen_text.setdefault(key, p.rank)
        views.append(view)
    return views


_SENTENCE_END = re.compile(r"(?<=[.!?…])[\"”’)\]]*\s+")


def focus_window(passage: Passage, budget: int = WINDOW_CHARS) -> tuple[int, int]:
    """The stretch of an expanded passage a card shows (offsets into its text): the answering sentence and whole
    neighbouring sentences around it while they fit in budget characters; the source viewer shows the rest."""
    text = passage.text
    base = passage.citation.start
    s = max(0, min(len(text), passage.sentence_start - base))
    e = max(s, min(len(text), passage.sentence_end - base))
    if len(text) <= budget or e <= s:
        return 0, len(text)
    cuts = sorted({0, len(text), *(m.end() for m in _SENTENCE_END.finditer(text))})
    starts = [c for c in cuts if c <= s]
    ends = [c for c in cuts if c >= e]
    lo, hi = starts[-1], ends[0]
    grew = True
    while grew:
        grew = False
        before = [c for c in cuts if c < lo]
        after = [c for c in cuts if c > hi]
        if after and after[0] - lo <= budget:
            hi, grew = after[0], True
        if before and hi - before[-1] <= budget:
            lo, grew = before[-1], True
    return lo, hi


def visible_parts(view: PassageView) -> list[tuple[int, int] | int | str]:
    """Pieces of an expanded passage to draw, in order: (start, end) offsets into its text, the rank of an earlier
    passage standing for a stretch it already shows, or "…" where the card leaves text out."""
    p = view.passage
    base = p.citation.start
    lo, hi = focus_window(p, view.window)
    parts: list[tuple[int, int] | int | str] = ["…"] if lo > 0 else []
    pos = lo
    for s, e, rank in sorted(view.shown_elsewhere):
        s, e = max(lo, s - base), min(hi, e - base)
        if e <= s:
            continue
        if s > pos:
            parts.append((pos, s))
        parts.append(rank)
        pos = max(pos, e)
    if pos < hi:
        parts.append((pos, hi))
    if hi < len(p.text):
        parts.append("…")
    return parts
