"""Plain-text rendering of answers for the terminal and pipes."""
from __future__ import annotations

import textwrap

from index.terminal import escape_controls, has_controls, visible_controls

from .models import Answer, AnswerGroup, Citation, Passage

__all__ = ["escape_controls", "shown", "shown_answer", "shown_passage", "visible_controls"]


def shown(text: str) -> str:
    """Text as the chat app draws it: control characters replaced one for one by visible ones (offsets hold)."""
    return visible_controls(text)


def shown_passage(p: Passage) -> Passage:
    """A passage as the chat app shows it (see shown_answer)."""
    c = p.citation
    fields = {k: visible_controls(v) for k in ("doc", "title", "date", "author") if (v := getattr(c, k))}
    if not has_controls(p.text) and not (p.answer and has_controls(p.answer)) \
            and all(fields[k] == getattr(c, k) for k in fields):
        return p
    return p.model_copy(update={"text": visible_controls(p.text),
                                "answer": visible_controls(p.answer) if p.answer is not None else None,
                                "citation": c.model_copy(update=fields)})


def shown_answer(ans: Answer) -> Answer:
    """The answer as the chat app shows it: every string from the question or the files through `shown`, each
    character replaced one for one, so span and sentence offsets still index the passage text."""
    return ans.model_copy(update={
        "question": visible_controls(ans.question),
        "query": visible_controls(ans.query) if ans.query else ans.query,
        "answer": visible_controls(ans.answer) if ans.answer else ans.answer,
        "message": visible_controls(ans.message) if ans.message else ans.message,
        "groups": [g.model_copy(update={"answer": visible_controls(g.answer),
                                        "docs": [visible_controls(d) for d in g.docs]}) for g in ans.groups],
        "passages": [shown_passage(p) for p in ans.passages],
    })

BOLD_YELLOW = "\033[1;33m"
DIM = "\033[2m"
BOLD = "\033[1m"
RESET = "\033[0m"


def highlight(passage: Passage, color: bool) -> str:
    """The passage text with its answer span marked (ANSI on a terminal, **span** otherwise)."""
    text = passage.text
    base = passage.citation.start
    if passage.answer_start is None or passage.answer_end is None:
        if not color:
            return text
        s, e = passage.sentence_start - base, passage.sentence_end - base
        return text[:s] + BOLD + text[s:e] + RESET + text[e:]
    s = passage.answer_start - base
    e = passage.answer_end - base
    left, right = (BOLD_YELLOW, RESET) if color else ("**", "**")
    return text[:s] + left + text[s:e] + right + text[e:]


def display_scores(ans: Answer) -> list[float]:
    """Each passage's score on the answer's 0–1 confidence scale, so a card's numbers agree in every mode.

    A calibrated reply's scores already are that scale (each passage's probability that its answer is right). The
    uncalibrated modes' raw scores (reranker probability, fused score, raw BM25) are scaled so that the best passage
    shows the confidence.
    """
    if ans.calibrated:
        return [round(max(0.0, min(1.0, p.score)), 4) for p in ans.passages]
    top = max((p.score for p in ans.passages), default=0.0)
    if top <= 0:
        return [0.0 for _ in ans.passages]
    factor = max(0.0, min(1.0, ans.confidence)) / top
    return [round(max(0.0, min(1.0, p.score * factor)), 4) for p in ans.passages]


def _about(c: Citation) -> str:
    """' — Title · 2025-11-25' from what the document says of itself, or ''."""
    extra = " · ".join(x for x in (c.title, c.date) if x)
    return f" — {extra}" if extra else ""


def _page(c: Citation) -> str:
    """' (page 5)' or ' (pages 5–6)' for a PDF citation (its lines are the text layer's), else ''."""
    if c.page is None:
        return ""
    return f" (page {c.page})" if c.page_end in (None, c.page) else f" (pages {c.page}–{c.page_end})"


def cite(passage: Passage) -> str:
    """'003_341094064a9670fe.txt:43-45 — Title · 2025-11-25' (the terminal's compact form)."""
    c = passage.citation
    lines = f"{c.line_start}" if c.line_start == c.line_end else f"{c.line_start}-{c.line_end}"
    return f"{c.doc}:{lines}{_page(c)}" + _about(c)


def line_range(passage: Passage) -> str:
    """'line 43' or 'lines 43–45'."""
    c = passage.citation
    return f"line {c.line_start}" if c.line_start == c.line_end else f"lines {c.line_start}–{c.line_end}"


def citation_text(passage: Passage) -> str:
    """'003_341094064a9670fe.txt, line 43 — Title · 2025-11-25' (plain prose, for the clipboard and exports)."""
    return f"{passage.citation.doc}, {line_range(passage)}{_page(passage.citation)}" + _about(passage.citation)


SOURCES_DIFFER = "Sources differ: "


def sources_differ(groups: list[AnswerGroup], sep: str = "; ") -> str:
    """'Sources differ: 85,000 (a.txt); 600,000 (b.txt, c.txt)': each answer the sources give, with their files."""
    return SOURCES_DIFFER + sep.join(f"{g.answer} ({', '.join(g.docs)})" for g in groups)


SOURCES_AGREE = "Sources agree: "


def agreement(group: AnswerGroup) -> str | None:
    """'3 passages [1], [2], [3] in 2 documents' when two or more passages give the answer, else None."""
    if len(group.ranks) < 2:
        return None
    ranks = ", ".join(f"[{r}]" for r in group.ranks)
    return f"{len(group.ranks)} passages {ranks} in {len(group.docs)} document{'s' * (len(group.docs) > 1)}"


def sources_line(ans: Answer, sep: str = "; ") -> str | None:
    """The 'Sources differ: …' or 'Sources agree: …' line of an answer, or None when neither applies."""
    if not ans.groups:
        return None
    if ans.disagreement:
        return sources_differ(ans.groups, sep)
    agree = agreement(ans.groups[0])
    return SOURCES_AGREE + agree if agree else None


def render_answer(ans: Answer, color: bool = False, width: int = 100) -> str:
    """A human-readable answer: verdict, then each cited passage with its span highlighted."""
    b, d, r = (BOLD, DIM, RESET) if color else ("", "", "")
    out = [f"{b}Q: {ans.question}{r}"]
    if ans.query:
        out.append(f"{d}searched: {ans.query}{r}")
    if ans.answered:
        head = f"A: {ans.answer}" if ans.answer else "A: see the passages below"
        out.append(f"{b}{head}{r}  {d}(confidence {ans.confidence:.2f}){r}")
        if ans.disagreement:
            out.append(sources_differ(ans.groups))
    else:
        out.append(f"{b}{ans.message}{r}  {d}(confidence {ans.confidence:.2f}); closest passages:{r}")
    for p, score in zip(ans.passages, display_scores(ans)):
        out.append("")
        out.append(f"[{p.rank}] {cite(p)}  {d}score {score:.2f}{r}")
        body = " ".join((highlight(p, color) if ans.answered else p.text).split())  # "no answer" marks no span
        out.extend(textwrap.wrap(body, width=max(40, width - 4), initial_indent="    ", subsequent_indent="    "))
    return "\n".join(out)
