"""Hostile and unlucky files: nothing in a folder reaches the terminal raw, exhausts memory, hangs a build, or
sinks the corpus (docs/robustness.md). The hostile corpus itself comes from bench/hostile.py."""
from __future__ import annotations

import asyncio
import io
import json
import os
import shutil
import threading
import time
import tracemalloc
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


# --- no file sinks the corpus ------------------------------------------------------------------------------

@pytest.fixture
def ingest_options():
    """Restore the process's ingest options after a test that changes them."""
    import index.ingest

    before = index.ingest.OPTIONS
    yield index.ingest.configure
    index.ingest.OPTIONS = before


def _build(corpus: Path, tmp_path: Path, progress=None):
    from index.store import build_index

    s = Settings(corpus=[corpus], index_dir=tmp_path / "index")
    warnings: list[str] = []
    index, _ = build_index(s.corpus, s.resolved_index_dir(), s.chunking, s.bm25, progress, warnings.append)
    return index, warnings, s


def _not_stale(index, s: Settings) -> bool:
    from index.store import scan_corpus, stale_reason

    root, files = scan_corpus(s.corpus)
    return stale_reason(index.manifest, root, files, s.chunking, s.bm25) is None


def test_a_file_name_with_invalid_utf8_is_skipped_and_shown_escaped(tmp_path, capsys):
    from qa.cli import main

    corpus = write_corpus(tmp_path / "corpus", SMALL_CORPUS)
    with open(os.fsencode(corpus) + b"/bad\xff\xfename.txt", "wb") as fh:
        fh.write(b"A file whose name is not UTF-8.\n")
    code = main(["index", str(corpus), "--index-dir", str(tmp_path / "index")])
    out, err = capsys.readouterr()
    assert code == 0, err  # before: every build failed with UnicodeEncodeError (surrogates not allowed)
    assert "skipped bad\\xff\\xfename.txt: its name is not valid UTF-8" in err
    assert out.startswith("built: 2 files")


def test_a_path_longer_than_path_max_is_skipped_and_the_rest_is_indexed(tmp_path):
    from bench.hostile import make_deep_file

    corpus = write_corpus(tmp_path / "corpus", SMALL_CORPUS)
    make_deep_file(corpus, levels=18)
    index, warnings, s = _build(corpus, tmp_path)  # before: the whole corpus failed ("File name too long")
    assert sorted(f.doc for f in index.manifest.files) == ["energy.md", "notes/minerals.txt"]
    assert any("File name too long" in w for w in warnings)
    assert _not_stale(index, s)


def test_any_error_reading_one_file_skips_that_file_only(tmp_path, monkeypatch):
    import index.store

    real = index.store.clean_document

    def failing(doc, text):
        if doc == "energy.md":
            raise MemoryError("out of memory")
        return real(doc, text)

    monkeypatch.setattr(index.store, "clean_document", failing)
    corpus = write_corpus(tmp_path / "corpus", SMALL_CORPUS)
    index_, warnings, _ = _build(corpus, tmp_path)
    assert index_.source("energy.md").skipped == "could not be indexed (MemoryError: out of memory)"
    assert index_.source("notes/minerals.txt").skipped is None and index_.manifest.num_chunks > 0
    assert "skipped energy.md: could not be indexed (MemoryError: out of memory)" in warnings


# --- no hang ----------------------------------------------------------------------------------------------

def test_a_file_swapped_for_a_fifo_during_the_build_is_skipped_without_hanging(tmp_path):
    corpus = write_corpus(tmp_path / "corpus", SMALL_CORPUS)
    victim = corpus / "notes/minerals.txt"

    def swap(stage, done, total):
        if stage == "reading" and done == 1 and victim.is_file():
            victim.unlink()
            os.mkfifo(victim)  # nobody ever writes to it: a blocking open would wait forever

    result = {}
    worker = threading.Thread(target=lambda: result.update(built=_build(corpus, tmp_path, swap)), daemon=True)
    worker.start()
    worker.join(120)
    assert not worker.is_alive(), "the build hangs on the FIFO"
    index, warnings, _ = result["built"]
    assert index.source("notes/minerals.txt").skipped.startswith("not a regular file")
    assert index.source("energy.md").skipped is None


