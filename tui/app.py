"""`qa chat`: ask questions about the corpus in a terminal chat; every answer is a cited passage.

The app appears at once; opening the index (building it when needed, loading the models) and answering run
in thread workers, so the screen never freezes. Only qa's public API is used.
"""
from __future__ import annotations

import threading
from pathlib import Path

from textual import work
from textual.app import App
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.content import Content
from textual.screen import Screen
from textual.widgets import Footer, Header, Input, Static

from qa import Answer, Passage, QAError, Settings, answer, corpus_path, document_text, open_index
from qa.followup import expand_query, index_idf

from .commands import QACommands
from .export import Turn, export_conversation
from .help import HelpScreen
from .viewer import DocumentScreen
from .widgets import AnswerCard, ErrorCard, PassageItem, PendingCard, QuestionBubble, QuestionInput

PLACEHOLDER = "Ask a question about the documents and press enter  (F1: help)"
BUSY_PLACEHOLDER = "answering… please wait"
SPINNER = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"


def corpus_label(settings: Settings) -> str:
    names = [p.expanduser().name or str(p) for p in settings.corpus]
    return ", ".join(names) if len(names) <= 2 else f"{names[0]} + {len(names) - 1} more"


class ChatScreen(Screen):
    """The conversation: status line, scrolling log of answers, the question box and the key footer."""

    BINDINGS = [
        Binding("tab", "cycle(1)", "Passages", show=False),
        Binding("shift+tab", "cycle(-1)", "Passages", show=False),
        Binding("pageup", "scroll_log(-1)", "Scroll up", show=False),
        Binding("pagedown", "scroll_log(1)", "Scroll down", show=False),
    ]

    def compose(self):
        yield Header()
        yield Static("", id="status", markup=False)
        with VerticalScroll(id="log"):
            yield Static(self._welcome(), id="welcome", markup=False)
        yield QuestionInput(placeholder=PLACEHOLDER, id="question")
        yield Footer()

    def _welcome(self) -> Content:
        return Content.assemble(
            ("Ask about the documents in ", "$text-muted"), (corpus_label(self.app.settings), "bold"),
            (". Answers are quoted from the documents, with the answer highlighted and the source cited. "
             "Select a passage (tab, up/down or the mouse) and press enter to open its source. "
             "Follow-ups like “and what about…?” use the earlier questions.", "$text-muted"),
        )

    def on_mount(self) -> None:
        self.question_input.focus()

    @property
    def log_view(self) -> VerticalScroll:
        return self.query_one("#log", VerticalScroll)

    @property
    def question_input(self) -> QuestionInput:
        return self.query_one("#question", QuestionInput)

    def passages(self) -> list[PassageItem]:
        return list(self.query(PassageItem))

    def focus_input(self) -> None:
        box = self.question_input
        if not box.disabled:
            box.focus()
        else:
            self.log_view.focus()

    def action_cycle(self, step: int) -> None:
        """tab / shift+tab: through the passages of the conversation and back to the question box."""
        items = self.passages()
        focused = self.focused
        if not items:
            self.focus_input()
            return
        if isinstance(focused, PassageItem) and focused in items:
            i = items.index(focused) + step
            if 0 <= i < len(items):
                items[i].focus()
            else:
                self.focus_input()
            return
        cards = list(self.query(AnswerCard))
        latest = cards[-1].passages if cards and cards[-1].passages else items
        (latest[0] if step > 0 else latest[-1]).focus()

    def action_scroll_log(self, step: int) -> None:
        log = self.log_view
        if step < 0:
            log.scroll_page_up()
        else:
            log.scroll_page_down()

    def on_passage_item_move(self, message: PassageItem.Move) -> None:
        items = self.passages()
        if message.item not in items:
            return
        i = items.index(message.item) + message.step
        if 0 <= i < len(items):
            items[i].focus()
        elif i >= len(items):
            self.focus_input()

    def type_ahead(self, character: str) -> None:
        """A key typed on a selected passage: into the question box, which takes the focus."""
        box = self.question_input
        if not box.disabled:
            self.set_focus(box)
            box.insert_text_at_cursor(character)

    def on_passage_item_open(self, message: PassageItem.Open) -> None:
        self.app.open_passage(message.passage)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "question":
            self.app.ask(event.value)


