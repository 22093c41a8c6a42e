"""Settings: defaults, QA_* environment overrides (explicit values win), and the values derived from them."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from qa.settings import RetrievalParams, Settings


def test_environment_overrides_defaults(monkeypatch):
    monkeypatch.setenv("QA_TOP_K", "3")
    monkeypatch.setenv("QA_MODE", "bm25")
    monkeypatch.setenv("QA_RERANK", "false")
    monkeypatch.setenv("QA_DENSE_WEIGHT", "0.55")
    s = Settings()
    assert (s.top_k, s.mode, s.rerank, s.dense_weight) == (3, "bm25", False, 0.55)
    assert Settings(top_k=7, rerank=True).top_k == 7 and Settings(rerank=True).rerank  # explicit values win


def test_corpus_and_index_dir_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("QA_CORPUS", os.pathsep.join([str(tmp_path / "a"), str(tmp_path / "b"), ""]))
    monkeypatch.setenv("QA_INDEX_DIR", str(tmp_path / "idx"))
    s = Settings()
    assert s.corpus == [tmp_path / "a", tmp_path / "b"]
    assert s.resolved_index_dir() == tmp_path / "idx"


def test_a_bad_environment_value_is_a_validation_error(monkeypatch):
    monkeypatch.setenv("QA_TOP_K", "0")
    with pytest.raises(ValidationError, match="top_k"):
        Settings()
    monkeypatch.setenv("QA_TOP_K", "5")
    monkeypatch.setenv("QA_MODE", "sparse")
    with pytest.raises(ValidationError, match="mode"):
        Settings()


def test_unknown_qa_variables_are_ignored(monkeypatch):
    monkeypatch.setenv("QA_NO_SUCH_SETTING", "1")
    assert Settings().top_k == Settings.model_fields["top_k"].default


def test_each_corpus_gets_its_own_index_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    a = Settings(corpus=[tmp_path / "notes"]).resolved_index_dir()
    b = Settings(corpus=[tmp_path / "other" / "notes"]).resolved_index_dir()
    assert a.name.startswith("notes-") and b.name.startswith("notes-") and a != b
    assert a == Settings(corpus=[tmp_path / "notes"]).resolved_index_dir()  # stable for the same corpus
    assert Settings(corpus=[tmp_path / "notes"], index_dir=Path("~/idx")).resolved_index_dir() == Path.home() / "idx"


def test_retrieval_params_carry_the_retrieval_settings():
    s = Settings(mode="dense", candidates=20, fusion="rrf", dense_weight=0.4, rrf_k=30, query_encoder="onnx")
    assert s.retrieval == RetrievalParams(mode="dense", candidates=20, fusion="rrf", dense_weight=0.4, rrf_k=30,
                                          query_encoder="onnx")
    assert set(RetrievalParams.model_fields) <= set(Settings.model_fields)  # one home for their defaults


def test_index_parameters_follow_the_settings():
    s = Settings(chunk_max_chars=300, chunk_overlap_sentences=0, bm25_k1=1.2, bm25_b=0.5, bm25_delta=0.5)
    assert (s.chunking.max_chars, s.chunking.overlap_sentences) == (300, 0)
    assert (s.bm25.k1, s.bm25.b, s.bm25.delta) == (1.2, 0.5, 0.5)