def test_a_build_waiting_for_the_lock_gives_up_with_one_line(tmp_path, capsys, monkeypatch, ingest_options):
    import fcntl

    from qa.cli import main

    corpus = write_corpus(tmp_path / "corpus", SMALL_CORPUS)
    index_dir = tmp_path / "index"
    index_dir.mkdir()
    monkeypatch.setenv("QA_LOCK_TIMEOUT", "0.3")
    with open(index_dir / ".lock", "a+") as held:  # another build holds it (a FIFO-stuck one, before the fix)
        fcntl.flock(held, fcntl.LOCK_EX)
        t0 = time.monotonic()
        code = main(["index", str(corpus), "--index-dir", str(index_dir)])
        waited = time.monotonic() - t0
    _, err = capsys.readouterr()
    assert code == 1 and waited < 30
    last = err.splitlines()[-1]
    assert last.startswith("qa: error: cannot write index at") and "another build has held its lock" in last
    assert all(line.startswith("qa: ") for line in err.splitlines())  # no traceback


# --- bounded memory per file --------------------------------------------------------------------------------

def _peak_bytes(fn) -> int:
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_sparse_and_oversized_files_are_skipped_without_reading_them(tmp_path):
    from bench.hostile import sparse
    from index.ingest import SkippedFile, read_text

    big = sparse(tmp_path / "sparse-64g.txt", 64 << 30)
    with pytest.raises(SkippedFile, match="too large"):  # before: MemoryError, and every later qa ask failed too
        read_text(big)
    nuls = sparse(tmp_path / "sparse-100m.txt", 100 << 20)  # under the size limit: binary from its first block

    def read():
        with pytest.raises(SkippedFile, match="binary"):
            read_text(nuls)

    assert _peak_bytes(read) < 8 << 20  # before: all 100 MB were read first


def test_a_corpus_with_sparse_files_builds_and_they_are_not_changes(tmp_path):
    from bench.hostile import sparse

    corpus = write_corpus(tmp_path / "corpus", SMALL_CORPUS)
    sparse(corpus / "sparse-4g.txt", 4 << 30)
    sparse(corpus / "huge.pdf", 3 << 30)
    index, warnings, s = _build(corpus, tmp_path)
    assert index.source("sparse-4g.txt").skipped.startswith("too large")
    assert index.source("huge.pdf").skipped.startswith("too large")
    assert index.manifest.num_chunks > 0
    assert _not_stale(index, s)  # a skipped file that keeps failing does not rebuild the index on every question


def test_a_zip_member_that_inflates_past_its_declared_size_is_refused_by_streaming(tmp_path):
    from bench.hostile import docx_bomb
    from index import formats
    from index.ingest import SkippedFile

    bomb = docx_bomb(tmp_path / "bomb.docx", inflated=64 << 20, declared=500_000)

    def read():
        with pytest.raises(SkippedFile, match="corrupt DOCX|zip bomb"):
            formats.extract(bomb)

    assert _peak_bytes(read) < 16 << 20  # before: the member was inflated whole (64 MB here, 2 GB in the audit)


# --- symlinks -------------------------------------------------------------------------------------------------

def test_links_leaving_the_corpus_are_skipped_unless_asked_for(tmp_path, ingest_options):
    corpus = write_corpus(tmp_path / "corpus", SMALL_CORPUS)
    secret = tmp_path / "secret.txt"
    secret.write_text("The vault code is 4711 and nobody shares it.\n", encoding="utf-8")
    (corpus / "out.txt").symlink_to(secret)
    (corpus / "in.txt").symlink_to(corpus / "energy.md")
    index, warnings, s = _build(corpus, tmp_path)
    docs = {f.doc for f in index.manifest.files}
    assert "out.txt" not in docs and "in.txt" in docs  # a link inside the corpus is still followed
    assert any(w.startswith("skipped out.txt: a link to a file outside the corpus") for w in warnings)
    assert _not_stale(index, s)
    ingest_options(follow_links=True)
    assert not _not_stale(index, s)  # asking for links changes the corpus
    index, _, _ = _build(corpus, tmp_path)
    assert index.source("out.txt").skipped is None


def test_follow_links_is_a_setting_and_an_option(tmp_path, ingest_options, monkeypatch):
    import index.ingest
    from qa.cli import build_parser, settings_from

    settings_from(build_parser().parse_args(["index", "--follow-links"]))
    assert index.ingest.OPTIONS.follow_links is True
    monkeypatch.setenv("QA_FOLLOW_LINKS", "0")
    settings_from(build_parser().parse_args(["index"]))
    assert index.ingest.OPTIONS.follow_links is False


# --- bounded questions ----------------------------------------------------------------------------------------