class QAChatApp(App[int]):
    """The chat app. `QAChatApp(settings).run()`; the index is opened in a worker after the screen shows."""

    CSS_PATH = "app.tcss"
    TITLE = "qa chat"
    COMMANDS = App.COMMANDS | {QACommands}
    BINDINGS = [
        Binding("ctrl+q", "quit", "Quit", priority=True),
        Binding("f1", "help", "Help"),
        Binding("question_mark", "help", "Help", show=False),
        Binding("ctrl+l", "clear", "Clear", priority=True),
        Binding("ctrl+s", "export", "Export"),
    ]

    def __init__(self, settings: Settings | None = None, warm_up: bool = True) -> None:
        super().__init__()
        self.settings = settings or Settings()
        self.warm_up = warm_up  # load the models before the first question, while the user types it
        self.index = None
        self.turns: list[Turn] = []
        self.context: list[str] = []  # questions the next follow-up is expanded with
        self.last_answer: str | None = None
        self.status = "starting…"
        self.status_state = "busy"
        self.load_error: str | None = None
        self._idf = None
        self._lock = threading.Lock()  # one pipeline call at a time: loading, rebuilding, answering
        self._index_ready = threading.Event()
        self._loading = False
        self._spinner = None
        self._spin = 0
        self.chat = ChatScreen(id="chat")
        self.sub_title = corpus_label(self.settings)

    def get_default_screen(self) -> Screen:
        return self.chat

    def on_mount(self) -> None:
        self.refresh_status()
        self.load_index()

    # --- status --------------------------------------------------------------------------------------

    def set_status(self, text: str, state: str = "busy") -> None:
        self.status = text
        self.status_state = state
        if state == "busy" and self._spinner is None:
            self._spinner = self.set_interval(0.12, self._tick)
        elif state != "busy" and self._spinner is not None:
            self._spinner.stop()
            self._spinner = None
        self.refresh_status()

    def _tick(self) -> None:
        self._spin += 1
        self.refresh_status()

    def refresh_status(self) -> None:
        try:
            widget = self.chat.query_one("#status", Static)
        except Exception:
            return
        color = {"ready": "$text-success", "busy": "$text-warning", "error": "$text-error"}[self.status_state]
        dot = SPINNER[self._spin % len(SPINNER)] if self.status_state == "busy" else "●"
        parts: list = [(f"{dot} ", color), (self.status, "bold" if self.status_state != "ready" else "")]
        m = self.index.manifest if self.index is not None else None
        if m is not None:
            docs = sum(1 for f in m.files if not f.skipped)
            skipped = len(m.files) - docs
            model = m.model_name.rsplit("/", 1)[-1]
            info = f" · {docs} document{'s' * (docs != 1)} · {m.num_chunks} chunks"
            info += f" ({skipped} skipped)" if skipped else ""
            info += f" · {model}"
            parts.append((info, "$text-muted"))
        mode = self.settings.mode + (" + rerank" if self.settings.rerank else "")
        parts.append((f" · {mode}", "$text-muted"))
        widget.update(Content.assemble(*parts))

    def _post(self, callback, *args) -> None:
        """Run callback on the UI thread from a worker; quietly nothing when the app has gone."""
        if not self.is_running:
            return
        try:
            self.call_from_thread(callback, *args)
        except RuntimeError:
            pass

    # --- the index -----------------------------------------------------------------------------------

    def load_index(self, rebuild: bool = False) -> None:
        if self._loading:
            self.notify("The index is already being opened", severity="warning")
            return
        self._loading = True
        self._index_ready.clear()
        self.set_status("rebuilding the index…" if rebuild else "opening the index…")
        self._load_worker(rebuild)

    @work(thread=True, exclusive=True, group="index", exit_on_error=False)
    def _load_worker(self, rebuild: bool) -> None:
        last = {"key": None}

        def progress(stage: str, done: int, total: int) -> None:
            pct = int(100 * done / total) if total else 0
            if stage == "embedding":
                text = f"building the index: embedding {pct}%…"
            elif stage == "reading":
                text = f"building the index: reading files {done}/{total}…"
            elif "model" in stage:
                text = "building the index: loading the embedding model…"
            else:
                text = f"building the index: {stage} {pct}%…"
            if text != last["key"]:
                last["key"] = text
                self._post(self.set_status, text)

        def warn(message: str) -> None:
            self._post(self.set_status, message)

        try:
            with self._lock:
                index = open_index(self.settings, progress=progress, warn=warn, rebuild=rebuild)
                self.index = index
                self._idf = index_idf(index)
                self.load_error = None
                if self.warm_up:
                    self._post(self.set_status, "loading models…")
                    try:
                        answer("warm up the models", index, self.settings)
                    except Exception:  # a failing warm-up shows up again, with its message, on the first question
                        pass
        except QAError as exc:
            self.load_error = str(exc)
        except Exception as exc:  # noqa: BLE001 - the app shows it instead of crashing
            self.load_error = f"{type(exc).__name__}: {exc}"
        finally:
            self._index_ready.set()
            self._post(self._loaded, rebuild)

    def _loaded(self, rebuild: bool) -> None:
        self._loading = False
        if self.load_error:
            self.set_status(f"cannot open the index: {self.load_error}", "error")
            self.notify(self.load_error, title="Cannot open the index", severity="error", timeout=10)
            return
        self.set_status("ready", "ready")
        if rebuild:
            self.notify(f"Index rebuilt: {self.index.manifest.num_chunks} chunks", timeout=4)

    # --- asking --------------------------------------------------------------------------------------

    def ask(self, question: str) -> None:
        question = question.strip()
        box = self.chat.question_input
        if not question:
            return
        if box.disabled:
            return
        box.remember(question)
        box.value = ""
        box.disabled = True
        box.placeholder = BUSY_PLACEHOLDER
        log = self.chat.log_view
        bubble = QuestionBubble(question)
        pending = PendingCard("searching the documents…" if self._index_ready.is_set() else
                              "waiting for the index to open…")
        log.mount(bubble)
        log.mount(pending)
        log.anchor()
        self._answer_worker(question, list(self.context), self.last_answer, bubble, pending)

    @work(thread=True, group="answer", exit_on_error=False)
    def _answer_worker(self, question: str, history: list[str], previous: str | None,
                       bubble: QuestionBubble, pending: PendingCard) -> None:
        self._index_ready.wait()
        index, settings = self.index, self.settings
        if index is None:
            self._post(self._show_error, question, bubble, pending,
                       f"the index is not available: {self.load_error or 'unknown error'}")
            return
        try:
            query = expand_query(question, history, self._idf, previous_answer=previous)
            if query != question:
                self._post(pending.set_text, f"searching: {query}")
            with self._lock:
                reply = answer(question, index, settings, query=query if query != question else None)
        except QAError as exc:
            self._post(self._show_error, question, bubble, pending, str(exc))
            return
        except Exception as exc:  # noqa: BLE001
            self._post(self._show_error, question, bubble, pending, f"{type(exc).__name__}: {exc}")
            return
        self._post(self._show_reply, question, bubble, pending, reply)

    def _at_bottom(self) -> bool:
        log = self.chat.log_view
        return log.max_scroll_y <= 0 or log.scroll_y >= log.max_scroll_y - 1

    async def _show_reply(self, question: str, bubble: QuestionBubble, pending: PendingCard, reply: Answer) -> None:
        follow = self._at_bottom()
        card = AnswerCard(reply)
        await self.chat.log_view.mount(card, after=pending)
        await pending.remove()
        self.turns.append(Turn(question, reply))
        self.context.append(question)
        self.last_answer = reply.answer if reply.answered else None
        self._done_asking()
        if follow:
            self.call_after_refresh(self._settle, bubble, card)

    async def _show_error(self, question: str, bubble: QuestionBubble, pending: PendingCard, message: str) -> None:
        card = ErrorCard(message)
        await self.chat.log_view.mount(card, after=pending)
        await pending.remove()
        self.turns.append(Turn(question, error=message))
        self._done_asking()
        self.call_after_refresh(self._settle, bubble, card)

    def _settle(self, bubble: QuestionBubble, card) -> None:
        """Keep the newest answer in view: the bottom of the log, or the question's top when it is too tall."""
        log = self.chat.log_view
        if not card.is_attached:
            return
        if card.outer_size.height + bubble.outer_size.height + 1 > log.scrollable_content_region.height:
            log.scroll_to_widget(bubble, top=True, animate=False)
        else:
            log.scroll_end(animate=False)

    def _done_asking(self) -> None:
        box = self.chat.question_input
        box.disabled = False
        box.placeholder = PLACEHOLDER
        if self.screen is self.chat and not isinstance(self.chat.focused, PassageItem):
            box.focus()

    # --- passages ------------------------------------------------------------------------------------

    def open_passage(self, passage: Passage) -> None:
        if self.index is None:
            return
        path = corpus_path(self.index, passage.citation.doc)
        try:
            text = document_text(self.index, passage.citation.doc)  # a PDF's, HTML's, ... text layer
        except QAError as exc:
            self.notify(str(exc), severity="error")
            return
        if text[passage.citation.start:passage.citation.end] != passage.text:
            self.notify(f"{passage.citation.doc} changed since it was indexed: the highlight may be off "
                        "(rebuild the index from the command palette)", severity="warning", timeout=6)
        self.push_screen(DocumentScreen(Path(path), passage, text))

    # --- actions ---------------------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("clear", "export"):
            return self.screen is self.chat
        return True

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    def action_clear(self) -> None:
        log = self.chat.log_view
        for child in list(log.children):
            if child.id != "welcome" and not isinstance(child, PendingCard):
                child.remove()
        self.turns.clear()
        self.context.clear()
        self.last_answer = None
        self.chat.focus_input()
        self.notify("Conversation cleared", timeout=2)

    def action_export(self) -> None:
        if not self.turns:
            self.notify("Nothing to export yet: ask a question first", severity="warning")
            return
        label = corpus_label(self.settings)
        m = self.index.manifest if self.index is not None else None
        if m is not None:
            label += f" ({len(m.files)} documents, {m.num_chunks} chunks)"
        try:
            path = export_conversation(self.turns, corpus=label)
        except OSError as exc:
            self.notify(f"cannot export: {exc.strerror or exc}", severity="error")
            return
        self.notify(f"Exported the conversation to {path}", title="Exported", timeout=8)

    def action_rebuild(self) -> None:
        self.load_index(rebuild=True)

    def action_toggle_rerank(self) -> None:
        self.settings = self.settings.model_copy(update={"rerank": not self.settings.rerank})
        self.refresh_status()
        self.notify(f"Reranking {'on' if self.settings.rerank else 'off'}", timeout=3)

    def set_mode(self, mode: str) -> None:
        self.settings = self.settings.model_copy(update={"mode": mode})
        self.refresh_status()
        self.notify(f"Retrieval mode: {mode}", timeout=3)


def run_app(settings: Settings) -> int:
    """Run the chat app until the user quits; the exit code for `qa chat`."""
    app = QAChatApp(settings)
    result = app.run()
    return result if isinstance(result, int) else (app.return_code or 0)
