"""`qa chat`: ask questions about the corpus in a terminal chat; every answer is a cited passage.

The app appears at once; opening the index (building it when needed, loading the models) and answering run
in thread workers, so the screen never freezes. Only qa's public API is used.
"""
from __future__ import annotations

import os
import threading
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from textual import work
from textual.app import App
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.content import Content
from textual.screen import Screen
from textual.widgets import Footer, Header, Input, ProgressBar, Static
from textual.worker import Worker

from qa import Answer, Passage, QAError, Settings, answer, corpus_path, document_text, open_index
from qa.followup import Turn as ContextTurn
from qa.followup import followup_query, index_idf
from qa.render import shown

from . import state
from .cards import window_for
from .clipboard import clipboard_route, copy_message, tmux_set_clipboard
from .commands import QACommands
from .export import ExportScreen, Turn, conversation_markdown
from .help import HelpScreen
from .viewer import DocumentScreen
from .widgets import AnswerCard, ErrorCard, NoteCard, PassageItem, PendingCard, QuestionBubble, QuestionInput

PLACEHOLDER = "Ask a question and press enter (F1: help)"
BUSY_PLACEHOLDER = "answering… type your next question: enter queues it, esc cancels"
SPINNER = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"


def corpus_label(settings: Settings) -> str:
    names = [p.expanduser().name or str(p) for p in settings.corpus]
    return ", ".join(names) if len(names) <= 2 else f"{names[0]} + {len(names) - 1} more"


def show_path(path: Path, cwd: Path | None = None, home: Path | None = None) -> str:
    """A path as a user would type it: relative under the current folder, ~/… under home, else absolute."""
    path = path.expanduser().absolute()
    cwd = cwd or Path.cwd()
    home = home or Path.home()
    for base, prefix in ((cwd, ""), (home, "~/")):
        try:
            rel = path.relative_to(base)
        except ValueError:
            continue
        return prefix + str(rel) if str(rel) != "." else (prefix.rstrip("/") or ".")
    return str(path)


def corpus_title(settings: Settings) -> str:
    """The corpus paths for the title bar."""
    paths = [show_path(p) for p in settings.corpus]
    return " + ".join(paths) if len(paths) <= 2 else f"{paths[0]} + {len(paths) - 1} more"


@dataclass
class Job:
    """A question on its way: waiting in the queue, being answered, or cancelled."""

    question: str
    bubble: QuestionBubble
    pending: PendingCard
    cancelled: bool = False
    worker: Worker | None = None