class _EndlessLine:
    """A stdin whose first line is `size` bytes long, produced as it is read (never held whole here)."""

    def __init__(self, size: int) -> None:
        self.left = size
        self.after = [b"second question?\n"]

    def readline(self, limit: int = -1) -> bytes:
        if self.left:
            n = min(self.left, limit if limit > 0 else self.left)
            self.left -= n
            return b"a" * n + (b"\n" if not self.left else b"")
        return self.after.pop(0) if self.after else b""


def test_a_20_mb_stdin_line_is_cut_while_read(tmp_path):
    from qa.cli import stdin_questions

    def read():
        return list(stdin_questions(_EndlessLine(20 << 20), lambda n: None, max_bytes=8004))

    lines = read()
    assert [len(q) for q in lines] == [8004, 16] and lines[1] == "second question?"
    assert _peak_bytes(read) < 1 << 20  # before: the whole 20 MB line, then ~230 times that while answering


def test_a_long_question_is_cut_with_a_warning_and_answered(tmp_path, capsys):
    from qa.cli import main

    corpus = write_corpus(tmp_path / "corpus", SMALL_CORPUS)
    question = "what did the minerals deal give the U.S.? " + "filler words " * 2_000
    code = main(["ask", "--corpus", str(corpus), "--index-dir", str(tmp_path / "index"), "--mode", "bm25",
                 "--no-rerank", "--json", question])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "a question longer than 20,000 characters was cut to its first 20,000" in err
    assert len(json.loads(out)["question"]) <= 20_000


# --- an index that checks itself --------------------------------------------------------------------------------

def _damage(path: Path, how: str) -> None:
    data = path.read_bytes()
    if how == "truncate":
        path.write_bytes(b"")
    elif how == "zero":
        path.write_bytes(b"\x00" * len(data))
    else:  # one flipped byte in the middle, the size kept ("85,000" -> "95,000")
        i = data.find(b"85,000") if b"85,000" in data else len(data) // 2
        with open(path, "r+b") as fh:
            fh.seek(i)
            fh.write(bytes([data[i] ^ 0x0C]))


def test_every_damaged_index_file_means_a_rebuild_with_a_warning_never_an_error(tmp_path):
    from conftest import assert_citations_exact, current_generation

    from qa import answer, open_index

    corpus = write_corpus(tmp_path / "corpus", {**SMALL_CORPUS, "cap.txt": "Istanbul 2022 proposed a cap of 85,000 "
                                                "troops for the army.\n"})
    s = Settings(corpus=[corpus], index_dir=tmp_path / "index", mode="bm25", rerank=False)
    open_index(s)
    names = sorted(p.name for p in current_generation(s.index_dir).iterdir()
                   if p.is_file() and not p.name.startswith(".") and p.name != "manifest.json")
    assert {"chunks.jsonl", "chunk_offsets.npy", "vectors.faiss", "bm25_tfs.npy"} <= set(names)
    for k, name in enumerate(names):
        how = ("truncate", "zero", "flip")[k % 3]
        before = current_generation(s.index_dir)
        _damage(before / name, how)
        warnings: list[str] = []
        index = open_index(s, warn=warnings.append)  # before: EOFError on every call, or a flip went unnoticed
        assert index.folder != before, (name, how)
        assert any("is corrupt" in w and "rebuilding" in w for w in warnings), (name, how, warnings)
        ans = answer("what cap did Istanbul 2022 propose?", index, s)
        assert ans.passages and "85,000" in ans.passages[0].text
        assert_citations_exact(ans, corpus)


def test_the_next_build_prunes_leftovers_of_killed_builds(tmp_path):
    corpus = write_corpus(tmp_path / "corpus", SMALL_CORPUS)
    _, _, s = _build(corpus, tmp_path)
    leftovers = [s.index_dir / ".CURRENT.4242.tmp", s.index_dir / "gen-1-4242", s.index_dir / ".building-2-4242"]
    leftovers[0].write_text("{}", encoding="utf-8")
    for folder in leftovers[1:]:
        folder.mkdir()
        (folder / "chunks.jsonl").write_bytes(b"x" * 1000)
    (corpus / "new.txt").write_text("A new file makes the next build.\n", encoding="utf-8")
    _build(corpus, tmp_path)
    assert not any(p.exists() for p in leftovers)


# --- the rest ---------------------------------------------------------------------------------------------------

