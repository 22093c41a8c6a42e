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
from qa.render import SOURCES_AGREE, SOURCES_DIFFER, agreement, citation_text, line_range, shown, shown_answer

from .cards import WINDOW_CHARS, PassageView, card_views, sentence, squash, visible_parts


def short_doc(doc: str, width: int = 14) -> str:
    """'003_341094064a9670fe.txt' -> '003_3410940…' for one-line summaries."""
    return doc if len(doc) <= width else doc[: width - 1] + "…"


ANSWER_STYLE = "bold reverse $accent"


def passage_body(view: PassageView) -> Content:
    """An expanded passage as one paragraph: its answer span marked when it answers, and stretches an earlier
    passage already shows replaced by a pointer to it."""
    p = view.passage
    base = p.citation.start
    span = None
    if view.highlight and p.answer_start is not None and p.answer_end is not None:
        span = (p.answer_start - base, p.answer_end - base)
    pieces: list[tuple[str, str]] = []
    for part in visible_parts(view):
        if isinstance(part, str):
            pieces.append((f" {part} ", "$text-muted"))
            continue
        if isinstance(part, int):
            pieces.append((f" […see [{part}]…] ", "italic $text-muted"))
            continue
        s, e = part
        if span and s < span[1] and span[0] < e:
            a, b = max(s, span[0]), min(e, span[1])
            pieces.extend([(p.text[s:a], ""), (p.text[a:b], ANSWER_STYLE), (p.text[b:e], "")])
        else:
            pieces.append((p.text[s:e], ""))
    return Content.assemble(*one_paragraph(pieces))


