"""The query-time ONNX encoders are held to the sentence-transformers reference model."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest

from index import dense
from qa.evaluate import evaluate, load_gold

SENTENCES = [
    "what army cap did Istanbul 2022 propose?",
    "Who drafted the plan with Witkoff?",
    "The size of the Armed Forces of Ukraine will be limited to 600,000 personnel.",
    "Europeans will have to confront it head-on by assuming full responsibility for supporting Kyiv.",
    "ZNPP is a Russian nuclear power plant that must be managed by Rosatom.",
    "A completely unrelated sentence about baking sourdough bread at home.",
]


@pytest.mark.parametrize("kind", ["onnx", "onnx-int8"])
def test_fast_encoders_embed_like_sentence_transformers(kind):
    reference = dense.load_encoder("sentence-transformers").encode(SENTENCES)
    fast = dense.load_encoder(kind).encode(SENTENCES)
    assert fast.shape == reference.shape == (len(SENTENCES), dense.MODEL_DIM)
    assert np.allclose(np.linalg.norm(fast, axis=1), 1.0, atol=1e-4)
    assert (fast * reference).sum(axis=1).min() >= 0.99


def test_one_question_embeds_the_same_alone_or_in_a_batch():
    fast = dense.load_encoder("onnx")
    alone = fast.encode(SENTENCES[:1])[0]
    batched = fast.encode(SENTENCES)[0]
    assert float(alone @ batched) >= 0.99


def test_int8_question_vectors_do_not_depend_on_their_neighbours():
    """Dynamic quantisation scales activations over a whole run, so the int8 encoder runs one text at a time."""
    fast = dense.load_encoder("onnx-int8")
    assert np.array_equal(fast.encode(SENTENCES[:1])[0], fast.encode(SENTENCES)[0])
    assert np.array_equal(fast.encode(SENTENCES[-1:])[0], fast.encode(SENTENCES[::-1])[0])


def test_int8_copy_is_made_once_into_the_cache(isolated_environment):
    import onnxruntime as ort

    from index import onnx_sessions

    path = onnx_sessions.quantize_model(dense.onnx_model_path())
    assert path == onnx_sessions.quantized_path(dense.onnx_model_path(), ort.__version__)
    assert path.is_relative_to(isolated_environment) and path.stat().st_size > 1_000_000
    made = path.stat().st_mtime_ns
    assert onnx_sessions.quantize_model(dense.onnx_model_path()) == path and path.stat().st_mtime_ns == made
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")]  # no temporary file left behind


def test_int8_encoder_needs_no_usable_cache(tmp_path, monkeypatch):
    """The int8 encoder ships already optimised: it loads and embeds alike where no cache can be written."""
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))  # the cache folder cannot be created under a file
    vectors = dense.QuantizedOnnxEncoder().encode(SENTENCES[:2])
    assert np.array_equal(vectors, dense.load_encoder("onnx-int8").encode(SENTENCES[:2]))


_REPORTS: dict[str, object] = {}


def _gold_report(index, settings):
    """The gold evaluation under these settings, computed once per session (the reference serves both encoders)."""
    key = settings.model_dump_json()
    if key not in _REPORTS:
        _REPORTS[key] = evaluate(load_gold(Path(__file__).resolve().parent.parent / "seeds" / "gold.jsonl"), index,
                                 settings)
    return _REPORTS[key]


# Two questions of 73: int8 query vectors (cosine ~0.995) reorder a near-tie at rank 3 and tip one answer under the
# no-rerank abstention cut in dense-only mode. On SQuAD's 1k sample the same mode moves hit@1/3/5 by 0.004-0.006.
INT8_DENSE_ONLY_QUESTIONS = 2


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["onnx", "onnx-int8"])
@pytest.mark.parametrize("changes", [{"mode": "dense", "rerank": False}, {}], ids=["dense-only", "defaults"])
def test_gold_metrics_match_the_sentence_transformers_path(seed_index, seed_settings, changes, kind):
    """Dense-only is where the encoder matters most; the defaults are what users get."""
    fast = _gold_report(seed_index, seed_settings.model_copy(update={**changes, "query_encoder": kind}))
    reference = _gold_report(seed_index,
                             seed_settings.model_copy(update={**changes, "query_encoder": "sentence-transformers"}))
    tolerance = 0.01
    if kind == "onnx-int8" and changes:
        tolerance = INT8_DENSE_ONLY_QUESTIONS / fast.answerable + 1e-3  # reports round to 4 places
    else:
        # defaults: the reader re-orders the read passages by its own score, so a near-tie at rank 3 can move one
        # question (the float twin: gold hit@3 0.986 against 1.0); dense-only: the index's passages are embedded by
        # the float ONNX model, so the sentence-transformers query vectors tip one question over the abstention cut
        tolerance = 1 / fast.answerable + 1e-3
    for metric in ("hit_at_1", "hit_at_3", "hit_at_5", "mrr_at_5", "abstain_recall", "false_abstain_rate"):
        assert abs(getattr(fast, metric) - getattr(reference, metric)) <= tolerance, metric


def test_threads_loading_the_encoder_at_once_share_one_load(monkeypatch):
    """`qa ask` preloads the encoder on a second thread while answer() may ask for it: one load, one encoder."""
    monkeypatch.setattr(dense, "_load_encoder", lru_cache(maxsize=3)(dense._load_encoder.__wrapped__))
    with ThreadPoolExecutor(max_workers=4) as pool:
        encoders = list(pool.map(lambda _: dense.load_encoder("onnx"), range(4)))
    assert all(e is encoders[0] for e in encoders)
