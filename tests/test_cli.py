"""`qa` as users run it: real models, real seeds, one shared prepared index, errors as one line."""
from __future__ import annotations

import io
import json
import os
import re
from pathlib import Path

import pytest
from conftest import SAMPLE_QUESTION, assert_citations_exact, copy_index, current_generation, run_qa, write_corpus

import qa
from qa.cli import main
from qa.models import Answer

SAMPLE_DOCS = ("000_a5367d4183c4154e.txt", "003_341094064a9670fe.txt")


@pytest.fixture(scope="module")
def prepared(seed_index, seed_corpus, seed_settings, tmp_path_factory):
    """The session's seed index (already built in-process) and corpus, for `--index-dir`/`--corpus`."""
    cache = tmp_path_factory.mktemp("cli-cache")
    return seed_corpus, seed_settings.index_dir, cache


def base_args(prepared) -> list[str]:
    corpus, index_dir, _ = prepared
    return ["--corpus", str(corpus), "--index-dir", str(index_dir)]


def assert_one_line_error(proc_or_err: str) -> str:
    err = proc_or_err.strip()
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("qa: ")
    return lines[0]


def normalise(s: str) -> str:
    return " ".join(s.replace("**", "").split())


# --- end to end on the seeds --------------------------------------------------------------------

def test_ask_prints_the_85000_passage_first_with_a_true_citation(prepared):
    corpus, _, cache = prepared
    proc = run_qa(["ask", SAMPLE_QUESTION, *base_args(prepared)], cache)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    out = proc.stdout
    assert out.splitlines()[0] == f"Q: {SAMPLE_QUESTION}"
    assert re.search(r"^A: .*85,000", out, re.M), out
    header = re.search(r"^\[1\] (\S+):(\d+)(?:-(\d+))?", out, re.M)
    assert header, out
    doc, first, last = header.group(1), int(header.group(2)), int(header.group(3) or header.group(2))
    assert doc in SAMPLE_DOCS
    body_lines = []
    for line in out[header.end():].split("\n")[1:]:
        if not line.startswith("    "):
            break
        body_lines.append(line)
    body = normalise(" ".join(body_lines))
    assert "85,000" in body
    file_lines = (corpus / doc).read_text(encoding="utf-8").split("\n")
    cited = normalise(" ".join(file_lines[first - 1:last]))
    assert body in cited, (body, cited)
    assert body[:40] in normalise(file_lines[first - 1]), "the passage does not start on the cited line"


def test_ask_json_validates_and_quotes_the_files_exactly(prepared):
    corpus, _, cache = prepared
    proc = run_qa(["ask", "--json", SAMPLE_QUESTION, *base_args(prepared)], cache)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1
    ans = Answer.model_validate_json(lines[0])
    assert ans.question == SAMPLE_QUESTION and ans.answered and "85,000" in ans.answer
    assert ans.passages[0].citation.doc in SAMPLE_DOCS and "85,000" in ans.passages[0].text
    assert_citations_exact(ans, corpus)


def test_batch_from_stdin_prints_one_json_line_per_question_in_order(prepared):
    _, _, cache = prepared
    questions = [SAMPLE_QUESTION, "who drafted the plan with Witkoff?"]
    proc = run_qa(["ask", "--json", *base_args(prepared)], cache, stdin=f"{questions[0]}\n\n{questions[1]}\n")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip("\n").split("\n")
    assert len(lines) == 2, proc.stdout
    answers = [Answer.model_validate_json(line) for line in lines]
    assert [a.question for a in answers] == questions
    assert "85,000" in answers[0].answer
    assert "Dmitriev" in answers[1].answer


def test_index_prints_a_summary(prepared, seed_index):
    corpus, index_dir, cache = prepared
    proc = run_qa(["index", str(corpus), "--index-dir", str(index_dir)], cache)
    assert proc.returncode == 0, proc.stderr
    m = re.search(r"(\d+) files, (\d+) chunks, (\d+) skipped, ([\d.]+) s", proc.stdout)
    assert m, proc.stdout
    assert int(m.group(1)) == 5
    assert int(m.group(2)) == seed_index.manifest.num_chunks
    assert int(m.group(3)) == 0
    assert "up to date" in proc.stdout


