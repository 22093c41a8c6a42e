"""F1 / ?: the keys of the chat app."""
from __future__ import annotations

from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Static

INTRO = ("Answers are passages quoted from your documents, the answer highlighted and the source "
         "cited. Follow-ups (“and what about…?”, “who drafted it?”) use the earlier questions; the card "
         "shows what was searched.")

KEYS: list[tuple[str, list[tuple[str, str]]]] = [
    ("Question box", [
        ("enter", "ask; while an answer runs, queue the question"),
        ("esc", "cancel the answer being computed"),
        ("up / down", "on an empty box: earlier questions, to edit"),
    ]),
    ("Answers", [
        ("tab / shift+tab", "select the latest answer's passages"),
        ("up / down", "previous / next passage"),
        ("enter", "expand a passage; on an expanded one, open it"),
        ("space", "expand or fold a passage"),
        ("o", "open the source at the cited lines"),
        ("y", "copy the passage with its citation"),
        ("esc", "back to the question box"),
        ("pgup / pgdn", "scroll the conversation"),
    ]),
    ("Conversation", [
        ("ctrl+s", "export to Markdown (asks where)"),
        ("ctrl+r", "reopen the last conversation"),
        ("ctrl+l", "clear the conversation and its context"),
        ("ctrl+p", "commands: rebuild, reranking, mode, theme"),
        ("f1 / ?", "this help (? types a ? in the box)"),
        ("ctrl+q", "quit"),
    ]),
    ("Source viewer", [
        ("/  n  N", "find, next, previous match"),
        ("p", "back to the cited passage"),
        ("y", "copy the passage with its citation"),
        ("esc", "back to the chat"),
    ]),
]


def help_content() -> Content:
    width = max(len(k) for _, rows in KEYS for k, _ in rows) + 2
    parts: list = [("qa chat — keys\n", "bold $text-accent"), "\n", (INTRO + "\n", "$text-muted")]
    for title, rows in KEYS:
        parts.append((f"\n{title}\n", "bold $text-primary"))
        for key, what in rows:
            parts.extend([(f"  {key:<{width}}", "bold"), f"{what}\n"])
    parts.append(("\nesc, q, f1 or ? closes this help", "italic $text-muted"))
    return Content.assemble(*parts)


class HelpScreen(ModalScreen[None]):
    """Lists the bindings; esc, q, f1 or ? closes it."""

    BINDINGS = [Binding("escape,q,f1,question_mark", "dismiss", "Close")]

    def compose(self):
        with VerticalScroll(id="help-box"):
            yield Static(help_content(), id="help-text", markup=False)

    def on_mount(self) -> None:
        self.query_one("#help-box").focus()
