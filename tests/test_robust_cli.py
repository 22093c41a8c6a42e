"""What a user types or pipes never breaks `qa`: long questions, bad bytes, control characters, clear exit codes."""
from __future__ import annotations

import contextlib
import io
import json
import re
import subprocess
import sys

import pytest
from conftest import SAMPLE_QUESTION, run_qa, write_corpus
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qa.cli import StderrProgress, escape_controls, main, safe_for_terminal, stdin_questions
from qa.models import Answer, AnswerError, Citation, Passage
from qa.rerank import shorten_question

LONG_QUESTION = ("Kyiv and Moscow exchanged drafts in Istanbul in 2022 while the talks went on for weeks. " * 18
                 + SAMPLE_QUESTION)


@pytest.fixture(scope="module")
def prepared(seed_index, seed_corpus, seed_settings, tmp_path_factory):
    cache = tmp_path_factory.mktemp("robust-cli-cache")
    return seed_corpus, seed_settings.index_dir, cache


def base_args(prepared) -> list[str]:
    corpus, index_dir, _ = prepared
    return ["--corpus", str(corpus), "--index-dir", str(index_dir)]


def run_bytes(args: list[str], cache, stdin: bytes, timeout: float = 300) -> subprocess.CompletedProcess:
    """The installed `qa` fed raw bytes on stdin (run_qa sends text)."""
    from conftest import QA_BIN, REPO, cli_env

    return subprocess.run([str(QA_BIN), *args], input=stdin, capture_output=True, env=cli_env(cache),
                          timeout=timeout, cwd=REPO)


# --- long questions -------------------------------------------------------------------------------

