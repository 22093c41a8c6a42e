"""The conversation as Markdown, with every passage cited (ctrl+s in the chat app)."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from qa import Answer
from qa.render import citation_text, highlight, sources_differ


@dataclass
class Turn:
    """One question of the conversation and what came back: a reply, or an error message."""

    question: str
    reply: Answer | None = None
    error: str | None = None


def _quote(text: str) -> str:
    return "\n".join("   > " + line if line.strip() else "   >" for line in text.strip().splitlines())


def conversation_markdown(turns: list[Turn], corpus: str = "", when: dt.datetime | None = None) -> str:
    when = when or dt.datetime.now()
    out = [f"# qa chat — {when:%Y-%m-%d %H:%M}", ""]
    if corpus:
        out += [f"Corpus: {corpus}", ""]
    for n, turn in enumerate(turns, 1):
        out += [f"## {n}. {turn.question}", ""]
        r = turn.reply
        if r is None:
            out += [f"Error: {turn.error or 'no reply'}", ""]
            continue
        if r.query:
            out += [f"*searched: {r.query}*", ""]
        if r.answered:
            head = f"**Answer: {r.answer}**" if r.answer else "**Answer: see the passages below**"
            out += [f"{head} (confidence {r.confidence:.2f})", ""]
            if r.disagreement:
                out += [sources_differ(r.groups, sep=" · "), ""]
        else:
            out += [f"**{r.message}** (confidence {r.confidence:.2f}). Closest passages:", ""]
        for p in r.passages:
            out.append(f"{p.rank}. `{citation_text(p)}` (score {p.score:.2f})")
            out.append("")
            out.append(_quote(" ".join(highlight(p, color=False).split())))
            out.append("")
    return "\n".join(out).rstrip() + "\n"


def export_conversation(turns: list[Turn], folder: Path | None = None, corpus: str = "",
                        when: dt.datetime | None = None) -> Path:
    """Write qa-chat-YYYYmmdd-HHMMSS.md in folder (default: the current directory); returns its path."""
    when = when or dt.datetime.now()
    folder = Path.cwd() if folder is None else folder
    path = folder / f"qa-chat-{when:%Y%m%d-%H%M%S}.md"
    n = 1
    while path.exists():
        n += 1
        path = folder / f"qa-chat-{when:%Y%m%d-%H%M%S}-{n}.md"
    path.write_text(conversation_markdown(turns, corpus, when), encoding="utf-8")
    return path.resolve()
