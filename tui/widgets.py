"""The chat log's pieces: the question input with history, answer cards and their selectable passages."""
from __future__ import annotations

import re

from textual.binding import Binding
from textual.containers import Vertical
from textual.content import Content
from textual.events import Click, Key
from textual.message import Message
from textual.widgets import Input, LoadingIndicator, Static

from qa import Answer, Passage
from qa.render import SOURCES_DIFFER, citation_text, line_range


def short_doc(doc: str, width: int = 14) -> str:
    """'003_341094064a9670fe.txt' -> '003_3410940…' for one-line summaries."""
    return doc if len(doc) <= width else doc[: width - 1] + "…"


def _squash(text: str) -> str:
    return re.sub(r"\s+", " ", text)


def passage_body(passage: Passage, answer_style: str = "bold reverse $accent") -> Content:
    """The passage text as one paragraph with its answer span highlighted."""
    text = passage.text.strip()
    lead = len(passage.text) - len(passage.text.lstrip())
    if passage.answer_start is None or passage.answer_end is None:
        return Content(_squash(text))
    s = passage.answer_start - passage.citation.start - lead
    e = passage.answer_end - passage.citation.start - lead
    if not 0 <= s < e <= len(text):
        return Content(_squash(text))
    return Content.assemble(_squash(text[:s]), (_squash(text[s:e]), answer_style), _squash(text[e:]))


class QuestionInput(Input):
    """The question box: enter asks, up/down recall earlier questions."""

    BINDINGS = [
        Binding("up", "history(-1)", "Previous question", show=False),
        Binding("down", "history(1)", "Next question", show=False),
    ]

    def __init__(self, **kwargs) -> None:
        kwargs.setdefault("select_on_focus", False)
        super().__init__(**kwargs)
        self.history: list[str] = []
        self._cursor: int | None = None
        self._draft = ""

    def remember(self, question: str) -> None:
        if question and (not self.history or self.history[-1] != question):
            self.history.append(question)
        self._cursor = None
        self._draft = ""

    def action_history(self, step: int) -> None:
        if not self.history:
            return
        if self._cursor is None:
            if step > 0:
                return
            self._draft = self.value
            self._cursor = len(self.history)
        self._cursor = max(0, self._cursor + step)
        if self._cursor >= len(self.history):
            self._cursor = None
            self.value = self._draft
        else:
            self.value = self.history[self._cursor]
        self.cursor_position = len(self.value)


class QuestionBubble(Static):
    """The user's question, as asked, in the log."""

    def __init__(self, question: str) -> None:
        super().__init__(Content.assemble(("❯ ", "bold $accent"), question), markup=False)


class PassageItem(Vertical, can_focus=True):
    """One cited passage: select with up/down, tab or the mouse; enter/o opens the source, y copies it."""

    BINDINGS = [
        Binding("enter,o", "open", "Open source"),
        Binding("y", "copy", "Copy passage"),
        Binding("escape", "leave", "Back to question", show=False),
        Binding("up", "move(-1)", "Previous", show=False),
        Binding("down", "move(1)", "Next", show=False),
    ]

    class Open(Message):
        """Open the cited document at this passage."""

        def __init__(self, passage: Passage) -> None:
            super().__init__()
            self.passage = passage

    class Move(Message):
        """Select the passage above (-1) or below (+1), across cards."""

        def __init__(self, item: "PassageItem", step: int) -> None:
            super().__init__()
            self.item = item
            self.step = step

    def __init__(self, passage: Passage, tag: tuple[str, str] | None = None, closest: bool = False) -> None:
        super().__init__(classes="closest" if closest else "")
        self.passage = passage
        self.tag = tag
        self.closest = closest
        self._typing = False

    def compose(self):
        p = self.passage
        c = p.citation
        head = [(f"[{p.rank}] ", "bold"), (c.doc, "bold $text-primary"), f" · {line_range(p)}",
                (f" · score {p.score:.2f}", "$text-muted")]
        if self.closest:
            head.insert(0, ("closest ", "italic $text-warning"))
        if self.tag:
            head.append(("  " + self.tag[0], self.tag[1]))
        yield Static(Content.assemble(*head), classes="passage-head", markup=False)
        meta = " · ".join(x for x in (c.title, c.date, c.author) if x)
        if meta:
            yield Static(Content.styled(meta, "italic $text-muted"), classes="passage-meta", markup=False)
        yield Static(passage_body(p), classes="passage-text", markup=False)

    def action_open(self) -> None:
        self.post_message(self.Open(self.passage))

    def action_copy(self) -> None:
        text = f"{' '.join(self.passage.text.split())}\n— {citation_text(self.passage)}"
        self.app.copy_to_clipboard(text)
        self.notify(f"Copied passage [{self.passage.rank}] with its citation", timeout=3)

    def action_leave(self) -> None:
        self.post_message(self.Move(self, 10_000))

    def action_move(self, step: int) -> None:
        self.post_message(self.Move(self, step))

    def on_key(self, event: Key) -> None:
        """Typing on a selected passage goes to the question box (o, y and ? keep their meaning)."""
        if event.is_printable and event.character and (self._typing or event.character not in "oy?"):
            event.stop()
            event.prevent_default()
            self._typing = True  # the rest of a fast burst of keys follows the first one to the box
            type_ahead = getattr(self.screen, "type_ahead", None)
            if type_ahead is not None:
                type_ahead(event.character)

    def on_focus(self) -> None:
        self._typing = False

    def on_click(self, event: Click) -> None:
        if event.chain >= 2:
            self.action_open()


