"""The conversation as Markdown, with every passage cited and the agree/differ lines (ctrl+s), and the dialog that
asks where to write it."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from textual.binding import Binding
from textual.containers import Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Input, Static

from qa import Answer
from qa.render import citation_text, display_scores, highlight, sources_line

from .cards import answering_ranks


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
            line = sources_line(r, sep=" · ")
            if line is not None:
                out += [line, ""]
        else:
            out += [f"**{r.message}** (confidence {r.confidence:.2f}). Closest passages:", ""]
        marked = answering_ranks(r)
        for p, score in zip(r.passages, display_scores(r)):
            out.append(f"{p.rank}. `{citation_text(p)}` (score {score:.2f})")
            out.append("")
            shown = p if p.rank in marked else p.model_copy(update={"answer_start": None, "answer_end": None})
            out.append(_quote(" ".join(highlight(shown, color=False).split())))
            out.append("")
    return "\n".join(out).rstrip() + "\n"


def write_export(path: Path, markdown: str, overwrite: bool = False) -> Path:
    """Write the Markdown at path (creating its folder); refuses to replace a file unless overwrite."""
    path = path.expanduser()
    if not path.is_absolute():
        path = Path.cwd() / path
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a folder: add a file name")
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(markdown, encoding="utf-8")
    return path.resolve()


class ExportScreen(ModalScreen[Path | None]):
    """Asks where to export: a path box with a default outside the current folder; enter writes, esc cancels."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, markdown: str, default: Path) -> None:
        super().__init__()
        self.markdown = markdown
        self.default = default
        self._confirm: Path | None = None

    def compose(self):
        with Vertical(id="export-box"):
            yield Static(Content.styled("Export the conversation to Markdown", "bold $text-accent"), markup=False)
            yield Static(Content.styled("enter writes the file, esc cancels", "$text-muted"), markup=False)
            yield Input(value=str(self.default), id="export-path", select_on_focus=False)
            yield Static("", id="export-error", markup=False)

    def on_mount(self) -> None:
        box = self.query_one("#export-path", Input)
        box.focus()
        box.cursor_position = len(box.value)

    def on_input_changed(self, event: Input.Changed) -> None:
        self._confirm = None
        self.query_one("#export-error", Static).update("")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        raw = event.value.strip()
        error = self.query_one("#export-error", Static)
        if not raw:
            error.update(Content.styled("type a file path", "$text-error"))
            return
        target = Path(raw).expanduser()
        try:
            path = write_export(target, self.markdown, overwrite=self._confirm == target)
        except FileExistsError:
            self._confirm = target
            error.update(Content.styled("the file exists: enter again replaces it", "$text-warning"))
            return
        except OSError as exc:
            error.update(Content.styled(f"cannot write: {exc.strerror or exc}", "$text-error"))
            return
        self.dismiss(path)

    def action_cancel(self) -> None:
        self.dismiss(None)
