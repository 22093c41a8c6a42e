"""The chat app while an answer is computed, compact cards, copy, export and what survives a restart.

Answers come from a stand-in answer function (hand-made `Answer` objects, released when the test says so), so
these tests are about the app, not the models; the index is a real one over a two-file corpus. XDG directories
point into tmp_path: nothing is written to the user's home.
"""
from __future__ import annotations

import asyncio
import functools
import threading
from pathlib import Path

import pytest

from qa import Answer, AnswerGroup, Citation, Passage, Settings, open_index

Q1 = "what army cap did Istanbul 2022 propose?"
Q2 = "and what did the US plan propose?"

DOC_A = ("During the negotiations in Istanbul in March 2022, Russia demanded a peacetime cap of 85,000 active "
         "personnel for Ukraine's armed forces. The figure was far below the pre-war army.\n"
         "The newly modified U.S. initiative caps the military at 800,000 and includes no restriction on missiles.\n")
DOC_B = ("It capped its armed forces at 85,000 troops, less than 10% of its current strength.\n"
         "During the negotiations in Istanbul in March 2022, Russia demanded a peacetime cap of 85,000 active "
         "personnel for Ukraine's armed forces.\n")


def sync(test):
    @functools.wraps(test)
    def wrapper(*args, **kwargs):
        return asyncio.run(test(*args, **kwargs))

    return wrapper


def passage(rank: int, doc: str, text: str, part: str, score: float, answer: str | None = None,
            title: str | None = None) -> Passage:
    """A passage citing `part` of `text` (a whole line here), its answering sentence being the first one."""
    start = text.index(part)
    end = start + len(part)
    line = text[:start].count("\n") + 1
    first = part.split(". ")[0]
    a = part.find(answer) if answer else -1
    return Passage(rank=rank, text=part, answer=answer if a >= 0 else None,
                   answer_start=start + a if a >= 0 else None, answer_end=start + a + len(answer) if a >= 0 else None,
                   sentence_start=start, sentence_end=start + len(first), score=score,
                   citation=Citation(doc=doc, start=start, end=end, line_start=line, line_end=line, title=title,
                                     date="2025-11-29" if title else None))


def istanbul_answer(question: str = Q1, mode: str = "hybrid", answered: bool = True, scale: float = 1.0) -> Answer:
    """Three passages: two agree on 85,000 (the second in another document repeats [1]'s sentence), one does not."""
    a1, a2 = DOC_A.splitlines(keepends=False)
    b1, b2 = DOC_B.splitlines(keepends=False)
    ps = [
        passage(1, "a.txt", DOC_A, a1, 0.97 * scale, "85,000", title="Peace talks"),
        passage(2, "b.txt", DOC_B, b1, 0.81 * scale, "85,000"),
        passage(3, "b.txt", DOC_B, b2, 0.66 * scale, "85,000"),
        passage(4, "a.txt", DOC_A, a2, 0.05 * scale, "800,000"),
    ]
    groups = [AnswerGroup(answer="85,000", docs=["a.txt", "b.txt"], ranks=[1, 2, 3])] if answered else []
    return Answer(question=question, answered=answered, confidence=0.97 if answered else 0.1, passages=ps,
                  message=None if answered else "no answer found in the documents",
                  answer="85,000" if answered else None, groups=groups, mode=mode,
                  reranked=mode == "hybrid", seconds=0.42)


class FakeAnswers:
    """Stands in for qa.answer: records each call and waits for the test to release it."""

    def __init__(self, make=istanbul_answer, gated: bool = False) -> None:
        self.make = make
        self.calls: list[tuple[str, str | None]] = []
        self.release = threading.Event()
        if not gated:
            self.release.set()
        self.started = threading.Event()

    def __call__(self, question, index, settings, query=None):
        self.calls.append((question, query))
        self.started.set()
        assert self.release.wait(30), "the test never released the answer"
        return self.make(question)