def _groups_line(reply: Answer) -> Content | None:
    """'Sources differ: 85,000 (003_341…) · 800,000 (000_a53…)' or the agreeing sources of the answer."""
    if not reply.groups:
        return None
    if reply.disagreement:
        parts: list = [("⚠ " + SOURCES_DIFFER, "bold $text-warning")]
        for i, g in enumerate(reply.groups):
            if i:
                parts.append(" · ")
            docs = ", ".join(short_doc(d) for d in g.docs)
            ranks = ",".join(str(r) for r in g.ranks)
            parts.extend([(g.answer, "bold"), f" ([{ranks}] {docs})"])
        return Content.assemble(*parts)
    g = reply.groups[0]
    if len(g.ranks) < 2:
        return None
    ranks = ", ".join(f"[{r}]" for r in g.ranks)
    return Content.assemble(("✓ Sources agree: ", "bold $text-success"),
                            f"{len(g.ranks)} passages {ranks} in {len(g.docs)} document{'s' * (len(g.docs) > 1)}")


class AnswerCard(Vertical):
    """One reply: the answer (or 'no answer found'), agreement between sources, then the cited passages."""

    def __init__(self, reply: Answer) -> None:
        super().__init__(classes="card answered" if reply.answered else "card abstained")
        self.reply = reply
        self.border_title = "answer" if reply.answered else "no answer"
        mode = reply.mode + (" + rerank" if reply.reranked else "")
        self.border_subtitle = f"{mode} · {reply.seconds:.1f} s"

    def compose(self):
        r = self.reply
        if r.answered:
            head = (r.answer, "bold $text-success") if r.answer else ("see the passages below", "bold")
            yield Static(Content.assemble(("A: ", "bold"), head, (f"   confidence {r.confidence:.2f}", "$text-muted")),
                         classes="headline", markup=False)
        else:
            yield Static(Content.assemble(("✗ ", "bold $text-error"),
                                          (r.message or "no answer found in the documents", "bold $text-error"),
                                          (f"   confidence {r.confidence:.2f}", "$text-muted")),
                         classes="headline", markup=False)
            if r.passages:
                yield Static(Content.styled("The closest passages, which do not answer the question:",
                                            "italic $text-muted"), classes="note", markup=False)
        line = _groups_line(r) if r.answered else None
        if line is not None:
            yield Static(line, classes="groups", markup=False)
        if r.query:
            yield Static(Content.assemble(("searched: ", "bold $text-muted"), (r.query, "italic $text-muted")),
                         classes="searched", markup=False)
        tags = self._tags()
        for p in r.passages:
            yield PassageItem(p, tags.get(p.rank), closest=not r.answered)

    def _tags(self) -> dict[int, tuple[str, str]]:
        """Per passage rank: which answer group it belongs to, when the sources disagree."""
        r = self.reply
        if not r.answered or not r.groups:
            return {}
        out = {}
        for i, g in enumerate(r.groups):
            for rank in g.ranks:
                if r.disagreement:
                    out[rank] = (f"says {g.answer}", "bold $text-success" if i == 0 else "bold $text-warning")
                elif len(g.ranks) > 1:
                    out[rank] = ("✓ agrees", "$text-success")
        return out

    @property
    def passages(self) -> list[PassageItem]:
        return list(self.query(PassageItem))


class PendingCard(Vertical):
    """Shown while a question is being answered."""

    def __init__(self, text: str = "searching the documents…") -> None:
        super().__init__(classes="card pending")
        self.text = text

    def compose(self):
        yield Static(Content.styled(self.text, "italic $text-muted"), classes="pending-text", markup=False)
        yield LoadingIndicator()

    def set_text(self, text: str) -> None:
        self.query_one(".pending-text", Static).update(Content.styled(text, "italic $text-muted"))


class ErrorCard(Static):
    """A question that could not be answered because of an error."""

    def __init__(self, message: str) -> None:
        super().__init__(Content.assemble(("error: ", "bold $text-error"), message), classes="card error",
                         markup=False)