def test_credentials_in_a_milvus_uri_are_never_printed(tmp_path, capsys):
    import socket

    pytest.importorskip("pymilvus")
    from qa.cli import main

    with socket.socket() as s:  # a free loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    corpus = write_corpus(tmp_path / "corpus", SMALL_CORPUS)
    code = main(["ask", "--backend", "milvus", "--milvus-uri", f"http://admin:hunter2@127.0.0.1:{port}?token=s3cr3t",
                 "--corpus", str(corpus), "--index-dir", str(tmp_path / "index"), "what deal was signed?"])
    out, err = capsys.readouterr()
    assert code == 2 and err.startswith("qa: error: cannot reach Milvus at http://***@127.0.0.1:")
    assert "hunter2" not in out + err and "s3cr3t" not in out + err and "token=***" in err


def test_a_failed_vectors_write_is_cannot_write_index(tmp_path, capsys, monkeypatch):
    import index.dense
    from qa.cli import main

    def full_disk(index, path):
        raise RuntimeError("Error in faiss::FileIOWriter::operator()(const void*, size_t, size_t) at "
                           "/project/faiss/faiss/impl/io.cpp:101: write failed: No space left on device")

    monkeypatch.setattr(index.dense, "save_faiss", full_disk)
    corpus = write_corpus(tmp_path / "corpus", SMALL_CORPUS)
    index_dir = tmp_path / "index"
    code = main(["index", str(corpus), "--index-dir", str(index_dir)])
    _, err = capsys.readouterr()
    assert code == 1
    assert err.splitlines()[-1] == (f"qa: error: cannot write index at {index_dir}: vectors.faiss: no space left on "
                                    "device")
    assert not [p for p in index_dir.iterdir() if p.name.startswith((".building-", "gen-"))]  # nothing half-written


def test_an_epub_chapter_that_is_not_well_formed_keeps_its_utf8(tmp_path):
    import zipfile

    from index import formats

    path = tmp_path / "book.epub"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(zipfile.ZipInfo("mimetype"), "application/epub+zip")
        z.writestr("META-INF/container.xml", '<?xml version="1.0"?><container version="1.0" xmlns="urn:oasis:names:'
                   'tc:opendocument:xmlns:container"><rootfiles><rootfile full-path="content.opf"/></rootfiles>'
                   '</container>')
        z.writestr("content.opf", '<?xml version="1.0" encoding="utf-8"?><package xmlns="http://www.idpf.org/2007/'
                   'opf" version="3.0"><manifest><item id="c" href="c.xhtml" media-type="application/xhtml+xml"/>'
                   '<item id="d" href="d.xhtml" media-type="application/xhtml+xml"/></manifest><spine>'
                   '<itemref idref="c"/><itemref idref="d"/></spine></package>')
        # <br> unclosed and a stray </div>: not XML, so the HTML parser reads it (no declaration: UTF-8 by default)
        z.writestr("c.xhtml", '<html><body><p>The café in Kyiv — naïve plans<br></p></div><p>Ωmega</p>'
                   '</body></html>'.encode("utf-8"))
        z.writestr("d.xhtml", '<?xml version="1.0" encoding="windows-1252"?><html><body><p>caf\xe9<br></p>'
                   '</body></html>'.encode("latin-1"))
    text = formats.extract(path).text
    assert "The café in Kyiv — naïve plans" in text and "Ωmega" in text  # before: "cafÃ©", "â€”"
    assert "café" in text.splitlines()[-1]  # the declared encoding of a chapter is kept


def _flowing_pages(pages: int, lines_per_page: int):
    """Synthetic PDF lines: one paragraph flowing across every page (full lines, no sentence ends)."""
    from index.formats.pdf import Line

    words = ("the negotiators met again in Istanbul on the third day and the delegation agreed to report every "
             "figure to the capital before the next round of talks began in earnest").split()

    def tag(n: int) -> str:  # a word of its own per line, so no line repeats (repeated edge lines are headers)
        return "".join(chr(97 + int(d)) for d in str(n))

    out, k = [], 0
    for _ in range(pages):
        page = []
        for i in range(lines_per_page):
            text = tag(k) + " " + " ".join(words[(k + j) % len(words)] for j in range(11))
            k += 12
            page.append(Line(top=720 - i * 12, bottom=710 - i * 12, left=72, right=540, text=text))
        out.append(page)
    return out


@pytest.mark.parametrize("pages, lines", [(400, 50), (1, 10_000)])
def test_pdf_layout_is_linear_in_pages_and_in_lines_per_page(pages, lines):
    from index.formats.pdf import layout

    doc = _flowing_pages(pages, lines)
    t0 = time.perf_counter()
    text, starts = layout(doc)
    seconds = time.perf_counter() - t0
    assert seconds < 8, seconds  # before: 45 s for 400 pages, 84 s for one page of 10,000 lines (0.3 / 0.2 s now)
    assert text.count("\n") == 1  # one paragraph, continued across every page
    for page, start in zip(doc, starts):  # each page starts where its first line does
        assert text[start:start + len(page[0].text)] == page[0].text


