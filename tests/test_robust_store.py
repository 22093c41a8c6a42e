"""Builds survive files that change under them, change detection is not fooled by kept mtimes, and odd encodings
are read."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import SMALL_CORPUS, write_corpus

from index.ingest import SkippedFile, read_text
from index.models import SourceFile
from index.store import RACY_NS, CorpusFile, build_index, content_may_differ, load_index, scan_corpus, stale_reason
from qa import Settings, answer, open_index


def _settings(corpus: Path, tmp_path: Path, **kw) -> Settings:
    return Settings(corpus=[corpus], index_dir=tmp_path / "index", **kw)


# --- files that change during a build ------------------------------------------------------------

def test_a_file_deleted_during_the_build_is_skipped_with_a_warning(small_corpus, tmp_path):
    s = _settings(small_corpus, tmp_path)
    warnings = []

    def delete_the_next_file(stage, done, total):
        if stage == "reading" and done == 1:
            (small_corpus / "notes/minerals.txt").unlink()

    index, _ = build_index(s.corpus, s.resolved_index_dir(), s.chunking, s.bm25, delete_the_next_file,
                           warnings.append)
    assert [f.doc for f in index.manifest.files] == ["energy.md"]
    assert any(w.startswith("skipped notes/minerals.txt: it could not be read during the build") for w in warnings)
    again = load_index(s.resolved_index_dir())  # the switched generation is whole and matches the corpus
    root, files = scan_corpus(s.corpus)
    assert again.manifest.num_chunks == index.manifest.num_chunks > 0
    assert stale_reason(again.manifest, root, files, s.chunking, s.bm25) is None


def test_a_file_that_keeps_changing_while_read_is_skipped_and_read_next_time(small_corpus, tmp_path, monkeypatch):
    import index.ingest
    import index.store as store

    real_read = index.ingest.read_bounded

    def appended_while_read(path, *args, **kwargs):
        read = real_read(path, *args, **kwargs)
        if path.name == "energy.md":  # a writer appends to it during every read
            with open(path, "a", encoding="utf-8") as fh:
                fh.write("More news.\n")
        return read

    monkeypatch.setattr(index.ingest, "read_bounded", appended_while_read)
    warnings = []
    s = _settings(small_corpus, tmp_path)
    index, _ = store.build_index(s.corpus, s.resolved_index_dir(), s.chunking, s.bm25, None, warnings.append)
    monkeypatch.undo()
    assert index.source("energy.md").skipped == "it changed while being read"
    assert any("energy.md" in w and "read again next time" in w for w in warnings)
    root, files = scan_corpus(s.corpus)
    assert stale_reason(index.manifest, root, files, s.chunking, s.bm25) == "energy.md changed"


# --- change detection ----------------------------------------------------------------------------

def test_an_edit_that_keeps_size_and_mtime_is_noticed(small_corpus, tmp_path):
    s = _settings(small_corpus, tmp_path)
    open_index(s)
    path = small_corpus / "notes/minerals.txt"
    st = path.stat()
    old = path.read_text(encoding="utf-8")
    new = old.replace("April", "March")  # same length
    assert len(new.encode()) == len(old.encode()) and new != old
    path.write_text(new, encoding="utf-8")
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))  # as `cp -p`, `rsync -t` or a restored backup leave it
    assert path.stat().st_mtime_ns == st.st_mtime_ns and path.stat().st_size == st.st_size
    reply = answer("when was the minerals deal 2.0 signed?", open_index(s), s)
    assert "March" in reply.passages[0].text and "April" not in reply.passages[0].text


def _source(**kw) -> SourceFile:
    base = dict(doc="a.txt", size=10, mtime_ns=5 * 10**18, sha256="x", ctime_ns=5 * 10**18, inode=7)
    return SourceFile(**{**base, **kw})


def _file(**kw) -> CorpusFile:
    base = dict(path=Path("a.txt"), doc="a.txt", size=10, mtime_ns=5 * 10**18, ctime_ns=5 * 10**18, inode=7)
    return CorpusFile(**{**base, **kw})


def test_the_change_rule_hashes_only_when_a_stamp_moved_or_the_file_is_racy():
    built = 6 * 10**18  # long after the file's stamps
    assert not content_may_differ(_source(), _file(), built)
    assert content_may_differ(_source(), _file(ctime_ns=5 * 10**18 + 1), built)  # cp -p: ctime moved
    assert content_may_differ(_source(), _file(inode=8), built)  # rsync -t: a new file renamed in place
    assert content_may_differ(_source(), _file(mtime_ns=1), built)
    assert content_may_differ(_source(ctime_ns=None), _file(), built)  # stamps of an older index
    racy = 5 * 10**18 + RACY_NS // 2  # the build began within the timestamp granularity of the file's last change
    assert content_may_differ(_source(), _file(), racy)


def test_verify_compares_every_file(small_corpus, tmp_path):
    s = _settings(small_corpus, tmp_path)
    index = open_index(s)
    root, files = scan_corpus(s.corpus)
    f = next(f for f in files if f.doc == "energy.md")
    # a manifest whose stamps all match but whose recorded hash differs: only --verify looks
    manifest = index.manifest.model_copy(update={"started_ns": 0, "files": [
        m.model_copy(update={"sha256": "0" * 64}) if m.doc == f.doc else m for m in index.manifest.files]})
    manifest.files[[m.doc for m in manifest.files].index(f.doc)].mtime_ns = f.mtime_ns
    assert stale_reason(manifest, root, files, s.chunking, s.bm25) is None
    assert stale_reason(manifest, root, files, s.chunking, s.bm25, verify=True) == "energy.md changed"


# --- encodings -----------------------------------------------------------------------------------

@pytest.mark.parametrize("encoding,bom", [("utf-16-le", b"\xff\xfe"), ("utf-16-be", b"\xfe\xff")])
def test_utf16_files_with_a_bom_are_read(tmp_path, encoding, bom):
    p = tmp_path / "w.txt"
    text = "Minerals deal 2.0 was signed in April.\r\nIt names Kyiv.\n"
    p.write_bytes(bom + text.encode(encoding))
    assert read_text(p) == text


def test_a_utf16_file_is_indexed_and_cited(tmp_path):
    corpus = write_corpus(tmp_path / "c", {"energy.md": SMALL_CORPUS["energy.md"]})
    (corpus / "deal.txt").write_bytes(b"\xff\xfe" + SMALL_CORPUS["notes/minerals.txt"].encode("utf-16-le"))
    s = _settings(corpus, tmp_path)
    reply = answer("when was the minerals deal 2.0 signed?", open_index(s), s)
    top = reply.passages[0]
    assert top.citation.doc == "deal.txt"
    assert read_text(corpus / "deal.txt")[top.citation.start:top.citation.end] == top.text


def test_odd_files_are_skipped_with_their_reason(tmp_path):
    for data, reason in [(b"\xff\xfe\x00\xd8", "UTF-16"), (b"\xff\xfe" + "\x00x".encode("utf-16-le"), "binary"),
                         (b"\xfe\xff", "empty")]:
        p = tmp_path / "x.txt"
        p.write_bytes(data)
        with pytest.raises(SkippedFile, match=reason):
            read_text(p)


# --- qa eval names the gold line -----------------------------------------------------------------

def _eval(gold: Path, s: Settings) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "qa.cli", "eval", str(gold), "--corpus", str(s.corpus[0]),
                           "--index-dir", str(s.index_dir), "--mode", "bm25", "--no-rerank"],
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def eval_setup(tmp_path_factory):
    """The small corpus, indexed once in this process, for the `qa eval` runs."""
    folder = tmp_path_factory.mktemp("eval")
    corpus = write_corpus(folder / "corpus", SMALL_CORPUS)
    s = _settings(corpus, folder)
    open_index(s)
    return corpus, s


def test_eval_names_the_gold_line_of_an_unknown_document(eval_setup, tmp_path):
    small_corpus, s = eval_setup
    gold = tmp_path / "gold.jsonl"
    gold.write_text("\n".join(json.dumps(x) for x in [
        {"id": "a", "question": "what was signed?", "answers": ["minerals deal"], "doc": ["notes/minerals.txt"]},
        {},
    ][:1]) + "\n\n" + json.dumps({"id": "b", "question": "q?", "answers": ["x"], "doc": ["gone.txt"]}) + "\n",
        encoding="utf-8")
    proc = _eval(gold, s)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == \
        f"qa: error: {gold}:3: document 'gone.txt' is not in the corpus {small_corpus.resolve()} (id b)"


def test_eval_warns_on_evidence_missing_from_its_document(eval_setup, tmp_path):
    small_corpus, s = eval_setup
    gold = tmp_path / "gold.jsonl"
    gold.write_text("\n".join(json.dumps(x) for x in [
        {"id": "a", "question": "when was the deal signed?", "answers": ["April"], "doc": ["notes/minerals.txt"],
         "evidence": ["The minerals deal 2.0 was signed in April."]},
        {"id": "b", "question": "what did critics say?", "answers": ["no security guarantees"],
         "doc": ["notes/minerals.txt"], "evidence": ["Critics praised the security guarantees."]},
    ]) + "\n", encoding="utf-8")
    proc = _eval(gold, s)
    assert proc.returncode == 0, proc.stderr
    warnings = [line for line in proc.stderr.splitlines() if "evidence not found" in line]
    assert warnings == [f"qa: {gold}:2: evidence not found in notes/minerals.txt: "
                        "'Critics praised the security guarantees.'"]


def test_big_files_get_a_progress_line_before_they_are_read(small_corpus, tmp_path, monkeypatch):
    import index.store as store

    monkeypatch.setattr(store, "BIG_FILE", 200)  # energy.md (~300 bytes) counts as big, minerals.txt does not
    stages = []
    s = _settings(small_corpus, tmp_path)
    store.build_index(s.corpus, s.resolved_index_dir(), s.chunking, s.bm25,
                      lambda stage, done, total: stages.append((stage, done, total)), None)
    reading = [st for st in stages if st[0].startswith("reading")]
    assert reading == [("reading energy.md (0.0 MB)", 0, 2), ("reading", 1, 2), ("reading", 2, 2)]


def test_a_page_edited_while_the_extractor_reads_it_gets_no_layer_and_is_read_next_time(small_corpus, tmp_path,
                                                                                     monkeypatch):
    from bench.make_formats import make_html
    from index.formats import Extractor

    page = make_html("Copper prices\n\nCopper rose to a record as smelters in Chile cut output after a strike.",
                     small_corpus / "copper.html")
    real_read = Extractor.read

    def edited_during_extraction(self, path):
        out = real_read(self, path)
        if path.name == "copper.html":  # saved again while the worker read it
            with open(path, "a", encoding="utf-8") as fh:
                fh.write("<!-- saved again -->\n")
        return out

    monkeypatch.setattr(Extractor, "read", edited_during_extraction)
    warnings = []
    s = _settings(small_corpus, tmp_path)
    index, _ = build_index(s.corpus, s.resolved_index_dir(), s.chunking, s.bm25, None, warnings.append)
    monkeypatch.undo()
    source = index.source("copper.html")
    assert source.skipped == "it changed while being read" and source.layer is None
    assert not list(index.folder.glob("layer-*.txt"))
    assert any("copper.html" in w and "read again next time" in w for w in warnings)
    root, files = scan_corpus(s.corpus)
    assert stale_reason(index.manifest, root, files, s.chunking, s.bm25) == "copper.html changed"
    again, _ = build_index(s.corpus, s.resolved_index_dir(), s.chunking, s.bm25, None, None)
    assert again.source("copper.html").layer and "smelters in Chile" in again.text("copper.html")
    assert page.exists()