# --- bad input ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def fifo(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("fifo") / "corpus.fifo"
    os.mkfifo(path)
    return path


@pytest.mark.parametrize("args, mentions", [
    (["ask", ""], "empty question"),
    (["ask", "   "], "empty question"),
    (["ask", "--bogus", "what?"], "--bogus"),
    (["frobnicate"], "frobnicate"),
    (["ask", "--mode", "psychic", "what?"], "psychic"),
    (["ask", "-k", "0", "what?"], "top-k"),
    (["ask", "--corpus", "/nonexistent/corpus", "what?"], "/nonexistent/corpus"),
    (["index", "/nonexistent/corpus"], "/nonexistent/corpus"),
    (["ask", "--corpus", "FIFO", "what?"], "corpus.fifo"),
])
def test_bad_input_is_one_line_and_exit_2(args, mentions, fifo, tmp_path, isolated_environment):
    args = [str(fifo) if a == "FIFO" else a for a in args]
    proc = run_qa([*args, "--index-dir", str(tmp_path / "index")] if args[0] == "ask" else args,
                  isolated_environment, timeout=60)
    line = assert_one_line_error(proc.stderr)
    assert proc.returncode == 2, proc.stderr
    assert mentions in line
    assert proc.stdout == ""
    assert not (tmp_path / "index").exists() or not any((tmp_path / "index").glob("gen-*"))


def test_unreadable_corpus_file_is_reported(tmp_path, capsys, monkeypatch):
    corpus = write_corpus(tmp_path / "c", {"locked.txt": "Secret."})
    locked = corpus / "locked.txt"
    locked.chmod(0)
    if os.geteuid() == 0:  # root reads files whatever their permissions: refuse as the system would
        import index.ingest

        open_regular = index.ingest.open_regular

        def refuse(path):
            if path == locked:
                raise PermissionError(13, "Permission denied", str(path))
            return open_regular(path)

        monkeypatch.setattr(index.ingest, "open_regular", refuse)
    try:
        code = main(["ask", "--corpus", str(locked), "--index-dir", str(tmp_path / "i"), "what?"])
    finally:
        locked.chmod(0o644)
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    assert "skipped locked.txt: unreadable (Permission denied)" in err
    assert code == 1 and out == ""  # nothing else to search: said as such, not as "no answer found"
    assert err.strip().splitlines()[-1] == f"qa: error: no indexable files in {corpus}: 1 skipped (1 unreadable)"


