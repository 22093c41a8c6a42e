"""BM25+ over chunks: tokenisation, postings stored as .npy, and scoring identical to rank_bm25.BM25Plus."""
from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from .models import BM25Params

# A small English stopword list: function words only, so "who", "when", "not" and numbers stay searchable
# where they matter less than content words but do not dilute scores.
STOPWORDS = frozenset(
    """a an and are as at be been being but by can could did do does doing for from had has have having he her
    hers him his how i if in into is it its itself me my of on or our ours she should so than that the their
    theirs them then there these they this those to too us was we were what which while who whom why will with
    would you your yours about above after again against all am any because before below between both during
    each few further here just more most other over own same some such through under until up very s t don
    also may might must shall whether""".split()
)
_TOKEN = re.compile(r"\d+(?:[.,]\d+)*|[^\W\d_]+(?:['’][^\W\d_]+)*")


@lru_cache(maxsize=1)
def _stemmer():
    import snowballstemmer

    return snowballstemmer.stemmer("english")


@lru_cache(maxsize=200_000)
def _stem(word: str) -> str:
    return _stemmer().stemWord(word)


_THOUSANDS = re.compile(r"\d{1,3}(?:,\d{3})+(?:\.\d+)?")
_POSSESSIVE = re.compile(r"['’]s$")


@lru_cache(maxsize=200_000)
def _term(tok: str) -> str | None:
    """The index term of one lowercased word or number, or None for a stopword."""
    if tok[0].isdigit():
        if _THOUSANDS.fullmatch(tok):
            tok = tok.replace(",", "")
        return tok.rstrip(".,")
    tok = _POSSESSIVE.sub("", tok).replace("’", "'")
    if tok in STOPWORDS or len(tok) < 2 and tok != "x":
        return None
    return _stem(tok)


def tokenize(text: str) -> list[str]:
    """Lowercased, stemmed content words; numbers lose thousands separators ("85,000" -> "85000")."""
    terms = map(_term, _TOKEN.findall(unicodedata.normalize("NFKC", text).lower()))
    return [t for t in terms if t is not None]


@lru_cache(maxsize=50_000)
def term_set(text: str) -> frozenset[str]:
    """The distinct terms of a short text (a sentence, a question), cached: answers re-read the same sentences."""
    return frozenset(tokenize(text))


@dataclass
class BM25Index:
    """Term postings in CSR form: documents containing term t are doc_ids[indptr[t]:indptr[t+1]]."""

    vocab: dict[str, int]
    indptr: np.ndarray
    doc_ids: np.ndarray
    tfs: np.ndarray
    doc_len: np.ndarray
    params: BM25Params

    @property
    def num_docs(self) -> int:
        return int(self.doc_len.shape[0])

    def idf(self, term_id: int) -> float:
        """BM25+ idf, log((N + 1) / df): positive however common the term, unlike Okapi's on small corpora."""
        df = self.indptr[term_id + 1] - self.indptr[term_id]
        return float(np.log((self.num_docs + 1) / df))

    def scores(self, query_tokens: list[str]) -> np.ndarray:
        """BM25+ score of every chunk for the query, as rank_bm25.BM25Plus.get_scores computes it."""
        k1, b, delta = self.params.k1, self.params.b, self.params.delta
        out = np.zeros(self.num_docs, dtype=np.float64)
        if self.num_docs == 0:
            return out
        norm = k1 * (1 - b + b * self.doc_len / self.doc_len.mean())
        constant = 0.0
        for tok in query_tokens:
            t = self.vocab.get(tok)
            if t is None:
                continue
            idf = self.idf(t)
            lo, hi = self.indptr[t], self.indptr[t + 1]
            ids = self.doc_ids[lo:hi]
            tf = self.tfs[lo:hi]
            # delta is added for every document, matching or not; it shifts all scores equally
            constant += idf * delta
            np.add.at(out, ids, idf * (tf * (k1 + 1)) / (norm[ids] + tf))
        return out + constant

    def save(self, folder: Path) -> None:
        (folder / "bm25_vocab.json").write_text(json.dumps(self.vocab, ensure_ascii=False), encoding="utf-8")
        np.save(folder / "bm25_indptr.npy", self.indptr)
        np.save(folder / "bm25_doc_ids.npy", self.doc_ids)
        np.save(folder / "bm25_tfs.npy", self.tfs)
        np.save(folder / "bm25_doc_len.npy", self.doc_len)

    @classmethod
    def load(cls, folder: Path, params: BM25Params) -> "BM25Index":
        vocab = json.loads((folder / "bm25_vocab.json").read_text(encoding="utf-8"))
        arrays = {
            name: np.load(folder / f"bm25_{name}.npy", allow_pickle=False)
            for name in ("indptr", "doc_ids", "tfs", "doc_len")
        }
        return cls(vocab=vocab, params=params, **arrays)


def build_bm25(tokenized: list[list[str]], params: BM25Params) -> BM25Index:
    """Postings for a tokenised corpus (one token list per chunk)."""
    vocab: dict[str, int] = {}
    rows: list[tuple[int, int, int]] = []
    for doc_id, tokens in enumerate(tokenized):
        counts: dict[str, int] = {}
        for tok in tokens:
            counts[tok] = counts.get(tok, 0) + 1
        for tok, c in counts.items():
            rows.append((vocab.setdefault(tok, len(vocab)), doc_id, c))
    rows.sort()
    term_ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
    indptr = np.zeros(len(vocab) + 1, dtype=np.int64)
    np.add.at(indptr, term_ids + 1, 1)
    return BM25Index(
        vocab=vocab,
        indptr=np.cumsum(indptr),
        doc_ids=np.fromiter((r[1] for r in rows), dtype=np.int32, count=len(rows)),
        tfs=np.fromiter((r[2] for r in rows), dtype=np.float32, count=len(rows)),
        doc_len=np.array([len(t) for t in tokenized], dtype=np.float64),
        params=params,
    )
