"""F1 / ?: the keys of the chat app."""
from __future__ import annotations

from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Static

INTRO = ("Ask a question about your documents and press enter. Answers are passages quoted from the "
         "documents, the answer highlighted and the source cited. A follow-up (“and what about…?”, “what did "
         "they say?”) is searched with the keywords of the earlier questions, shown as “searched: …”.")

KEYS: list[tuple[str, list[tuple[str, str]]]] = [
    ("Chat", [
        ("enter", "ask the question in the box"),
        ("up / down", "in the box: recall earlier questions"),
        ("tab / shift+tab", "select the latest answer's passages, then the box"),
        ("up / down", "on a passage: previous / next passage"),
        ("enter / o", "on a passage: open its source (or double-click)"),
        ("y", "on a passage: copy it with its citation"),
        ("esc", "on a passage: back to the question box"),
        ("pgup / pgdn", "scroll the conversation"),
        ("ctrl+l", "clear the conversation and follow-up context"),
        ("ctrl+s", "export to Markdown (qa-chat-….md in this folder)"),
        ("ctrl+p", "commands: rebuild index, reranking, mode, theme"),
        ("f1 / ?", "this help"),
        ("ctrl+q", "quit"),
    ]),
    ("Document viewer", [
        ("/", "find text (enter searches)"),
        ("n / N", "next / previous match"),
        ("p", "back to the cited passage"),
        ("y", "copy the passage with its citation"),
        ("arrows, pgup", "scroll"),
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
