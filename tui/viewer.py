"""The source viewer: a cited document, scrolled to the passage and highlighting it, with find (/, n, N)."""
from __future__ import annotations

import bisect
from pathlib import Path

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.binding import Binding
from textual.content import Content
from textual.geometry import Size
from textual.screen import Screen
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.widgets import Footer, Header, Input, Static

from qa import Passage
from qa.render import citation_text, line_range, shown, shown_passage


def page_label(passage: Passage) -> str:
    """"page 5 · " or "pages 5–6 · " for a PDF citation, else ""."""
    c = passage.citation
    if c.page is None:
        return ""
    return f"page {c.page} · " if c.page_end in (None, c.page) else f"pages {c.page}–{c.page_end} · "


class DocView(ScrollView, can_focus=True):
    """A read-only document with line numbers, soft-wrapped, drawn line by line (fast for long files)."""

    COMPONENT_CLASSES = {
        "docview--gutter",
        "docview--gutter-cited",
        "docview--passage",
        "docview--answer",
        "docview--match",
        "docview--match-current",
    }

    def __init__(self, text: str, passage: Passage | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.text = text
        self.line_starts = [0]
        for i, ch in enumerate(text):
            if ch == "\n":
                self.line_starts.append(i + 1)
        self.passage = passage
        self.passage_range: tuple[int, int] | None = None
        self.answer_range: tuple[int, int] | None = None
        if passage is not None:
            self.passage_range = (passage.citation.start, passage.citation.end)
            if passage.answer_start is not None and passage.answer_end is not None:
                self.answer_range = (passage.answer_start, passage.answer_end)
        self.matches: list[tuple[int, int]] = []
        self.current_match = -1
        self._strips: list[Strip] = []
        self._first_row: list[int] = []  # first wrapped row of each source line
        self._built_width = -1
        self._pending_offset: int | None = self.passage_range[0] if self.passage_range else None

    # --- geometry -------------------------------------------------------------------------------

    @property
    def num_lines(self) -> int:
        return len(self.line_starts)

    def line_of(self, offset: int) -> int:
        """1-based line number holding a character offset."""
        return bisect.bisect_right(self.line_starts, offset)

    def _line_span(self, line: int) -> tuple[int, int]:
        start = self.line_starts[line - 1]
        end = self.line_starts[line] - 1 if line < self.num_lines else len(self.text)
        return start, end

    @property
    def cited_lines(self) -> tuple[int, int] | None:
        if self.passage_range is None:
            return None
        s, e = self.passage_range
        return self.line_of(s), self.line_of(max(s, e - 1))

    def row_of_line(self, line: int) -> int:
        self._ensure_built()
        return self._first_row[line - 1] if self._first_row else 0

    def visible_rows(self) -> list[str]:
        """The plain text of the rows on screen (for tests and find)."""
        top = round(self.scroll_offset.y)
        return [s.text for s in self._strips[top: top + self.scrollable_content_region.height]]

    def visible_lines(self) -> range:
        """Source line numbers (1-based) at least partly on screen."""
        self._ensure_built()
        if not self._first_row:
            return range(1, 1)
        top = round(self.scroll_offset.y)
        bottom = top + max(1, self.scrollable_content_region.height) - 1
        first = bisect.bisect_right(self._first_row, top)
        last = bisect.bisect_right(self._first_row, bottom)
        return range(max(1, first), last + 1)

    # --- drawing -----------------------------------------------------------------------------------

    def _styles(self) -> dict[str, Style]:
        return {name.split("--")[1]: self.get_component_rich_style(name, partial=True) for name in
                self.COMPONENT_CLASSES}

    def _ensure_built(self) -> None:
        width = self.scrollable_content_region.width
        if width > 0 and width != self._built_width:
            self._build(width)

    def _build(self, width: int) -> None:
        styles = self._styles()
        console = self.app.console
        digits = len(str(self.num_lines))
        content_width = max(8, width - digits - 2)
        options = console.options.update(width=content_width, max_width=content_width, no_wrap=False,
                                         overflow="fold", highlight=False)
        cited = self.cited_lines
        marks: list[tuple[int, int, Style]] = []
        if self.passage_range:
            marks.append((*self.passage_range, styles["passage"]))
        if self.answer_range:
            marks.append((*self.answer_range, styles["answer"]))
        for i, (s, e) in enumerate(self.matches):
            marks.append((s, e, styles["match-current" if i == self.current_match else "match"]))
        strips: list[Strip] = []
        first_row: list[int] = []
        for line in range(1, self.num_lines + 1):
            ls, le = self._line_span(line)
            text = Text(self.text[ls:le], no_wrap=False, overflow="fold")
            for s, e, style in marks:
                if s < le and e > ls:
                    text.stylize(style, max(s, ls) - ls, min(e, le) - ls)
            rows = console.render_lines(text, options, pad=False, new_lines=False) if le > ls else [[]]
            in_cited = cited is not None and cited[0] <= line <= cited[1]
            gutter_style = styles["gutter-cited" if in_cited else "gutter"]
            first_row.append(len(strips))
            for j, segments in enumerate(rows):
                label = f"{line:>{digits}} " if j == 0 else " " * (digits + 1)
                strips.append(Strip([Segment(label, gutter_style), Segment(" "), *segments]))
        self._strips = strips
        self._first_row = first_row
        self._built_width = width
        self.virtual_size = Size(width, len(strips))

    def render_line(self, y: int) -> Strip:
        self._ensure_built()
        scroll_x, scroll_y = self.scroll_offset
        row = scroll_y + y
        width = self.scrollable_content_region.width
        base = self.rich_style
        if row >= len(self._strips):
            return Strip.blank(width, base)
        return self._strips[row].apply_style(base).crop_extend(scroll_x, scroll_x + width, base)

    def on_resize(self) -> None:
        self._ensure_built()
        if self._pending_offset is not None and self._built_width > 0:
            offset, self._pending_offset = self._pending_offset, None
            self.call_after_refresh(self.scroll_to_offset, offset)

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._built_width = -1  # theme change: redraw with the new colours
        self.refresh()

    # --- moving ------------------------------------------------------------------------------------

    def scroll_to_offset(self, offset: int, context: int = 3) -> None:
        """Scroll so the line holding offset is near the top, a few lines of context above it."""
        self._ensure_built()
        row = self.row_of_line(self.line_of(offset))
        self.scroll_to(y=max(0, row - context), animate=False, immediate=True)

    def show_passage(self) -> None:
        if self.passage_range:
            self.scroll_to_offset(self.passage_range[0])

    def find(self, query: str) -> int:
        """Highlight every case-insensitive match of query and go to the first one below the top line."""
        self.matches = []
        self.current_match = -1
        if query:
            hay, needle = self.text.lower(), query.lower()
            pos = hay.find(needle)
            while pos >= 0:
                self.matches.append((pos, pos + len(needle)))
                pos = hay.find(needle, pos + max(1, len(needle)))
        if self.matches:
            top_line = self.visible_lines().start or 1
            top_offset = self.line_starts[top_line - 1]
            starts = [s for s, _ in self.matches]
            self.current_match = bisect.bisect_left(starts, top_offset) % len(self.matches)
        self._built_width = -1
        self._ensure_built()
        self._go_to_current()
        self.refresh()
        return len(self.matches)

    def next_match(self, step: int = 1) -> None:
        if not self.matches:
            return
        self.current_match = (self.current_match + step) % len(self.matches)
        self._built_width = -1
        self._ensure_built()
        self._go_to_current()
        self.refresh()

    def _go_to_current(self) -> None:
        if 0 <= self.current_match < len(self.matches):
            line = self.line_of(self.matches[self.current_match][0])
            if line not in self.visible_lines() or line == self.visible_lines().stop - 1:
                self.scroll_to_offset(self.matches[self.current_match][0], context=5)


class DocumentScreen(Screen):
    """The cited document; esc goes back to the chat."""

    BINDINGS = [
        Binding("escape", "close", "Back"),
        Binding("slash", "find", "Find"),
        Binding("n", "next_match(1)", "Next"),
        Binding("N", "next_match(-1)", "Prev match", show=False),
        Binding("p", "show_passage", "Passage"),
        Binding("y", "copy", "Copy"),
    ]

    def __init__(self, path: Path, passage: Passage | None = None, text: str | None = None) -> None:
        super().__init__()
        self.path = path
        # the document and its passage as the app shows them: controls replaced one for one (offsets hold)
        self.passage = passage if passage is None else shown_passage(passage)
        self.text = shown(text if text is not None else path.read_text(encoding="utf-8"))

    def compose(self):
        yield Header()
        p = self.passage
        if p is not None:
            c = p.citation
            extra = " · ".join(x for x in (c.title, c.date) if x)
            where = line_range(p) if c.format == "text" else f"{page_label(p)}{c.format.upper()} text layer, {line_range(p)}"
            info = Content.assemble((c.doc, "bold $text-primary"), f" · {where} · passage [{p.rank}] highlighted",
                                    (f" · {extra}" if extra else "", "italic $text-muted"))
        else:
            info = Content.styled(shown(self.path.name), "bold")
        yield Static(info, id="doc-info", markup=False)
        yield DocView(self.text, p, id="doc")
        yield Static("", id="find-status", markup=False)
        yield Input(placeholder="find in document (enter: search, esc: close)", id="find")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#find", Input).display = False
        self.query_one(DocView).focus()

    @property
    def view(self) -> DocView:
        return self.query_one(DocView)

    def action_close(self) -> None:
        find = self.query_one("#find", Input)
        if find.display and find.has_focus:
            find.display = False
            self.view.focus()
            return
        self.dismiss()

    def action_find(self) -> None:
        find = self.query_one("#find", Input)
        find.display = True
        find.focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.search(event.value)
        self.view.focus()

    def search(self, query: str) -> int:
        count = self.view.find(query)
        self._report(query)
        return count

    def _report(self, query: str | None = None) -> None:
        v = self.view
        status = self.query_one("#find-status", Static)
        if not v.matches:
            status.update(Content.styled(f"no match for “{query}”", "$text-warning") if query else "")
        else:
            line = v.line_of(v.matches[v.current_match][0])
            status.update(Content.assemble(("find: ", "bold"), f"match {v.current_match + 1} of {len(v.matches)}",
                                           (f" · line {line} · n next, N previous", "$text-muted")))

    def action_next_match(self, step: int) -> None:
        self.view.next_match(step)
        self._report()

    def action_show_passage(self) -> None:
        self.view.show_passage()

    def action_copy(self) -> None:
        if self.passage is not None:
            self.app.copy_text(f"{' '.join(self.passage.text.split())}\n— {citation_text(self.passage)}",
                               f"passage [{self.passage.rank}]")