def one_paragraph(pieces: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Styled pieces with every whitespace run (also across pieces) as one space, and no space at either end."""
    out: list[tuple[str, str]] = []
    space_before = True
    for text, style in pieces:
        text = re.sub(r"\s+", " ", text)
        if space_before:
            text = text.lstrip(" ")
        if not text:
            continue
        out.append((text, style))
        space_before = text.endswith(" ")
    if out and out[-1][0].endswith(" "):
        out[-1] = (out[-1][0].rstrip(" "), out[-1][1])
    return [piece for piece in out if piece[0]]


class QuestionInput(Input):
    """The question box: enter asks (or queues), up on an empty box recalls earlier questions, down comes back."""

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
        """up on an empty box brings back the last question to edit; more ups go further back, down returns."""
        if not self.history:
            return
        if self._cursor is not None and self._cursor < len(self.history) and self.value != self.history[self._cursor]:
            self._cursor = None  # the recalled question was edited: it is the user's text now
        if self._cursor is None:
            if step > 0 or self.value.strip():
                return  # never replace what the user is typing
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
        super().__init__(Content.assemble(("❯ ", "bold $accent"), shown(question)), markup=False)


class PassageItem(Vertical, can_focus=True):
    """One cited passage, one line or whole: enter expands (then opens the source), space folds, y copies."""

    BINDINGS = [
        Binding("enter", "enter", "Expand/open"),
        Binding("space", "toggle", "Fold", show=False),
        Binding("o", "open", "Source"),
        Binding("y", "copy", "Copy"),
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

    class Toggle(Message):
        """Show this passage whole, or as one line again."""

        def __init__(self, item: "PassageItem") -> None:
            super().__init__()
            self.item = item

    def __init__(self, view: PassageView, tag: tuple[str, str, str] | None = None, closest: bool = False,
                 source: Passage | None = None) -> None:
        super().__init__(classes="closest" if closest else "")
        self.view = view
        self.passage = view.passage  # as drawn (qa.render.shown_answer)
        self.source = source or view.passage  # as the index has it: what opening the document looks up
        self.tag = tag
        self.closest = closest
        self._typing = False

    @property
    def expanded(self) -> bool:
        return self.view.expanded

    def compose(self):
        yield Static("", classes="passage-head", markup=False)
        yield Static("", classes="passage-meta", markup=False)
        yield Static("", classes="passage-text", markup=False)

    def on_mount(self) -> None:
        self.show(self.view)

    def show(self, view: PassageView) -> None:
        """Draw the passage as view says (one line, or whole with its citation details)."""
        self.view = view
        self.set_class(view.expanded, "expanded")
        head, meta, body = (self.query_one(f".passage-{n}", Static) for n in ("head", "meta", "text"))
        if view.expanded:
            head.update(self._expanded_head())
            c = self.passage.citation
            extra = " · ".join(x for x in (c.title, c.date, c.author) if x)
            meta.update(Content.styled(extra, "italic $text-muted"))
            meta.display = bool(extra)
            body.update(passage_body(view))
            body.display = True
        else:
            head.update(self._line())
            meta.display = False
            body.display = False

    def _expanded_head(self) -> Content:
        p, c = self.passage, self.passage.citation
        head: list = [("▾ ", "$text-muted"), (f"[{p.rank}] ", "bold"), (c.doc, "bold $text-primary"),
                      f" · {line_range(p)}", (f" · {self.view.score:.2f}", "$text-muted")]
        if self.closest:
            head.insert(1, ("closest ", "italic $text-warning"))
        if self.tag:
            head.append(("  " + self.tag[0], self.tag[1]))
        return Content.assemble(*head)

    def _line(self) -> Content:
        """'▸ [2] 0.83 doc.txt:43  the sentence that answers…' (one line; the card cuts it with an ellipsis)."""
        p, c = self.passage, self.passage.citation
        parts: list = [("▸ ", "$text-muted"), (f"[{p.rank}] ", "bold"), (f"{self.view.score:.2f} ", "$text-muted")]
        if self.tag:
            parts.append((self.tag[2] + " ", self.tag[1]))
        doc = c.doc if self.app.size.width >= 110 else short_doc(c.doc, 16)
        parts.extend([(f"{doc}:{c.line_start}", "$text-primary"), "  "])
        if self.closest:
            parts.insert(1, ("closest ", "italic $text-warning"))
        if self.view.duplicate_of is not None:
            parts.append((f"same text as [{self.view.duplicate_of}]", "italic $text-muted"))
            return Content.assemble(*parts)
        text, span = sentence(p)
        if span and self.view.highlight:
            a, b = span
            parts.extend([squash(text[:a]) + (" " if text[:a].rstrip() != text[:a] else ""),
                          (squash(text[a:b]), ANSWER_STYLE),
                          (" " if text[b:b + 1].isspace() else "") + squash(text[b:])])
        else:
            parts.append(squash(text))
        return Content.assemble(*parts)

    def action_enter(self) -> None:
        if self.expanded:
            self.action_open()
        else:
            self.post_message(self.Toggle(self))

    def action_toggle(self) -> None:
        self.post_message(self.Toggle(self))

    def action_open(self) -> None:
        """Open the source; a passage that does not give the answer opens without a highlighted span."""
        p = self.source
        if not self.view.highlight:
            p = p.model_copy(update={"answer": None, "answer_start": None, "answer_end": None})
        self.post_message(self.Open(p))

    def action_copy(self) -> None:
        text = f"{' '.join(self.passage.text.split())}\n— {citation_text(self.passage)}"
        self.app.copy_text(text, f"passage [{self.passage.rank}]")

    def action_leave(self) -> None:
        self.post_message(self.Move(self, 10_000))

    def action_move(self, step: int) -> None:
        self.post_message(self.Move(self, step))

    def on_key(self, event: Key) -> None:
        """Typing on a selected passage goes to the question box (o, y and ? keep their meaning)."""
        if event.is_printable and event.character and event.character != " " and (
                self._typing or event.character not in "oy?"):
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
        elif not self.expanded and event.chain == 1 and self.has_focus:
            self.post_message(self.Toggle(self))


def groups_line(reply: Answer) -> Content | None:
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
    agree = agreement(reply.groups[0])
    return Content.assemble(("✓ " + SOURCES_AGREE, "bold $text-success"), agree) if agree else None


class AnswerCard(Vertical):
    """One reply: the answer (or 'no answer found'), agreement between sources, then the cited passages."""

    def __init__(self, reply: Answer, window: int = WINDOW_CHARS) -> None:
        super().__init__(classes="card answered" if reply.answered else "card abstained")
        self.sources = {p.rank: p for p in reply.passages}  # the passages as cited, to open their documents
        self.reply = reply = shown_answer(reply)  # nothing from a file reaches the terminal raw (index/terminal.py)
        self.window = window  # characters an expanded passage shows around its sentence (less on short screens)
        self.expanded = {reply.passages[0].rank} if reply.passages else set()
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
        line = groups_line(r) if r.answered else None
        if line is not None:
            yield Static(line, classes="groups", markup=False)
        if r.query:
            yield Static(Content.assemble(("searched: ", "bold $text-muted"), (r.query, "italic $text-muted")),
                         classes="searched", markup=False)
        tags = self._tags()
        for view in card_views(r, self.expanded, self.window):
            yield PassageItem(view, tags.get(view.passage.rank), closest=not r.answered,
                              source=self.sources.get(view.passage.rank))

    def on_passage_item_toggle(self, message: PassageItem.Toggle) -> None:
        message.stop()
        self.toggle(message.item.passage.rank)

    def toggle(self, rank: int) -> None:
        """Show the passage of this rank whole, or as one line again; the others are redrawn so no text repeats."""
        self.expanded ^= {rank}
        views = {v.passage.rank: v for v in card_views(self.reply, self.expanded, self.window)}
        for item in self.passages:
            item.show(views[item.passage.rank])

    def _tags(self) -> dict[int, tuple[str, str, str]]:
        """Per passage rank: its answer group (label, style, one-line mark) when sources agree or disagree."""
        r = self.reply
        if not r.answered or not r.groups:
            return {}
        out = {}
        for i, g in enumerate(r.groups):
            for rank in g.ranks:
                if r.disagreement:
                    out[rank] = (f"says {g.answer}", "bold $text-success" if i == 0 else "bold $text-warning",
                                 "✓" if i == 0 else "≠")
                elif len(g.ranks) > 1:
                    out[rank] = ("✓ agrees", "$text-success", "✓")
        return out

    @property
    def passages(self) -> list[PassageItem]:
        return list(self.query(PassageItem))


class PendingCard(Vertical):
    """Shown while a question waits for its turn or is being answered."""

    def __init__(self, text: str = "searching the documents…", queued: bool = False) -> None:
        super().__init__(classes="card pending queued" if queued else "card pending")
        self.text = shown(text)

    def compose(self):
        yield Static(Content.styled(self.text, "italic $text-muted"), classes="pending-text", markup=False)
        yield LoadingIndicator()

    def start(self, text: str) -> None:
        """The question's turn has come."""
        self.remove_class("queued")
        self.set_text(text)

    def set_text(self, text: str) -> None:
        self.text = text = shown(text)
        for widget in self.query(".pending-text").results(Static):
            widget.update(Content.styled(text, "italic $text-muted"))


class NoteCard(Static):
    """A short note in the log: a cancelled question, a reopened conversation."""

    def __init__(self, text: str) -> None:
        super().__init__(Content.styled(shown(text), "italic $text-muted"), classes="card note-card", markup=False)


class ErrorCard(Static):
    """A question that could not be answered because of an error."""

    def __init__(self, message: str) -> None:
        super().__init__(Content.assemble(("error: ", "bold $text-error"), shown(message)), classes="card error",
                         markup=False)
