"""The Milvus backend end to end: the real CLI on the real seeds and models, against a real milvus-lite server.

The server starts once per session on 127.0.0.1 with a free port (about 10 s) and is stopped afterwards. Without
the milvus extra (`pip install -e '.[milvus]'`) these tests skip.
"""
from __future__ import annotations

import importlib.util
import json
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import QA_BIN, REPO, SAMPLE_QUESTION, assert_citations_exact, cli_env
from qa.models import Answer

needs_milvus = pytest.mark.skipif(
    importlib.util.find_spec("milvus_lite") is None or importlib.util.find_spec("pymilvus") is None,
    reason="milvus-lite and pymilvus are not installed (pip install -e '.[milvus]')")
START_SECONDS = 90


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _accepts(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="session")
def milvus_uri(tmp_path_factory):
    """A milvus-lite server on a free loopback port, for the whole session; stopped (and its data removed) after."""
    if importlib.util.find_spec("milvus_lite") is None or importlib.util.find_spec("pymilvus") is None:
        pytest.skip("milvus-lite and pymilvus are not installed (pip install -e '.[milvus]')")
    data = tmp_path_factory.mktemp("milvus-data")
    port = free_port()
    log = open(data.parent / "milvus-server.log", "wb")  # noqa: SIM115 - closed after the server stops
    server = subprocess.Popen([sys.executable, "-m", "milvus_lite", "server", "--data-dir", str(data),
                               "--host", "127.0.0.1", "--port", str(port)], stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + START_SECONDS
        while not _accepts(port):
            if server.poll() is not None:
                pytest.fail(f"milvus-lite exited with {server.returncode}: see {log.name}")
            if time.monotonic() > deadline:
                pytest.fail(f"milvus-lite did not listen on port {port} within {START_SECONDS} s")
            time.sleep(0.25)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()


def run_milvus_qa(args: list[str], cache: Path, uri: str, timeout: float = 600,
                  stdin: str = "") -> subprocess.CompletedProcess:
    """The installed `qa`, run as a user would with QA_BACKEND=milvus and QA_MILVUS_URI set."""
    env = cli_env(cache) | {"QA_BACKEND": "milvus", "QA_MILVUS_URI": uri}
    return subprocess.run([str(QA_BIN), *args], input=stdin, capture_output=True, text=True, env=env,
                          timeout=timeout, cwd=REPO)


@pytest.fixture(scope="module")
def published(milvus_uri, seed_index, seed_corpus, seed_settings, tmp_path_factory):
    """The seeds' collection on the server, written once by `qa index` from the session's seed index."""
    cache = tmp_path_factory.mktemp("milvus-cli-cache")
    proc = run_milvus_qa(["index", str(seed_corpus), "--index-dir", str(seed_settings.index_dir)], cache, milvus_uri)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("built: 5 files") and milvus_uri in proc.stdout, proc.stdout
    return ["--corpus", str(seed_corpus), "--index-dir", str(seed_settings.index_dir)], cache


def on_server(uri: str, ask):
    """ask(client) with a fresh client, closed after (a client held across minutes of other work may be dropped)."""
    from pymilvus import MilvusClient

    from index.milvus import GRPC_OPTIONS

    milvus = MilvusClient(uri=uri, grpc_options=GRPC_OPTIONS)
    try:
        return ask(milvus)
    finally:
        milvus.close()


# --- answers ---------------------------------------------------------------------------------------

@needs_milvus
def test_ask_through_milvus_answers_85000_with_an_exact_citation(milvus_uri, published, seed_corpus):
    args, cache = published
    proc = run_milvus_qa(["ask", "--json", SAMPLE_QUESTION, *args], cache, milvus_uri)
    assert proc.returncode == 0, proc.stderr
    ans = Answer.model_validate_json(proc.stdout.strip())
    assert ans.answered and "85,000" in ans.answer
    assert_citations_exact(ans, seed_corpus)
    aliases = on_server(milvus_uri, lambda m: m.list_aliases()["aliases"])
    assert any(a.startswith("qa_") for a in aliases), aliases


@needs_milvus
def test_milvus_and_embedded_give_the_same_top_passage_for_a_batch(milvus_uri, published):
    args, cache = published
    questions = [SAMPLE_QUESTION, "who drafted the plan with Witkoff?", "what did the US plan propose about NATO?"]
    stdin = "\n".join(questions) + "\n"
    through_milvus = run_milvus_qa(["ask", "--json", *args], cache, milvus_uri, stdin=stdin)
    embedded = subprocess.run([str(QA_BIN), "ask", "--json", *args], input=stdin, capture_output=True, text=True,
                              env=cli_env(cache), timeout=600, cwd=REPO)
    assert through_milvus.returncode == 0 and embedded.returncode == 0, through_milvus.stderr + embedded.stderr
    a = [Answer.model_validate_json(line) for line in through_milvus.stdout.splitlines()]
    b = [Answer.model_validate_json(line) for line in embedded.stdout.splitlines()]
    assert [x.passages[0].citation for x in a] == [y.passages[0].citation for y in b]
    assert "Dmitriev" in a[1].answer


@needs_milvus
def test_eval_gold_through_milvus_is_within_003_hit1_of_embedded(milvus_uri, published):
    args, cache = published
    gold = str(REPO / "seeds" / "gold.jsonl")
    through_milvus = run_milvus_qa(["eval", gold, "--json", *args], cache, milvus_uri)
    embedded = subprocess.run([str(QA_BIN), "eval", gold, "--json", *args], capture_output=True, text=True,
                              env=cli_env(cache), timeout=600, cwd=REPO)
    assert through_milvus.returncode == 0 and embedded.returncode == 0, through_milvus.stderr + embedded.stderr
    m, e = json.loads(through_milvus.stdout), json.loads(embedded.stdout)
    assert m["questions"] == e["questions"] == 83
    assert abs(m["hit_at_1"] - e["hit_at_1"]) <= 0.03, (m["hit_at_1"], e["hit_at_1"])
    assert m["faithfulness"] == 1.0


# --- generations, deletes, failures ------------------------------------------------------------------

@needs_milvus
def test_an_edited_corpus_is_written_as_a_new_collection_and_the_alias_switched(milvus_uri, seed_corpus, seed_index,
                                                                                  seed_settings, tmp_path):
    corpus = tmp_path / "corpus"
    shutil.copytree(seed_corpus, corpus)
    index_dir = tmp_path / "edited"
    shutil.copytree(seed_settings.index_dir, index_dir)  # the build cache: nothing to embed but the new file
    args = ["--corpus", str(corpus), "--index-dir", str(index_dir)]
    cache = tmp_path / "cache"
    first = run_milvus_qa(["index", str(corpus), "--index-dir", str(index_dir)], cache, milvus_uri)
    assert first.returncode == 0, first.stderr
    alias = "qa_edited"  # named after the index folder

    def target(m):
        return m.describe_alias(alias)["collection_name"]

    before = on_server(milvus_uri, target)
    (corpus / "zz_glaciers.txt").write_text("The Perito Moreno glacier advanced 700 metres across Lake Argentino "
                                            "in the winter of 2024, closing the channel.\n", encoding="utf-8")
    proc = run_milvus_qa(["ask", "--json", "how far did the Perito Moreno glacier advance?", *args], cache,
                         milvus_uri)
    assert proc.returncode == 0, proc.stderr
    assert "writing a new generation" in proc.stderr
    ans = Answer.model_validate_json(proc.stdout.strip())
    assert ans.answered and ans.passages[0].citation.doc == "zz_glaciers.txt" and "700" in ans.answer
    after = on_server(milvus_uri, target)
    assert after != before
    assert on_server(milvus_uri, lambda m: m.has_collection(before)), "the previous generation is kept for readers"
    again = run_milvus_qa(["ask", "--json", "how far did the Perito Moreno glacier advance?", *args], cache,
                          milvus_uri)
    assert again.returncode == 0 and "writing" not in again.stderr
    assert on_server(milvus_uri, target) == after


@needs_milvus
def test_deleting_a_document_removes_its_passages_from_search(milvus_uri, small_corpus, tmp_path):
    from index.milvus import MilvusStore
    from qa import Settings, open_index

    settings = Settings(corpus=[small_corpus], index_dir=tmp_path / "small", backend="milvus", milvus_uri=milvus_uri)
    index = open_index(settings)
    assert {index.extent(int(i))[0] for i in index.bm25_rank(["miner", "deal"], 10).ids} >= {"notes/minerals.txt"}
    store = MilvusStore(milvus_uri, settings.resolved_milvus_collection())
    assert store.delete_document("notes/minerals.txt") >= 1
    found = index.bm25_rank(["miner", "deal"], 10).ids
    assert all(index.extent(int(i))[0] != "notes/minerals.txt" for i in found)


@needs_milvus
def test_milvus_collection_option_publishes_and_searches_that_alias(milvus_uri, small_corpus, tmp_path):
    index_dir = tmp_path / "named"
    built = run_milvus_qa(["index", str(small_corpus), "--index-dir", str(index_dir), "--milvus-collection",
                           "newsroom_archive"], tmp_path, milvus_uri)
    assert built.returncode == 0, built.stderr
    assert "newsroom_archive" in on_server(milvus_uri, lambda m: m.list_aliases()["aliases"])
    asked = run_milvus_qa(["ask", "--json", "--no-rerank", "what deal did the miners sign?", "--corpus",
                           str(small_corpus), "--index-dir", str(index_dir), "--milvus-collection", "newsroom_archive"],
                          tmp_path, milvus_uri)
    assert asked.returncode == 0, asked.stderr
    assert Answer.model_validate_json(asked.stdout.strip()).passages[0].citation.doc == "notes/minerals.txt"


def test_an_invalid_milvus_collection_name_is_one_line_and_exit_2(seed_corpus, tmp_path):
    proc = run_milvus_qa(["ask", SAMPLE_QUESTION, "--corpus", str(seed_corpus), "--milvus-collection", "my archive"],
                         tmp_path, f"http://127.0.0.1:{free_port()}", timeout=120)
    err = proc.stderr.strip()
    assert proc.returncode == 2 and len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert "milvus_collection" in err


def test_milvus_token_is_read_from_the_environment_and_never_printed(monkeypatch):
    from qa import Settings

    monkeypatch.setenv("QA_MILVUS_TOKEN", "analyst:s3cret")
    settings = Settings()
    assert settings.milvus_token.get_secret_value() == "analyst:s3cret"
    assert "s3cret" not in repr(settings) and "s3cret" not in settings.model_dump_json()


@needs_milvus
def test_non_ascii_and_quoted_terms_are_searched_not_rejected(milvus_uri, tmp_path):
    from index.bm25 import tokenize
    from qa import Settings, open_index

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "paris.txt").write_text("Talks at the Élysée Palace in Paris ended without a deal.\n", encoding="utf-8")
    (corpus / "kyiv.txt").write_text("Talks in Kyiv were postponed for a week.\n", encoding="utf-8")
    settings = Settings(corpus=[corpus], index_dir=tmp_path / "accents", backend="milvus", milvus_uri=milvus_uri)
    index = open_index(settings)
    terms = tokenize("Élysée talks")
    assert index.term_idf(terms[0]) is not None and index.term_idf('a"b\\c') is None
    assert index.extent(int(index.bm25_rank(terms, 2).ids[0]))[0] == "paris.txt"


