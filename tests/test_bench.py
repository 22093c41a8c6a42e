"""The benchmark's corpus generator is deterministic (no timing here)."""
from __future__ import annotations

import random

import pytest

from bench import corpus


def test_perturb_is_deterministic_and_changes_text():
    text = sorted(corpus.SEEDS_DIR.glob("*.txt"))[0].read_text(encoding="utf-8")
    a = corpus.perturb(text, random.Random("1:x"))
    b = corpus.perturb(text, random.Random("1:x"))
    c = corpus.perturb(text, random.Random("2:x"))
    assert a == b
    assert a != text and a != c


@pytest.mark.skipif(not (corpus.SQUAD_DIR / "corpus").is_dir(), reason="SQuAD articles not available")
def test_generate_is_deterministic(tmp_path, monkeypatch):
    monkeypatch.setattr(corpus, "BYTES_PER_CHUNK", 3000)  # 600 chunks -> 1.8 MB: one replica and part of a second
    one = corpus.generate(600, tmp_path / "a")
    two = corpus.generate(600, tmp_path / "b")
    assert one == two and one["replicas"] == 2
    assert corpus.corpus_digest(tmp_path / "a") == corpus.corpus_digest(tmp_path / "b")
    assert corpus.parse_size("10k") == 10_000 and corpus.parse_size("seeds") is None
