"""Large corpora: the batched ONNX passage encoder, the approximate (HNSW) index above a size, and rebuilds when the
encoder or the index layout changes."""
from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import current_generation

from index import dense
from index.models import BM25Params, ChunkParams, DenseParams
from index.store import build_index, load_index, read_manifest, scan_corpus, stale_reason
from qa import Settings, open_index

PARAMS = (ChunkParams(), BM25Params())
SMALL_ANN = DenseParams(ann_above=1)  # two chunks already get the HNSW graph


def _passages(seed_chunks) -> list[str]:
    return [c.search_text for chunks in seed_chunks.values() for c in chunks]


# --- the passage encoder ------------------------------------------------------------------------

def test_batched_onnx_passages_agree_with_sentence_transformers(seed_chunks):
    """Every seed passage: the build encoder (ONNX, batched by length, on every core) against the reference model.
    Measured: mean cosine 0.99946, min 0.99918 (the packaged model stores int8 weights)."""
    texts = _passages(seed_chunks)
    reference = dense.load_encoder("sentence-transformers").encode(texts)
    batched = dense.load_encoder("onnx", threads=dense.build_threads()).encode(texts)
    cosines = (batched * reference).sum(axis=1)
    assert len(texts) > 100 and cosines.min() >= 0.999 and cosines.mean() >= 0.9994


def test_int8_passages_agree_with_sentence_transformers(seed_chunks):
    """The default build encoder (int8 products, one text at a time) against the reference model.
    Measured on the seeds: mean cosine 0.994, min 0.989 (0.982 on a CPU whose int8 kernels differ); gold and SQuAD
    answers match the float model's within two questions in a thousand (docs/performance.md)."""
    texts = _passages(seed_chunks)
    reference = dense.load_encoder("sentence-transformers").encode(texts)
    fast = dense.load_encoder("onnx-int8", threads=dense.build_threads()).encode(texts)
    cosines = (fast * reference).sum(axis=1)
    assert len(texts) > 100 and cosines.min() >= 0.978 and cosines.mean() >= 0.99
    assert np.array_equal(fast[:5], dense.load_encoder("onnx-int8").encode(texts[:5]))  # alone = in a build


def test_a_passage_embeds_the_same_alone_or_in_any_batch(seed_chunks):
    """Padding is masked out, so a re-embedded chunk (an edited file) gets the vector a full build gives it."""
    texts = _passages(seed_chunks)[:40]
    encoder = dense.load_encoder("onnx", threads=dense.build_threads())
    together = encoder.encode(texts)
    alone = np.concatenate([encoder.encode([t]) for t in texts])
    shuffled = encoder.encode(texts[::-1])[::-1]
    assert np.allclose(together, alone, atol=2e-5) and np.allclose(together, shuffled, atol=2e-5)


# --- the approximate index ----------------------------------------------------------------------

def _embeddings(n: int, seed: int) -> np.ndarray:
    """Normalised vectors of low intrinsic dimension, as sentence embeddings are (a 24-dimensional latent mapped into
    384 dimensions, plus a little noise); a uniform cloud has no neighbourhoods for any index to find."""
    rng = np.random.default_rng(seed)
    mapping = np.random.default_rng(0).normal(size=(24, dense.MODEL_DIM))
    x = rng.normal(size=(n, 24)) @ mapping + 0.5 * rng.normal(size=(n, dense.MODEL_DIM))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_above_the_threshold_the_index_is_hnsw_and_finds_what_exact_search_finds():
    vectors, queries = _embeddings(5000, 1), _embeddings(200, 2)
    params = DenseParams(ann_above=4000)
    assert dense.index_layout(4000, params) == "flat" and dense.index_layout(5000, params).startswith("hnsw")
    assert dense.index_layout(10**6, DenseParams(ann="off")) == "flat"
    exact = dense.build_faiss(vectors)
    approximate = dense.build_faiss(vectors, dense.index_layout(len(vectors), params))
    assert dense.is_approximate(approximate) and not dense.is_approximate(exact)
    found = []
    for q in queries:
        truth = set(dense.dense_search(exact, q, 10)[0].tolist())
        ids, scores = dense.dense_search(approximate, q, 10)
        found.append(len(truth & set(ids.tolist())) / 10)
        assert np.allclose(scores, vectors[ids] @ q, atol=1e-5)  # exact cosines of what it finds
    assert np.mean(found) >= 0.98
    assert np.array_equal(dense.stored_vectors(approximate), vectors)