def test_shortened_question_keeps_its_start_and_last_content_words_within_budget():
    words = ("the plan of the envoys was drafted in Miami by two envoys and the " * 30
             + "what army cap did Istanbul propose?").split()
    kept = shorten_question(words, lambda ws: [len(w) // 4 + 1 for w in ws], budget=60)
    assert kept[:12] == words[:12]
    assert kept[-4:] == ["army", "cap", "Istanbul", "propose?"]
    assert sum(len(w) // 4 + 1 for w in kept) <= 60
    assert not {"the", "of", "and", "by"} & set(kept[12:])
    rest = iter(words)
    assert all(any(w == v for v in rest) for w in kept)  # a subsequence: the order is kept


def test_a_long_question_is_answered_with_one_warning(prepared):
    _, _, cache = prepared
    proc = run_qa(["ask", LONG_QUESTION, *base_args(prepared)], cache)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr and "Truncation" not in proc.stderr
    assert proc.stdout.startswith("Q: Kyiv and Moscow")
    assert len(re.findall("shortened", proc.stderr)) == 1


def test_long_questions_in_a_json_batch_get_answers_not_errors(prepared):
    _, _, cache = prepared
    proc = run_qa(["ask", "--json", *base_args(prepared)], cache, stdin=f"{LONG_QUESTION}\n{LONG_QUESTION * 3}\n")
    assert proc.returncode == 0, proc.stderr
    answers = [Answer.model_validate_json(line) for line in proc.stdout.splitlines()]
    assert len(answers) == 2 and answers[1].question == (LONG_QUESTION * 3).strip()
    assert "shortened" not in proc.stderr  # JSON mode keeps stderr for errors


# --- stdin batches --------------------------------------------------------------------------------

def test_an_invalid_utf8_byte_neither_ends_the_batch_nor_loses_a_line(prepared):
    _, _, cache = prepared
    stdin = (b"who drafted the plan with Witkoff?\nwhat army cap did Istanbul \xff propose?\n"
             b"what army cap did Istanbul 2022 propose?\n")
    proc = run_bytes(["ask", "--json", *base_args(prepared)], cache, stdin)
    assert proc.returncode == 0, proc.stderr
    answers = [Answer.model_validate_json(line) for line in proc.stdout.decode().splitlines()]
    assert [a.question for a in answers] == ["who drafted the plan with Witkoff?",
                                             "what army cap did Istanbul \ufffd propose?",
                                             "what army cap did Istanbul 2022 propose?"]
    assert "85,000" in answers[2].answer
    assert b"stdin line 2 is not valid UTF-8" in proc.stderr and b"Traceback" not in proc.stderr


def test_invalid_utf8_in_text_mode_is_answered(prepared):
    _, _, cache = prepared
    proc = run_bytes(["ask", *base_args(prepared)], cache, b"what army cap did Istanbul 2022 \xfe\xff propose?\n")
    assert proc.returncode == 0, proc.stderr
    assert b"Traceback" not in proc.stderr and b"TypeError" not in proc.stderr
    assert "85,000" in proc.stdout.decode()


def _expected_questions(data: bytes) -> list[str]:
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    out = []
    for n, raw in enumerate(lines):
        text = raw.rstrip(b"\r").decode("utf-8", errors="replace")
        text = (text.lstrip("\ufeff") if n == 0 else text).strip()
        if text:
            out.append(text)
    return out


_LINE = st.one_of(
    st.binary(max_size=40),
    st.text(max_size=40).map(lambda s: s.encode("utf-8", "surrogatepass")),
    st.sampled_from([b"", b"   ", b"\x00", b"\xff\xfe", b"\xc3", b"\x1b[2J", "Istanbul 2022 army cap?".encode(),
                     b"word " * 3000, b"\x00" * 5000]),
).map(lambda b: b.replace(b"\n", b" "))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(lines=st.lists(_LINE, max_size=8))
def test_every_stdin_line_gets_one_json_object_in_order(prepared, lines):
    data = b"\n".join(lines) + (b"\n" if lines else b"")
    stdin = io.TextIOWrapper(io.BytesIO(data), encoding="utf-8", errors="strict")
    out, err = io.StringIO(), io.StringIO()
    old = sys.stdin
    sys.stdin = stdin
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(["ask", "--json", "--mode", "bm25", "--no-rerank", *base_args(prepared)])
    finally:
        sys.stdin = old
    assert "Traceback" not in err.getvalue()
    objects = [json.loads(line) for line in out.getvalue().split("\n") if line]
    assert [o["question"] for o in objects] == _expected_questions(data)
    for o in objects:
        (AnswerError if "error" in o else Answer).model_validate(o)
    assert code == (1 if any("error" in o for o in objects) else 0)


def test_stdin_lines_from_a_text_stream_with_surrogates_are_repaired():
    bad = []
    got = list(stdin_questions(io.StringIO("ok?\nbad \udcff byte\n\n"), bad.append))
    assert got == ["ok?", "bad \ufffd byte", ""] and bad == [2]


# --- what the terminal shows ----------------------------------------------------------------------

def test_control_characters_in_a_question_are_shown_escaped(prepared):
    _, _, cache = prepared
    proc = run_qa(["ask", "\x1b[2Jwhat army cap did \x07Istanbul 2022 propose?", *base_args(prepared)], cache)
    assert proc.returncode == 0, proc.stderr
    assert "\x1b" not in proc.stdout and "\x07" not in proc.stdout
    assert proc.stdout.startswith("Q: \\x1b[2Jwhat army cap did \\x07Istanbul")


def test_escaped_passages_keep_their_highlight_on_the_answer():
    text = "Line\x1b[31m one.\r\nThe cap was 85,000 troops."
    start = 1000
    a0 = text.index("85,000")
    p = Passage(rank=1, text=text, answer="85,000", answer_start=start + a0, answer_end=start + a0 + 6,
                sentence_start=start + text.index("The"), sentence_end=start + len(text), score=0.9,
                citation=Citation(doc="a\x1b.txt", start=start, end=start + len(text), line_start=1, line_end=1))
    ans = Answer(question="q\x1b?", answered=True, confidence=0.9, passages=[p], answer="85,000", mode="hybrid",
                 reranked=True, seconds=0.1)
    from qa.render import render_answer

    shown = render_answer(safe_for_terminal(ans), color=False)
    assert "\x1b" not in shown
    assert "**85,000**" in shown and "Line\\x1b[31m one. The cap" in shown and "a\\x1b.txt" in shown
    assert "\\x0d" not in shown  # CRLF line ends fold into spaces, they are not shown as escapes
    assert escape_controls("tab\tand\nnewline stay, \u202e bidi does not") == \
        "tab\tand\nnewline stay, \\u202e bidi does not"


def test_progress_is_plain_lines_when_stderr_is_not_a_terminal():
    stream = io.StringIO()
    progress = StderrProgress(stream)
    for done in range(0, 1025, 64):
        progress("embedding", done, 1024)
    progress("reading big.txt (51.2 MB)", 0, 3)
    progress.close()
    out = stream.getvalue()
    assert "\r" not in out
    assert out.splitlines()[0] == "qa: embedding chunks: 0/1024"
    assert "qa: embedding chunks: 1024/1024" in out and "qa: reading big.txt (51.2 MB)…" in out


# --- commands and exit codes -----------------------------------------------------------------------

def test_version():
    proc = subprocess.run([sys.executable, "-m", "qa.cli", "--version"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and re.fullmatch(r"qa \d+\.\d+\.\d+\S*\n", proc.stdout), proc


def test_a_corpus_with_nothing_indexable_says_so_and_exits_1(tmp_path):
    corpus = write_corpus(tmp_path / "c", {"a.txt": b"\x00\x01\x02binary", "b.md": b"", "c.pdf": b"%PDF",
                                           "d.png": b"\x89PNG"})
    for args in (["ask", "anything?", "--corpus", str(corpus)], ["index", str(corpus)]):
        proc = run_qa([*args, "--index-dir", str(tmp_path / "idx")], tmp_path / "cache")
        assert proc.returncode == 1, proc.stderr
        assert proc.stderr.strip().splitlines()[-1] == \
            f"qa: error: no indexable files in {corpus.resolve()}: 3 skipped (1 binary, 1 empty, 1 not a PDF)"


def test_an_index_that_cannot_be_written_fails_the_same_way_from_ask_and_index(small_corpus, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    codes, lines = set(), set()
    for args in (["ask", "who signed?", "--corpus", str(small_corpus)], ["index", str(small_corpus)],
                 ["index", str(small_corpus), "--force"]):
        proc = run_qa([*args, "--index-dir", str(blocker / "index")], tmp_path / "cache")
        codes.add(proc.returncode)
        last = proc.stderr.strip().splitlines()[-1]
        assert "Traceback" not in proc.stderr
        lines.add(re.sub(r":.*", "", last.replace("qa: error: ", "", 1)))
    assert codes == {1} and lines == {f"cannot write index at {blocker / 'index'}"}


def test_a_missing_corpus_path_is_a_usage_error_from_every_command(tmp_path):
    missing = tmp_path / "nope"
    for args in (["ask", "q?", "--corpus", str(missing)], ["index", str(missing)],
                 ["eval", "seeds/gold.jsonl", "--corpus", str(missing)]):
        proc = run_qa(args + ["--index-dir", str(tmp_path / "idx")], tmp_path / "cache")
        assert proc.returncode == 2, (args, proc.stderr)
        assert proc.stderr.strip() == f"qa: error: no such file or directory: {missing}"


def test_the_core_never_imports_the_command_line():
    import ast
    from pathlib import Path

    import qa

    offenders = []
    for path in sorted(Path(qa.__file__).parent.glob("*.py")):
        if path.name == "cli.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[-1] == "cli":
                offenders.append(path.name)
    assert offenders == []