def test_corrupt_index_is_rebuilt_by_ask(small_corpus, tmp_path, capsys, monkeypatch):
    index_dir = tmp_path / "index"
    assert main(["index", str(small_corpus), "--index-dir", str(index_dir)]) == 0
    (index_dir / "CURRENT").write_text("{garbage", encoding="utf-8")
    capsys.readouterr()
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    code = main(["ask", "--json", "--corpus", str(small_corpus), "--index-dir", str(index_dir),
                 "what happened to the nuclear power plants?"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "Traceback" not in err
    corrupt = [line for line in err.splitlines() if "corrupt" in line]
    assert len(corrupt) == 1 and "rebuild" in corrupt[0]
    ans = Answer.model_validate_json(out.strip())
    assert ans.passages[0].citation.doc == "energy.md"


def test_corrupt_vectors_rebuild_or_say_how(prepared, tmp_path):
    corpus, index_dir, cache = prepared
    broken = copy_index(index_dir, tmp_path / "index")
    vectors = current_generation(broken) / "vectors.faiss"
    vectors.write_bytes(vectors.read_bytes()[:1000])
    proc = run_qa(["ask", SAMPLE_QUESTION, "--corpus", str(corpus), "--index-dir", str(broken)], cache)
    assert "Traceback" not in proc.stderr
    if proc.returncode == 0:
        assert "85,000" in proc.stdout
    else:
        line = assert_one_line_error(proc.stderr)
        assert proc.returncode == 1
        assert "--force" in line or "qa index" in line


def test_corrupt_vectors_fail_with_one_line_not_a_traceback(prepared, tmp_path):
    corpus, index_dir, cache = prepared
    broken = copy_index(index_dir, tmp_path / "index")
    vectors = current_generation(broken) / "vectors.faiss"
    vectors.write_bytes(b"garbage")
    proc = run_qa(["ask", SAMPLE_QUESTION, "--corpus", str(corpus), "--index-dir", str(broken)], cache)
    assert "Traceback" not in proc.stderr
    if proc.returncode != 0:
        assert proc.returncode == 1
        assert_one_line_error(proc.stderr)


# --- batches ------------------------------------------------------------------------------------

def test_failing_batch_line_keeps_its_place(prepared, capsys, monkeypatch):
    real_answer = qa.answer

    def flaky(question, index, settings, *args, **kwargs):
        if "explode" in question:
            raise RuntimeError("simulated failure")
        return real_answer(question, index, settings, *args, **kwargs)

    monkeypatch.setattr(qa, "answer", flaky)
    monkeypatch.setattr("sys.stdin", io.StringIO(f"{SAMPLE_QUESTION}\nplease explode\n\nwho drafted the plan with Witkoff?\n"))
    code = main(["ask", "--json", *base_args(prepared)])
    out, err = capsys.readouterr()
    assert code == 1
    assert "Traceback" not in err
    lines = out.strip("\n").split("\n")
    assert len(lines) == 3
    first, second, third = (json.loads(line) for line in lines)
    assert first["question"] == SAMPLE_QUESTION and first["answered"] is True
    assert second == {"question": "please explode", "error": "RuntimeError: simulated failure"}
    assert third["question"] == "who drafted the plan with Witkoff?" and "answered" in third


def test_index_command_on_a_messy_folder(tmp_path, capsys):
    corpus = write_corpus(tmp_path / "messy", {
        "bad.txt": b"\xff\xfe\xfa not utf-8",
        "bin.md": b"\x00\x01\x02\x03" * 10,
        "empty.txt": b"",
        "sub/good.md": "Envoy Steve Witkoff drafted the plan with Kirill Dmitriev.\n",
    })
    code = main(["index", str(corpus), "--index-dir", str(tmp_path / "index")])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert re.search(r"built: 1 file, 1 chunk, 3 skipped, [\d.]+ s", out), out
    for name in ("bad.txt", "bin.md", "empty.txt"):
        assert len([line for line in err.splitlines() if name in line]) == 1, err
    assert "Traceback" not in err
    # asking again does not rebuild nor warn again
    code = main(["index", str(corpus), "--index-dir", str(tmp_path / "index")])
    out, err = capsys.readouterr()
    assert code == 0 and "up to date" in out and "bad.txt" not in err


def test_a_reader_that_stops_reading_ends_the_batch_quietly(prepared):
    """`qa ask - < questions | head -1`: the answers the reader took were given; no error line, exit 0."""
    import subprocess

    from conftest import QA_BIN, cli_env

    corpus, index_dir, cache = prepared
    questions = "\n".join([SAMPLE_QUESTION, "who drafted the plan with Witkoff?"] * 20) + "\n"
    proc = subprocess.Popen([str(QA_BIN), "ask", "--json", *base_args(prepared)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=cli_env(cache))
    proc.stdin.write(questions.encode())
    proc.stdin.close()
    first = json.loads(proc.stdout.readline())
    proc.stdout.close()  # the reader goes away after one answer
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=300) == 0, err
    assert first["question"] == SAMPLE_QUESTION and err == ""


def test_json_says_which_corpus_answered(prepared, tmp_path):
    corpus, index_dir, cache = prepared
    proc = run_qa(["ask", "--json", SAMPLE_QUESTION, *base_args(prepared)], cache, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    reply = json.loads(proc.stdout)
    assert Path(reply["corpus"]) == Path(corpus).resolve()
    for p in reply["passages"]:
        assert (Path(reply["corpus"]) / p["citation"]["doc"]).is_file()
