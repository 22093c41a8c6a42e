"""Hostile and unlucky files: nothing in a folder reaches the terminal raw, exhausts memory, hangs a build, or
sinks the corpus (docs/robustness.md). The hostile corpus itself comes from bench/hostile.py."""
from __future__ import annotations

import asyncio
import io
from pathlib import Path

import pytest
from conftest import SMALL_CORPUS, write_corpus

from index.terminal import escape_controls, visible_controls
from qa import Answer, Citation, Passage, Settings

OSC_TITLE = "\x1b]2;PWNED-TITLE\x07"
OSC_CLIPBOARD = "\x1b]52;c;UFdORUQtQ0xJUEJPQVJE\x07"  # base64 of PWNED-CLIPBOARD
SGR_RED = "\x1b[31m"


def _raw_controls(text: str) -> list[str]:
    """The control characters in text that a terminal would act on (tab and newline are fine)."""
    return [ch for ch in text if (ord(ch) < 0x20 and ch not in "\t\n") or 0x7F <= ord(ch) <= 0x9F
            or 0x202A <= ord(ch) <= 0x202E or 0x2066 <= ord(ch) <= 0x2069 or 0xD800 <= ord(ch) <= 0xDFFF]


# --- the sanitiser ------------------------------------------------------------------------------------

def test_the_sanitiser_escapes_c0_c1_bidi_and_undecodable_bytes_but_keeps_tab_and_newline():
    hostile = f"a{OSC_TITLE}b\x9b31m\u202eevil\tok\nline\udcff"
    escaped = escape_controls(hostile)
    assert _raw_controls(escaped) == []
    assert escaped == "a\\x1b]2;PWNED-TITLE\\x07b\\x9b31m\\u202eevil\tok\nline\\xff"
    pictured = visible_controls(hostile)
    assert len(pictured) == len(hostile) and _raw_controls(pictured) == []
    assert pictured.startswith("a␛]2;PWNED-TITLE␇b") and "\tok\nline" in pictured
    assert visible_controls("one\r\ntwo") == "one \ntwo"  # CRLF files do not show a mark on every line


# --- qa index: warnings, progress lines, the summary line ---------------------------------------------------

def test_qa_index_prints_hostile_file_names_escaped(tmp_path, capsys):
    from qa.cli import main

    corpus = write_corpus(tmp_path / "corpus", {
        **SMALL_CORPUS,
        f"{OSC_CLIPBOARD}.txt": b"\x00\x01binary",  # skipped: its name is in the warning
        f"title{OSC_TITLE}.txt": "The pipeline was finished in 2019 after long delays.\n",
    })
    code = main(["index", str(corpus), "--index-dir", str(tmp_path / f"index{SGR_RED}")])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert _raw_controls(out) == [] and _raw_controls(err) == []
    assert "skipped \\x1b]52;c;UFdORUQtQ0xJUEJPQVJE\\x07.txt: binary" in err
    assert "index\\x1b[31m" in out  # the summary line names the index folder


def test_progress_lines_escape_the_file_name_they_carry():
    from qa.cli import StderrProgress

    stream = io.StringIO()
    StderrProgress(stream)(f"reading big{OSC_TITLE}.txt (2.0 MB)", 0, 3)
    assert stream.getvalue() == "qa: reading big\\x1b]2;PWNED-TITLE\\x07.txt (2.0 MB)…\n"


# --- the chat app -----------------------------------------------------------------------------------------

DOC = f"Intro{OSC_TITLE} line.\r\nThe cap was {SGR_RED}85,000{OSC_CLIPBOARD} troops.\r\n"


def _hostile_answer(doc_name: str) -> Answer:
    part = DOC.splitlines()[1]
    start = DOC.index(part)
    a = start + part.index("85,000")
    p = Passage(rank=1, text=part, answer="85,000", answer_start=a, answer_end=a + 6, sentence_start=start,
                sentence_end=start + len(part), score=0.9,
                citation=Citation(doc=doc_name, start=start, end=start + len(part), line_start=2, line_end=2,
                                  title=f"Title{OSC_TITLE}", author=f"\u202eevil{SGR_RED}"))
    return Answer(question=f"what cap{OSC_TITLE}?", answered=True, confidence=0.9, passages=[p],
                  answer=f"85,000{SGR_RED}", mode="hybrid", reranked=True, seconds=0.1)


@pytest.fixture(scope="module")
def hostile_chat(tmp_path_factory) -> tuple[Settings, str]:
    from qa import open_index

    root = tmp_path_factory.mktemp("hostile-chat")
    name = f"doc{OSC_CLIPBOARD}.txt"
    corpus = write_corpus(root / "corpus", {name: DOC, **SMALL_CORPUS})
    settings = Settings(corpus=[corpus], index_dir=root / "index", mode="bm25", rerank=False)
    open_index(settings)
    return settings, name


def _screen_text(app) -> str:
    """Every string the app's widgets hold to draw (Static contents, toasts, the status line)."""
    from textual.widgets import Static

    screen = app.screen
    parts = [str(w.content) for w in screen.query(Static)]
    parts += [n.message + n.title for n in app._notifications]
    parts.append(app.status)
    return "\n".join(parts)


def test_the_chat_app_draws_passages_names_and_documents_without_raw_controls(hostile_chat, monkeypatch, tmp_path):
    import tui.app
    from tui.viewer import DocumentScreen
    from tui.widgets import AnswerCard, PassageItem

    settings, name = hostile_chat
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setattr(tui.app, "answer", lambda q, index, s, query=None: _hostile_answer(name))

    async def run():
        app = tui.app.QAChatApp(settings, warm_up=False)
        async with app.run_test(size=(120, 40)) as pilot:
            await app.workers.wait_for_complete()
            await pilot.pause()
            app.chat.question_input.value = "what cap?"
            await pilot.press("enter")
            for _ in range(200):
                if app.chat.query(AnswerCard):
                    break
                await pilot.pause(0.02)
            await pilot.pause()
            card = app.chat.query_one(AnswerCard)
            shown = "\n".join(str(w.content) for w in card.query("Static"))
            assert _raw_controls(shown) == []
            assert "␛]52;c;" in shown and "Title␛]2;PWNED-TITLE␇" in shown  # visible, not acted on
            item = card.query_one(PassageItem)
            # the highlight still falls on the answer: offsets hold after the one-for-one replacement
            assert item.passage.text[item.passage.answer_start - item.passage.citation.start:][:6] == "85,000"
            app.notify(f"{name} changed", title=OSC_TITLE)
            app.set_status(f"skipped {name}: binary")
            await pilot.pause()
            assert _raw_controls(_screen_text(app)) == []
            item.action_open()  # what enter on an expanded passage does
            for _ in range(100):
                if isinstance(app.screen, DocumentScreen):
                    break
                await pilot.pause(0.02)
            assert isinstance(app.screen, DocumentScreen)
            assert _raw_controls(app.screen.text) == [] and len(app.screen.text) == len(DOC)
            assert _raw_controls(_screen_text(app)) == []
            assert not [n for n in app._notifications if "changed since it was indexed" in n.message]

    asyncio.run(run())


def test_the_source_viewer_shows_a_document_with_controls_visibly(tmp_path):
    from tui.viewer import DocumentScreen

    path = tmp_path / f"x{OSC_TITLE}.txt"
    path.write_text(DOC, encoding="utf-8")
    screen = DocumentScreen(Path(path))
    assert _raw_controls(screen.text) == [] and "␛]52;c;" in screen.text