def test_unreachable_milvus_is_one_line_and_exit_2(seed_corpus, tmp_path):
    uri = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    proc = run_milvus_qa(["ask", SAMPLE_QUESTION, "--corpus", str(seed_corpus), "--index-dir",
                          str(tmp_path / "index")], tmp_path, uri, timeout=120)
    assert proc.returncode == 2
    err = proc.stderr.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    assert err.startswith(f"qa: error: cannot reach Milvus at {uri}")


def test_the_embedded_path_never_imports_pymilvus(seed_settings, seed_index):
    code = ("import sys; from qa import answer, open_index, Settings; from pathlib import Path; "
            f"s = Settings(corpus=[Path({str(seed_settings.corpus[0])!r})], index_dir=Path({str(seed_settings.index_dir)!r})); "
            f"a = answer({SAMPLE_QUESTION!r}, open_index(s), s); "
            "print(a.answered, 'pymilvus' in sys.modules, 'milvus_lite' in sys.modules)")
    env = cli_env(seed_settings.index_dir.parent)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300,
                          cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["True", "False", "False"]


@needs_milvus
def test_a_killed_publish_never_costs_readers_the_live_generation(milvus_uri, small_corpus, tmp_path):
    """A publish killed after writing its collections (the alias never switched) leaves a generation newer than the
    live one; the next publish drops it, and keeps the generation readers are on (before: "the last two by time"
    kept the half-written one and dropped the live one: `collection 'qa_…_g…' does not exist`)."""
    from index.milvus import MilvusStore
    from index.store import load_index
    from qa import Settings, open_index

    settings = Settings(corpus=[small_corpus], index_dir=tmp_path / "killed", backend="milvus", milvus_uri=milvus_uri,
                        mode="bm25", rerank=False)
    reader = open_index(settings)  # publishes the first generation; this reader stays on it
    store = MilvusStore(milvus_uri, settings.resolved_milvus_collection())
    live = store.current()
    half = store.write_generation(load_index(settings.resolved_index_dir()))  # then the publish is killed
    (small_corpus / "zz_new.txt").write_text("The new bridge over the Dnipro opened in May.\n", encoding="utf-8")
    newer = open_index(settings)  # the next publish
    names = store.generations()
    assert live in names and half not in names and store.current() in names and store.current() != live
    found = reader.bm25_rank(["miner", "deal"], 5).ids  # the old reader keeps answering through the publish
    assert {reader.extent(int(i))[0] for i in found} >= {"notes/minerals.txt"}
    assert newer.bm25_rank(["bridg", "dnipro"], 3).ids.size