# --- the chat app in a real terminal ------------------------------------------------------------------------------

TMUX = shutil.which("tmux")


@pytest.mark.skipif(TMUX is None, reason="tmux is not installed")
def test_a_hostile_passage_in_a_real_terminal_changes_neither_clipboard_nor_title(tmp_path):
    """`qa chat` in tmux with set-clipboard on: a passage and a file name holding OSC 52 (clipboard), OSC 2 (title)
    and SGR colours are drawn, and tmux's clipboard buffer and pane title stay untouched."""
    import subprocess
    import sys

    from qa import open_index

    qa_bin = Path(sys.executable).with_name("qa")
    if not qa_bin.exists():
        pytest.skip("the qa script is not installed in this environment")
    corpus = write_corpus(tmp_path / "corpus", {
        f"grid{OSC_CLIPBOARD}.txt": (f"Grid report{OSC_TITLE}\n\nThe transformer station near Lviv was repaired "
                                     f"in {SGR_RED}nine days{OSC_CLIPBOARD} after the strike.\n"),
        **SMALL_CORPUS})
    index_dir = tmp_path / "index"
    open_index(Settings(corpus=[corpus], index_dir=index_dir, mode="bm25", rerank=False))
    socket_name = f"qa-hostile-{os.getpid()}"
    env = {**os.environ, "TERM": "xterm-256color", "XDG_STATE_HOME": str(tmp_path / "state"),
           "HOME": str(tmp_path / "home")}
    env.pop("TMUX", None)

    def tmux(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([TMUX, "-L", socket_name, "-f", "/dev/null", *args], capture_output=True, text=True,
                              env=env)

    cmd = (f"{qa_bin} chat --corpus '{corpus}' --index-dir '{index_dir}' --mode bm25 --no-rerank; sleep 30")
    try:
        assert tmux("new-session", "-d", "-s", "hostile", "-x", "120", "-y", "40", cmd).returncode == 0
        tmux("set-option", "-g", "set-clipboard", "on")
        tmux("set-option", "-g", "allow-passthrough", "on")

        def screen() -> str:
            return tmux("capture-pane", "-p", "-t", "hostile").stdout

        def wait_for(text: str) -> str:
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline:
                shown = screen()
                if text in " ".join(shown.split()):
                    return shown
                time.sleep(0.2)
            raise AssertionError(f"{text!r} not on screen:\n{shown}")

        wait_for("ready")
        tmux("send-keys", "-t", "hostile", "-l", "how long did the Lviv station repair take?")
        time.sleep(0.3)
        tmux("send-keys", "-t", "hostile", "Enter")
        shown = wait_for("after the strike")
        assert "␛]52;c;" in shown  # the sequence is drawn as text
        assert "PWNED" not in tmux("display-message", "-p", "-t", "hostile", "#{pane_title}").stdout
        buffers = tmux("list-buffers").stdout
        assert "PWNED" not in buffers and "UFdORUQ" not in buffers  # nothing reached the clipboard
        raw = tmux("capture-pane", "-p", "-e", "-t", "hostile").stdout
        assert "\x1b]" not in raw and "\x07" not in raw  # no OSC sequence is on the screen
    finally:
        tmux("kill-server")


def test_qa_eval_prints_hostile_questions_and_names_escaped(tmp_path, capsys):
    from qa.cli import main

    name = f"deal{OSC_TITLE}.txt"
    corpus = write_corpus(tmp_path / "corpus", {name: "The minerals deal 2.0 was signed in April in Kyiv.\n",
                                                **SMALL_CORPUS})
    gold = tmp_path / "gold.jsonl"
    gold.write_text(json.dumps({"id": "h1", "question": f"when was the{OSC_CLIPBOARD} deal signed?",
                                "answers": ["in March"], "doc": [name], "evidence": ["signed in April"]}) + "\n",
                    encoding="utf-8")
    code = main(["eval", str(gold), "--corpus", str(corpus), "--index-dir", str(tmp_path / "index"), "--mode",
                 "bm25", "--no-rerank", "--misses", "5"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert _raw_controls(out) == [] and _raw_controls(err) == []
    assert "\\x1b]52;c;" in out  # the missed question is listed, escaped
