"""The query-time ONNX encoder is held to the sentence-transformers model the index is built with."""
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


def test_onnx_twin_embeds_like_sentence_transformers():
    reference = dense.load_encoder("sentence-transformers").encode(SENTENCES)
    fast = dense.load_encoder("onnx").encode(SENTENCES)
    assert fast.shape == reference.shape == (len(SENTENCES), dense.MODEL_DIM)
    assert np.allclose(np.linalg.norm(fast, axis=1), 1.0, atol=1e-4)
    assert (fast * reference).sum(axis=1).min() >= 0.99


def test_one_question_embeds_the_same_alone_or_in_a_batch():
    fast = dense.load_encoder("onnx")
    alone = fast.encode(SENTENCES[:1])[0]
    batched = fast.encode(SENTENCES)[0]
    assert float(alone @ batched) >= 0.99


@pytest.mark.parametrize("changes", [{"mode": "dense", "rerank": False}, {}], ids=["dense-only", "defaults"])
def test_gold_metrics_match_the_sentence_transformers_path(seed_index, seed_settings, changes):
    """Dense-only is where the encoder matters most; the defaults are what users get."""
    items = load_gold(Path(__file__).resolve().parent.parent / "seeds" / "gold.jsonl")
    base = seed_settings.model_copy(update=changes)
    fast = evaluate(items, seed_index, base.model_copy(update={"query_encoder": "onnx"}))
    reference = evaluate(items, seed_index, base.model_copy(update={"query_encoder": "sentence-transformers"}))
    for metric in ("hit_at_1", "hit_at_3", "hit_at_5", "mrr_at_5", "abstain_recall", "false_abstain_rate"):
        assert abs(getattr(fast, metric) - getattr(reference, metric)) <= 0.01, metric


def test_threads_loading_the_encoder_at_once_share_one_load(monkeypatch):
    """`qa ask` preloads the encoder on a second thread while answer() may ask for it: one load, one encoder."""
    monkeypatch.setattr(dense, "_load_encoder", lru_cache(maxsize=2)(dense._load_encoder.__wrapped__))
    with ThreadPoolExecutor(max_workers=4) as pool:
        encoders = list(pool.map(lambda _: dense.load_encoder("onnx"), range(4)))
    assert all(e is encoders[0] for e in encoders)