def test_a_large_corpus_gets_an_hnsw_index_that_answers_like_the_exact_one(small_corpus, tmp_path):
    exact, _ = build_index([small_corpus], tmp_path / "exact", *PARAMS)
    approximate, _ = build_index([small_corpus], tmp_path / "hnsw", *PARAMS, dense_params=SMALL_ANN)
    assert exact.manifest.dense_index == "flat"
    assert approximate.manifest.dense_index == dense.index_layout(approximate.manifest.num_chunks, SMALL_ANN)
    assert approximate.manifest.dense_index.startswith("hnsw")
    reloaded = load_index(tmp_path / "hnsw")  # from its file, as a later run reads it
    assert dense.is_approximate(reloaded.faiss)
    query = exact.vector(1)
    assert reloaded.dense_search(query, 3)[0].tolist() == exact.dense_search(query, 3)[0].tolist()
    ids = np.arange(exact.manifest.num_chunks)
    assert np.allclose(reloaded.dense_scores(ids, query), exact.dense_scores(ids, query), atol=1e-6)


def test_changing_the_index_layout_makes_the_index_stale_and_the_rebuild_reuses_the_vectors(small_corpus, tmp_path):
    index_dir = tmp_path / "index"
    before, _ = build_index([small_corpus], index_dir, *PARAMS)
    root, files = scan_corpus([small_corpus])
    reason = stale_reason(read_manifest(index_dir), root, files, *PARAMS, dense_params=SMALL_ANN)
    assert reason and reason.startswith("dense index changed")
    after, _ = build_index([small_corpus], index_dir, *PARAMS, dense_params=SMALL_ANN)
    assert stale_reason(after.manifest, root, files, *PARAMS, dense_params=SMALL_ANN) is None
    assert np.array_equal(dense.faiss_vectors(after.faiss), dense.faiss_vectors(before.faiss))


# --- the encoder in the manifest ----------------------------------------------------------------

def test_an_index_built_with_another_encoder_is_rebuilt_with_the_configured_one(small_corpus, tmp_path):
    settings = Settings(corpus=[small_corpus], index_dir=tmp_path / "index")
    reference = open_index(settings.model_copy(update={"build_encoder": "sentence-transformers"}))
    assert reference.manifest.encoder == "sentence-transformers" and reference.manifest.onnx_vectors == 0
    warnings = []
    rebuilt = open_index(settings, warn=warnings.append)  # default settings: the int8 ONNX passage encoder
    assert any("passage encoder changed (sentence-transformers -> onnx-int8)" in w for w in warnings)
    assert rebuilt.manifest.encoder == "onnx-int8" and rebuilt.manifest.onnx_vectors == rebuilt.manifest.num_chunks
    old, new = dense.faiss_vectors(reference.faiss), dense.faiss_vectors(rebuilt.faiss)
    assert not np.array_equal(old, new)  # re-embedded, not reused
    assert (old * new).sum(axis=1).min() >= 0.98
    assert open_index(settings, warn=warnings.append).folder == rebuilt.folder  # and then left alone


def test_an_index_from_before_encoders_were_recorded_is_rebuilt(small_corpus, tmp_path):
    settings = Settings(corpus=[small_corpus], index_dir=tmp_path / "index")
    index = open_index(settings)
    manifest_path = current_generation(settings.index_dir) / "manifest.json"
    old = json.loads(manifest_path.read_text(encoding="utf-8"))
    del old["encoder"], old["dense_index"]  # as older versions wrote it: sentence-transformers vectors
    manifest_path.write_text(json.dumps(old), encoding="utf-8")
    warnings = []
    rebuilt = open_index(settings, warn=warnings.append)
    assert rebuilt.folder != index.folder and any("passage encoder changed" in w for w in warnings)


@pytest.mark.parametrize("name, value, field, expected", [
    ("QA_BUILD_ENCODER", "sentence-transformers", "encoder", "sentence-transformers"),
    ("QA_ANN_ABOVE", "5000", "ann_above", 5000),
    ("QA_ANN", "off", "ann", "off"),
    ("QA_HNSW_EF_SEARCH", "200", "hnsw_ef_search", 200),
])
def test_dense_settings_come_from_the_environment(monkeypatch, name, value, field, expected):
    monkeypatch.setenv(name, value)
    assert getattr(Settings().dense, field) == expected