class ChatScreen(Screen):
    """The conversation: status line, scrolling log of answers, the question box and the key footer."""

    BINDINGS = [
        Binding("escape", "cancel", "Cancel answer"),
        Binding("tab", "cycle(1)", "Passages", show=False),
        Binding("shift+tab", "cycle(-1)", "Passages", show=False),
        Binding("pageup", "scroll_log(-1)", "Scroll up", show=False),
        Binding("pagedown", "scroll_log(1)", "Scroll down", show=False),
    ]

    def compose(self):
        yield Header()
        yield Static("", id="status", markup=False)
        yield ProgressBar(id="build", show_eta=True)
        with VerticalScroll(id="log"):
            yield Static(self._welcome(), id="welcome", markup=False)
        yield QuestionInput(placeholder=PLACEHOLDER, id="question")
        yield Footer()

    def _welcome(self) -> Content:
        parts: list = [
            ("Ask about the documents in ", "$text-muted"), (corpus_title(self.app.settings), "bold"),
            (". Answers are quoted from the documents and cited. tab selects a passage; enter expands it, "
             "then opens its source. Follow-ups like “and what about…?” use the earlier questions.", "$text-muted"),
        ]
        saved = len(self.app.saved_conversation)
        if saved:
            parts.append((f" ctrl+r reopens your last conversation ({saved} question{'s' * (saved != 1)}).",
                          "$text-muted"))
        return Content.assemble(*parts)

    def on_mount(self) -> None:
        self.query_one("#build", ProgressBar).display = False
        self.question_input.history = list(self.app.saved_history)
        self.question_input.focus()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "cancel":
            return self.app.current is not None
        return True

    def action_cancel(self) -> None:
        self.app.cancel_current()

    @property
    def log_view(self) -> VerticalScroll:
        return self.query_one("#log", VerticalScroll)

    @property
    def question_input(self) -> QuestionInput:
        return self.query_one("#question", QuestionInput)

    def passages(self) -> list[PassageItem]:
        return list(self.query(PassageItem))

    def focus_input(self) -> None:
        self.question_input.focus()

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
        Binding("ctrl+l", "clear", "Clear", priority=True, show=False),
        Binding("ctrl+s", "export", "Export"),
        Binding("ctrl+r", "reopen", "Reopen", show=False),
    ]

    def __init__(self, settings: Settings | None = None, warm_up: bool = True) -> None:
        super().__init__()
        self.settings = settings or Settings()
        self.warm_up = warm_up  # load the models before the first question, while the user types it
        self.index = None
        self.turns: list[Turn] = []
        self.context: list[ContextTurn] = []  # the answered turns a follow-up is resolved against (as `qa ask --conversation`)
        self.status = "starting…"
        self.status_state = "busy"
        self.load_error: str | None = None
        self._idf = None
        self._lock = threading.Lock()  # one pipeline call at a time: loading, rebuilding, answering
        self._index_ready = threading.Event()
        self._loading = False
        self._spinner = None
        self._spin = 0
        self._bar_stage: str | None = None
        self.queue: deque[Job] = deque()
        self.current: Job | None = None
        self.state_dir = state.state_dir()
        self.saved_history = state.load_history(self.state_dir)
        self.saved_conversation = state.load_conversation(self.state_dir)
        self.last_copy: str | None = None  # the message of the last copy (tests and the help text read it)
        self.last_export: Path | None = None
        self.chat = ChatScreen(id="chat")
        self.sub_title = corpus_title(self.settings)

    def get_default_screen(self) -> Screen:
        return self.chat

    def on_mount(self) -> None:
        self.refresh_status()
        self.load_index()

    # --- status --------------------------------------------------------------------------------------

    def notify(self, message: str, *, title: str = "", **kwargs) -> None:
        """A toast, its text (file names, errors naming them) with controls replaced by visible characters."""
        kwargs.setdefault("markup", False)  # a file name is not markup
        super().notify(shown(message), title=shown(title), **kwargs)

    def set_status(self, text: str, kind: str = "busy") -> None:
        self.status = shown(text)  # build warnings name files: nothing raw reaches the terminal
        self.status_state = kind
        if kind == "busy" and self._spinner is None:
            self._spinner = self.set_interval(0.12, self._tick)
        elif kind != "busy" and self._spinner is not None:
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
            if stage == "embedding":
                text = "building the index: embedding passages"
            elif stage == "reading":
                text = "building the index: reading files"
            elif "model" in stage:
                text = "building the index: loading the embedding model…"
            else:
                text = f"building the index: {stage}"
            if text != last["key"]:
                last["key"] = text
                self._post(self.set_status, text)
            self._post(self._show_progress, stage, done, total)

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

    def _show_progress(self, stage: str, done: int, total: int) -> None:
        """The build's progress bar (with its ETA) under the status line, reset at each stage."""
        bar = self.chat.query_one("#build", ProgressBar)
        bar.display = True
        if "model" in stage or total <= 0:  # no count to show: an indeterminate bar
            self._bar_stage = stage
            bar.update(total=None)
            return
        if self._bar_stage != stage:  # a new stage starts from zero, and so does its ETA
            self._bar_stage = stage
            bar.update(total=total, progress=0)
        bar.update(total=total, progress=done)

    def _loaded(self, rebuild: bool) -> None:
        self._loading = False
        self.chat.query_one("#build", ProgressBar).display = False
        if self.load_error:
            self.set_status(f"cannot open the index: {self.load_error}", "error")
            self.notify(self.load_error, title="Cannot open the index", severity="error", timeout=10)
            return
        self._idle_status()
        if rebuild:
            self.notify(f"Index rebuilt: {self.index.manifest.num_chunks} chunks", timeout=4)

    # --- asking --------------------------------------------------------------------------------------

    def ask(self, question: str) -> None:
        """Ask now, or after the questions before it: the box stays free for the next one."""
        question = question.strip()
        if not question:
            return
        box = self.chat.question_input
        box.remember(question)
        box.value = ""
        try:
            state.append_history(question, corpus_title(self.settings), self.state_dir)
        except OSError as exc:
            self.notify(f"the question history cannot be saved: {exc.strerror or exc}", severity="warning")
        waiting = self.current is not None or bool(self.queue)
        bubble = QuestionBubble(question)
        pending = PendingCard("queued: asked when the answer above is done (esc cancels that one)", queued=True) \
            if waiting else PendingCard("searching the documents…")
        log = self.chat.log_view
        log.mount(bubble)
        log.mount(pending)
        log.anchor()
        self.queue.append(Job(question, bubble, pending))
        self._next()

    def _next(self) -> None:
        """Start the next queued question when nothing is being answered."""
        if self.current is not None:
            self._busy_status()
            return
        if not self.queue:
            self._idle_status()
            return
        job = self.queue.popleft()
        self.current = job
        job.pending.start("searching the documents… (esc cancels)" if self._index_ready.is_set() else
                          "waiting for the index to open… (esc cancels)")
        box = self.chat.question_input
        box.placeholder = BUSY_PLACEHOLDER
        self._busy_status()
        job.worker = self._answer_worker(job, list(self.context))
        self.chat.refresh_bindings()

    def _busy_status(self) -> None:
        queued = len(self.queue)
        self.set_status("answering…" + (f" ({queued} queued)" if queued else ""))

    def _idle_status(self) -> None:
        if self._loading:
            return
        if self.current is not None:
            self._busy_status()
        elif self.load_error:
            self.set_status(f"cannot open the index: {self.load_error}", "error")
        else:
            self.set_status("ready", "ready")

    def cancel_current(self) -> None:
        """esc: drop the question being answered (its result is ignored when it arrives); the queue goes on."""
        job = self.current
        if job is None:
            return
        job.cancelled = True
        if job.worker is not None:
            job.worker.cancel()
        note = NoteCard("cancelled")
        self.chat.log_view.mount(note, after=job.pending)
        job.pending.remove()
        self.current = None
        self.chat.question_input.placeholder = PLACEHOLDER
        self.chat.refresh_bindings()
        self.notify("Answer cancelled", timeout=2)
        self._next()

    @work(thread=True, group="answer", exit_on_error=False)
    def _answer_worker(self, job: Job, context: list[ContextTurn]) -> None:
        self._index_ready.wait()
        index, settings, question = self.index, self.settings, job.question
        if job.cancelled:
            return
        if index is None:
            self._post(self._finish, job, None, f"the index is not available: {self.load_error or 'unknown error'}")
            return
        try:
            query = followup_query(question, context, self._idf)
            if query != question and not job.cancelled:
                self._post(job.pending.set_text, f"searching: {query} (esc cancels)")
            with self._lock:
                if job.cancelled:
                    return
                reply = answer(question, index, settings, query=query if query != question else None)
        except QAError as exc:
            self._post(self._finish, job, None, str(exc))
            return
        except Exception as exc:  # noqa: BLE001
            self._post(self._finish, job, None, f"{type(exc).__name__}: {exc}")
            return
        self._post(self._finish, job, reply, None)

    def _card(self, reply: Answer | None, error: str | None):
        """A reply's card, sized for this screen, or the error's."""
        return AnswerCard(reply, window_for(self.size.height)) if reply is not None else ErrorCard(error or "no reply")

    async def _finish(self, job: Job, reply: Answer | None, error: str | None) -> None:
        """Show a reply (or an error) in place of its pending card, then go on with the queue."""
        if job.cancelled or job is not self.current:
            return
        follow = self._at_bottom()
        card = self._card(reply, error)
        await self.chat.log_view.mount(card, after=job.pending)
        await job.pending.remove()
        self.turns.append(Turn(job.question, reply, error))
        if reply is not None:
            self.context.append(ContextTurn.from_answer(job.question, reply))
        self._save_conversation()
        self.current = None
        self.chat.refresh_bindings()
        if not self.queue:
            self.chat.question_input.placeholder = PLACEHOLDER
        if self.screen is self.chat and not isinstance(self.chat.focused, PassageItem):
            self.chat.question_input.focus()
        if follow or reply is None:
            self.call_after_refresh(self._settle, job.bubble, card)
        self._next()

    def _save_conversation(self) -> None:
        try:
            state.save_conversation([(t.question, t.reply, t.error) for t in self.turns], corpus_title(self.settings),
                                    self.state_dir)
        except OSError as exc:
            self.notify(f"the conversation cannot be saved: {exc.strerror or exc}", severity="warning")

    def _at_bottom(self) -> bool:
        log = self.chat.log_view
        return log.max_scroll_y <= 0 or log.scroll_y >= log.max_scroll_y - 1

    def _settle(self, bubble: QuestionBubble, card) -> None:
        """Keep the newest answer in view: the bottom of the log, or the question's top when it is too tall."""
        log = self.chat.log_view
        if not card.is_attached:
            return
        if card.outer_size.height + bubble.outer_size.height + 1 > log.scrollable_content_region.height:
            log.scroll_to_widget(bubble, top=True, animate=False)
        else:
            log.scroll_end(animate=False)

    # --- passages ------------------------------------------------------------------------------------

    def open_passage(self, passage: Passage) -> None:
        if self.index is None:
            return
        path = corpus_path(self.index, passage.citation.doc)
        try:
            text = document_text(self.index, passage.citation.doc)  # a text layer, or the file decoded as indexed
        except QAError as exc:
            self.notify(str(exc), severity="error")
            return
        if text[passage.citation.start:passage.citation.end] != passage.text:
            self.notify(f"{passage.citation.doc} changed since it was indexed: the highlight may be off "
                        "(rebuild the index from the command palette)", severity="warning", timeout=6)
        self.push_screen(DocumentScreen(Path(path), passage, text))

    # --- actions ---------------------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("clear", "export", "reopen"):
            return self.screen is self.chat
        return True

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    def action_clear(self) -> None:
        log = self.chat.log_view
        for child in list(log.children):
            if child.id != "welcome" and not isinstance(child, PendingCard) and not (
                    isinstance(child, QuestionBubble) and self._waiting_bubble(child)):
                child.remove()
        self.turns.clear()
        self.context.clear()
        self.chat.focus_input()
        self.notify("Conversation cleared", timeout=2)

    def _waiting_bubble(self, bubble: QuestionBubble) -> bool:
        jobs = ([self.current] if self.current else []) + list(self.queue)
        return any(j.bubble is bubble for j in jobs)

    def action_reopen(self) -> None:
        """ctrl+r: put the conversation of the last run back in the log, before this run's, as the context."""
        saved = self.saved_conversation
        if not saved:
            self.notify("No earlier conversation is saved", severity="warning")
            return
        self.saved_conversation = []
        log = self.chat.log_view
        widgets: list = [NoteCard(f"reopened: the last conversation ({len(saved)} question{'s' * (len(saved) != 1)})")]
        turns = []
        for question, reply, error in saved:
            widgets.append(QuestionBubble(question))
            widgets.append(self._card(reply, error))
            turns.append(Turn(question, reply, error))
        log.mount_all(widgets, after="#welcome")
        self.turns[:0] = turns
        answered = [t for t in turns if t.reply is not None]
        self.context[:0] = [ContextTurn.from_answer(t.question, t.reply) for t in answered]
        self.chat.query_one("#welcome", Static).update(self.chat._welcome())
        self.call_after_refresh(log.scroll_end, animate=False)
        self.notify(f"Reopened the last conversation: {len(saved)} question{'s' * (len(saved) != 1)}", timeout=3)

    def action_export(self) -> None:
        """ctrl+s: ask where, then write the conversation as Markdown."""
        if not self.turns:
            self.notify("Nothing to export yet: ask a question first", severity="warning")
            return
        label = corpus_title(self.settings)
        m = self.index.manifest if self.index is not None else None
        if m is not None:
            label += f" ({len(m.files)} documents, {m.num_chunks} chunks)"
        markdown = conversation_markdown(self.turns, corpus=label)

        def done(path: Path | None) -> None:
            if path is None:
                self.notify("Export cancelled", timeout=2)
                return
            self.last_export = path
            self.notify(f"Exported the conversation to {path}", title="Exported", timeout=8)

        self.push_screen(ExportScreen(markdown, state.default_export_path()), done)

    def copy_text(self, text: str, what: str) -> str:
        """Copy by OSC 52 when that is known to work; otherwise also save the text to a file and say where."""
        env = dict(os.environ)
        route = clipboard_route(env, tmux_set_clipboard() if env.get("TMUX") else None)
        if route.osc52:
            self.copy_to_clipboard(text)
        saved = None
        if not route.reliable:
            try:
                saved = state.save_clipboard(text, self.state_dir)
            except OSError:
                saved = None
        message = copy_message(what, route, saved)
        self.last_copy = message
        self.notify(message, title="Copy", severity="information" if route.reliable or saved else "error",
                    timeout=4 if route.reliable else 10)
        return message

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
    settings.configure_index()
    app = QAChatApp(settings)
    result = app.run()
    return result if isinstance(result, int) else (app.return_code or 0)