@pytest.fixture(autouse=True)
def xdg(tmp_path, monkeypatch) -> Path:
    """State and documents folders inside tmp_path; no TMUX, no known terminal."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("XDG_DOCUMENTS_DIR", str(tmp_path / "docs-missing"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    for var in ("TMUX", "STY", "TERM_PROGRAM", "WT_SESSION", "KITTY_WINDOW_ID", "WEZTERM_PANE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("TERM", "xterm-256color")
    return tmp_path / "state" / "qa-offline"


@pytest.fixture(scope="module")
def notes(tmp_path_factory) -> Settings:
    """A real index over two small files (the fake answers cite them)."""
    root = tmp_path_factory.mktemp("chat", numbered=False)
    corpus = root / "notes"
    corpus.mkdir()
    (corpus / "a.txt").write_text(DOC_A, encoding="utf-8")
    (corpus / "b.txt").write_text(DOC_B, encoding="utf-8")
    settings = Settings(corpus=[corpus], index_dir=root / "index")
    open_index(settings)
    return settings


def make_app(notes, monkeypatch, fake: FakeAnswers):
    import tui.app

    monkeypatch.setattr(tui.app, "answer", fake)
    return tui.app.QAChatApp(notes, warm_up=False)


async def settle(pilot) -> None:
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()
    await pilot.pause()


async def until(pilot, condition, what: str) -> None:
    for _ in range(200):
        if condition():
            return
        await pilot.pause(0.02)
    raise AssertionError(f"never happened: {what}")


async def submit(pilot, question: str) -> None:
    box = pilot.app.chat.question_input
    box.value = question
    await pilot.press("enter")
    await pilot.pause()


def plain(widget) -> str:
    from textual.widgets import Static

    return "\n".join(str(w.content) for w in [widget, *widget.query(Static)] if isinstance(w, Static))


@sync
async def test_typing_during_an_answer_is_kept_queued_and_never_a_shortcut(notes, monkeypatch):
    from tui.help import HelpScreen
    from tui.widgets import AnswerCard, PendingCard

    fake = FakeAnswers(gated=True)
    app = make_app(notes, monkeypatch, fake)
    async with app.run_test(size=(100, 40)) as pilot:
        await settle(pilot)
        await submit(pilot, Q1)
        await until(pilot, fake.started.is_set, "the first answer started")
        box = app.chat.question_input
        assert app.status.startswith("answering…")
        assert app.focused is box and not box.disabled
        await pilot.press(*"who drafted it?")  # ? is text here, not the help screen
        assert not isinstance(app.screen, HelpScreen)
        assert box.value == "who drafted it?"
        await pilot.press("enter")  # queued behind the running answer
        await pilot.pause()
        assert box.value == ""
        pending = list(app.chat.query(PendingCard))
        assert len(pending) == 2 and pending[1].has_class("queued")
        assert "1 queued" in app.status
        assert [q for q, _ in fake.calls] == [Q1]  # the second waits its turn
        await pilot.press(*"keep typing")
        fake.release.set()
        await until(pilot, lambda: len(app.chat.query(AnswerCard)) == 2, "both answers shown")
        await settle(pilot)
        cards = list(app.chat.query(AnswerCard))
        assert [c.reply.question for c in cards] == [Q1, "who drafted it?"]
        assert [q for q, _ in fake.calls] == [Q1, "who drafted it?"]
        assert box.value == "keep typing"  # what was typed meanwhile is still there
        assert app.status == "ready" and not app.chat.query(PendingCard)


@sync
async def test_esc_cancels_the_running_answer_and_the_next_question_goes_on(notes, monkeypatch):
    from tui.widgets import AnswerCard, NoteCard

    fake = FakeAnswers(gated=True)
    app = make_app(notes, monkeypatch, fake)
    async with app.run_test(size=(100, 40)) as pilot:
        await settle(pilot)
        await submit(pilot, Q1)
        await until(pilot, fake.started.is_set, "the answer started")
        await pilot.press("escape")
        await pilot.pause()
        assert app.current is None and app.status == "ready"
        assert "cancelled" in plain(app.chat.query_one(NoteCard))
        fake.release.set()  # the computation ends; its result must not appear
        await settle(pilot)
        assert not app.chat.query(AnswerCard) and app.turns == []
        await submit(pilot, "who drafted the plan?")
        await settle(pilot)
        cards = list(app.chat.query(AnswerCard))
        assert len(cards) == 1 and cards[0].reply.question == "who drafted the plan?"


@sync
async def test_up_on_an_empty_box_edits_the_last_question_and_history_survives_a_restart(notes, monkeypatch, xdg):
    from tui.widgets import AnswerCard

    app = make_app(notes, monkeypatch, FakeAnswers())
    async with app.run_test(size=(100, 40)) as pilot:
        await settle(pilot)
        await submit(pilot, Q1)
        await settle(pilot)
        box = app.chat.question_input
        await pilot.press("up")
        assert box.value == Q1  # back for editing
        await pilot.press("backspace", *"!")
        assert box.value == Q1[:-1] + "!"
        await pilot.press("up")
        assert box.value == Q1[:-1] + "!"  # an edit is never replaced
    assert (xdg / "history.jsonl").is_file()

    again = make_app(notes, monkeypatch, FakeAnswers())
    async with again.run_test(size=(100, 40)) as pilot:
        await settle(pilot)
        assert "ctrl+r reopens your last conversation (1 question)" in plain(again.chat.query_one("#welcome"))
        await pilot.press("up")
        assert again.chat.question_input.value == Q1
        again.chat.question_input.value = ""
        await pilot.press("ctrl+r")
        await settle(pilot)
        cards = list(again.chat.query(AnswerCard))
        assert len(cards) == 1 and cards[0].reply.answer == "85,000"
        assert [t.question for t in again.context] == [Q1]  # a follow-up now leans on the reopened conversation
        assert again.context[-1].answer == "85,000"


@sync
async def test_compact_card_expands_and_folds_and_never_repeats_text(notes, monkeypatch):
    from tui.widgets import AnswerCard, PassageItem

    app = make_app(notes, monkeypatch, FakeAnswers())
    async with app.run_test(size=(100, 40)) as pilot:
        await settle(pilot)
        await submit(pilot, Q1)
        await settle(pilot)
        card = app.chat.query_one(AnswerCard)
        items = list(card.query(PassageItem))
        assert [i.expanded for i in items] == [True, False, False, False]
        assert all(i.size.height == 1 for i in items[1:])  # one line each
        assert "Sources agree: 3 passages" in plain(card)
        # [3] repeats [1]'s sentence from another file: it says so instead of showing it again
        assert "same text as [1]" in str(items[2].query_one(".passage-head").content)
        assert "It capped its armed forces" in str(items[1].query_one(".passage-head").content)
        # the one-line summary marks the answer span; the top passage's body does too
        body = items[0].query_one(".passage-text").content
        assert [body.plain[s.start:s.end] for s in body.spans if "reverse" in str(s.style)] == ["85,000"]
        # [4] gives another figure but is not among the answering passages: no highlight
        head4 = items[3].query_one(".passage-head").content
        assert not [s for s in head4.spans if "reverse" in str(s.style)]
        await pilot.press("tab")
        await pilot.press("down")
        assert app.focused is items[1]
        await pilot.press("enter")  # expand
        await pilot.pause()
        assert items[1].expanded and items[1].size.height > 1
        assert "less than 10%" in str(items[1].query_one(".passage-text").content)
        await pilot.press("space")  # fold again
        await pilot.pause()
        assert not items[1].expanded and items[1].size.height == 1


@sync
async def test_scores_share_one_scale_and_abstained_cards_mark_nothing(notes, monkeypatch):
    from tui.widgets import AnswerCard, PassageItem

    raw = FakeAnswers(make=lambda q: istanbul_answer(q, mode="bm25", scale=26.6))  # raw BM25 scores
    app = make_app(notes, monkeypatch, raw)
    async with app.run_test(size=(100, 40)) as pilot:
        await settle(pilot)
        await submit(pilot, Q1)
        await settle(pilot)
        items = list(app.chat.query_one(AnswerCard).query(PassageItem))
        heads = [str(i.query_one(".passage-head").content) for i in items]
        assert "· 0.97" in heads[0] and "[2] 0.81" in heads[1]  # 25.80 raw -> 0.97, the answer's confidence
        assert "25." not in "".join(heads)

    abstained = FakeAnswers(make=lambda q: istanbul_answer(q, answered=False))
    app = make_app(notes, monkeypatch, abstained)
    async with app.run_test(size=(100, 40)) as pilot:
        await settle(pilot)
        await submit(pilot, Q1)
        await settle(pilot)
        card = app.chat.query_one(AnswerCard)
        assert "confidence 0.10" in plain(card)
        items = list(card.query(PassageItem))
        assert "· 0.10" in str(items[0].query_one(".passage-head").content)  # not 0.97 next to confidence 0.10
        for item in items:
            for part in (".passage-head", ".passage-text"):
                content = item.query_one(part).content
                assert not [s for s in getattr(content, "spans", []) if "reverse" in str(s.style)]


@sync
async def test_export_asks_where_and_includes_the_agreement_line(notes, monkeypatch, xdg, tmp_path):
    from textual.widgets import Input

    from tui.export import ExportScreen

    monkeypatch.chdir(tmp_path)
    app = make_app(notes, monkeypatch, FakeAnswers())
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await submit(pilot, Q1)
        await settle(pilot)
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert isinstance(app.screen, ExportScreen)
        box = app.screen.query_one("#export-path", Input)
        default = Path(box.value)
        assert default.parent == xdg / "exports" and default.name.startswith("qa-chat-")  # not the current folder
        await pilot.press("escape")  # cancel: nothing written
        await pilot.pause()
        assert app.screen is app.chat and not list(tmp_path.rglob("qa-chat-*.md"))
        target = tmp_path / "out" / "talk.md"
        await pilot.press("ctrl+s")
        await pilot.pause()
        app.screen.query_one("#export-path", Input).value = str(target)
        await pilot.press("enter")
        await pilot.pause()
        assert app.screen is app.chat and app.last_export == target
        md = target.read_text(encoding="utf-8")
        assert f"## 1. {Q1}" in md and "**Answer: 85,000**" in md
        assert "Sources agree: 3 passages [1], [2], [3] in 2 documents" in md
        assert "**85,000**" in md and "800,000" in md and "**800,000**" not in md
        assert not list(tmp_path.glob("qa-chat-*.md"))
        # the same path again: the dialog asks before replacing the file
        await pilot.press("ctrl+s")
        await pilot.pause()
        app.screen.query_one("#export-path", Input).value = str(target)
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, ExportScreen)
        assert "exists" in str(app.screen.query_one("#export-error").content)
        await pilot.press("enter")
        await pilot.pause()
        assert app.screen is app.chat


@sync
async def test_copy_inside_tmux_without_set_clipboard_falls_back_to_a_file(notes, monkeypatch, xdg):
    import tui.app

    monkeypatch.setenv("TMUX", "/tmp/tmux-0/default,1,0")
    setting = {"value": "external"}  # tmux's default
    monkeypatch.setattr(tui.app, "tmux_set_clipboard", lambda: setting["value"])
    app = make_app(notes, monkeypatch, FakeAnswers())
    async with app.run_test(size=(100, 40)) as pilot:
        await settle(pilot)
        await submit(pilot, Q1)
        await settle(pilot)
        await pilot.press("tab", "y")
        await pilot.pause()
        saved = xdg / "clipboard.txt"
        assert app.clipboard == ""  # no OSC 52 was sent: tmux would drop it
        assert "Not copied" in app.last_copy and str(saved) in app.last_copy and "set-clipboard" in app.last_copy
        text = saved.read_text(encoding="utf-8")
        assert "Russia demanded a peacetime cap of 85,000" in text and "a.txt, line 1" in text
        saved.unlink()
        setting["value"] = "on"
        await pilot.press("y")
        await pilot.pause()
        assert app.last_copy == "Copied passage [1] to the clipboard (OSC 52)"
        assert "85,000" in app.clipboard and not saved.exists()


def test_clipboard_route_claims_a_copy_only_where_osc52_is_known_to_work():
    from tui.clipboard import clipboard_route, copy_message

    assert clipboard_route({"TMUX": "x"}, "on").reliable
    assert not clipboard_route({"TMUX": "x"}, "external").osc52
    assert not clipboard_route({"TMUX": "x"}, None).osc52
    assert clipboard_route({"TERM": "xterm-kitty"}).reliable
    assert clipboard_route({"TERM_PROGRAM": "WezTerm"}).reliable
    unknown = clipboard_route({"TERM": "xterm-256color"})
    assert unknown.osc52 and not unknown.reliable
    message = copy_message("passage [1]", unknown, Path("/s/clipboard.txt"))
    assert not message.startswith("Copied") and "/s/clipboard.txt" in message


def test_display_scores_put_every_mode_on_the_confidence_scale():
    from qa.render import display_scores, render_answer

    bm25 = istanbul_answer(mode="bm25", scale=26.6)
    scores = display_scores(bm25)
    assert scores[0] == pytest.approx(0.97) and all(0 <= s <= 1 for s in scores)
    assert scores == sorted(scores, reverse=True)
    assert display_scores(istanbul_answer(answered=False))[0] == pytest.approx(0.1)
    text = render_answer(bm25)
    assert "score 0.97" in text and "score 25.80" not in text


def _long_passage() -> tuple[list[str], Passage]:
    """Twelve sentences in one passage, the seventh answering."""
    sentences = [f"Sentence number {i} says something long enough to matter here." for i in range(12)]
    text = " ".join(sentences)
    target = text.index(sentences[6])
    return sentences, Passage(rank=1, text=text, sentence_start=target, sentence_end=target + len(sentences[6]),
                              score=1.0, citation=Citation(doc="x.txt", start=0, end=len(text), line_start=1,
                                                           line_end=1))


def test_focus_window_keeps_the_answering_sentence_and_whole_neighbours():
    from tui.cards import focus_window

    sentences, p = _long_passage()
    text = p.text
    lo, hi = focus_window(p, budget=200)
    shown = text[lo:hi]
    assert sentences[6] in shown and len(shown) <= 200
    assert shown.strip().startswith("Sentence number") and shown.strip().endswith("here.")


def test_a_short_screen_shows_the_answering_sentence_alone():
    from tui.cards import card_views, visible_parts, window_for

    sentences, p = _long_passage()
    text = p.text
    reply = Answer(question="q", answered=True, confidence=1.0, answer="x", passages=[p], mode="hybrid", reranked=True,
                   seconds=0.1)
    tall, short = card_views(reply, window=window_for(40))[0], card_views(reply, window=window_for(24))[0]
    def shown(view) -> str:
        return "".join(text[a:b] for a, b in (x for x in visible_parts(view) if isinstance(x, tuple)))

    assert shown(short).strip() == sentences[6]
    assert sentences[6] in shown(tall) and len(shown(tall)) > 3 * len(sentences[6])


async def _asked(pilot) -> None:
    """Ask Q1 (answered by the hand-made reply) and wait for its card, cursor still."""
    await settle(pilot)
    pilot.app.chat.question_input.cursor_blink = False
    await submit(pilot, Q1)
    await settle(pilot)


@pytest.mark.parametrize("size", [(80, 24), (120, 40)])
def test_snapshot_compact_card(snap_compare, notes, monkeypatch, size):
    """The compact card from a hand-made Answer: top passage expanded, the others one line each."""
    monkeypatch.chdir(notes.corpus[0].parent)  # the title shows the corpus as "notes"
    app = make_app(notes, monkeypatch, FakeAnswers())
    assert snap_compare(app, terminal_size=size, run_before=_asked)


@sync
async def test_a_build_shows_a_progress_bar_with_an_eta_and_hides_it_when_done(notes, monkeypatch):
    from textual.widgets import ProgressBar

    app = make_app(notes, monkeypatch, FakeAnswers())
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        bar = app.chat.query_one("#build", ProgressBar)
        assert not bar.display
        app._show_progress("loading model", 0, 40)
        await pilot.pause()
        assert bar.display and bar.total is None  # nothing to count yet
        app._show_progress("embedding", 10, 40)
        await pilot.pause(1.2)  # the bar needs a second of samples for a rate
        app._show_progress("embedding", 20, 40)
        await pilot.pause()
        assert bar.percentage == pytest.approx(0.5)
        assert bar._display_eta is not None and bar._display_eta > 0  # an ETA, once there is a rate
        app._loaded(False)
        await pilot.pause()
        assert not bar.display and app.status == "ready"
