"""BM25+ over chunks: tokenisation, postings stored as .npy, and scoring identical to rank_bm25.BM25Plus."""
from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass, field
from functools import lru_cache
from itertools import chain
from pathlib import Path

import numpy as np

from .models import BM25Params
from .words import STOPWORDS

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
    """Term postings in CSR form: documents containing term t are doc_ids[indptr[t]:indptr[t+1]].

    Terms are numbered in sorted order, so a rebuild that reuses postings gives the same arrays as a fresh build.
    """

    vocab: dict[str, int]
    indptr: np.ndarray
    doc_ids: np.ndarray
    tfs: np.ndarray
    doc_len: np.ndarray
    params: BM25Params
    _norm: np.ndarray | None = field(default=None, repr=False, compare=False)

    @property
    def num_docs(self) -> int:
        return int(self.doc_len.shape[0])

    def idf(self, term_id: int) -> float:
        """BM25+ idf, log((N + 1) / df): positive however common the term, unlike Okapi's on small corpora."""
        df = self.indptr[term_id + 1] - self.indptr[term_id]
        return float(np.log((self.num_docs + 1) / df))

    def norm(self) -> np.ndarray:
        """k1 * (1 - b + b * len / avg len) of every chunk, computed once."""
        if self._norm is None:
            k1, b = self.params.k1, self.params.b
            self._norm = k1 * (1 - b + b * self.doc_len / self.doc_len.mean())
        return self._norm

    def scores(self, query_tokens: list[str]) -> np.ndarray:
        """BM25+ score of every chunk for the query, as rank_bm25.BM25Plus.get_scores computes it."""
        k1, delta = self.params.k1, self.params.delta
        out = np.zeros(self.num_docs, dtype=np.float64)
        if self.num_docs == 0:
            return out
        norm = self.norm()
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
            out[ids] += idf * (tf * (k1 + 1)) / (norm[ids] + tf)  # ids are distinct within one term's postings
        return out + constant

    def check(self) -> None:
        """Raise ValueError unless the arrays fit together."""
        n_post = len(self.doc_ids)
        if (self.indptr.ndim != 1 or len(self.indptr) != len(self.vocab) + 1 or len(self.tfs) != n_post
                or (len(self.indptr) and int(self.indptr[-1]) != n_post)
                or (n_post and not 0 <= int(self.doc_ids.min()) <= int(self.doc_ids.max()) < self.num_docs)):
            raise ValueError("BM25 postings are inconsistent")

    def save(self, folder: Path) -> None:
        (folder / "bm25_vocab.json").write_text(json.dumps(self.vocab, ensure_ascii=False), encoding="utf-8")
        np.save(folder / "bm25_indptr.npy", self.indptr)
        np.save(folder / "bm25_doc_ids.npy", self.doc_ids)
        np.save(folder / "bm25_tfs.npy", self.tfs)
        np.save(folder / "bm25_doc_len.npy", self.doc_len)

    @classmethod
    def load(cls, folder: Path, params: BM25Params) -> "BM25Index":
        vocab = json.loads((folder / "bm25_vocab.json").read_text(encoding="utf-8"))
        if not isinstance(vocab, dict):
            raise ValueError("bm25_vocab.json is not a term -> id object")
        arrays = {
            name: np.load(folder / f"bm25_{name}.npy", allow_pickle=False)
            for name in ("indptr", "doc_ids", "tfs", "doc_len")
        }
        index = cls(vocab=vocab, params=params, **arrays)
        index.check()
        return index


class PostingsBuilder:
    """Chunks in order, tokenised afresh or taken from a base index's postings, turned into a new BM25Index.

    Reused chunks cost no tokenising and no Python loop: their postings are remapped as arrays.
    """

    def __init__(self, base: BM25Index | None = None) -> None:
        self.base = base
        self.term_id: dict[str, int] = dict(base.vocab) if base is not None else {}
        self.base_to_new = np.full(base.num_docs if base is not None else 0, -1, dtype=np.int32)
        self.parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # (term, doc, tf) of fresh chunks
        self.lens: list[np.ndarray] = []
        self.num_docs = 0

    def add_tokens(self, tokenized: list[list[str]]) -> None:
        """Append chunks given as token lists."""
        ids = self.term_id
        for word in dict.fromkeys(chain.from_iterable(tokenized)):
            ids.setdefault(word, len(ids))
        lens = np.fromiter(map(len, tokenized), dtype=np.int64, count=len(tokenized))
        flat = np.fromiter(map(ids.__getitem__, chain.from_iterable(tokenized)), dtype=np.int64, count=int(lens.sum()))
        docs = np.repeat(np.arange(self.num_docs, self.num_docs + len(tokenized), dtype=np.int64), lens)
        keys, tf = _count((docs << 32) | flat)
        self.parts.append(((keys & 0xFFFFFFFF).astype(np.int32), (keys >> 32).astype(np.int32), tf.astype(np.float32)))
        self.lens.append(lens.astype(np.float64))
        self.num_docs += len(tokenized)

    def add_base(self, lo: int, hi: int) -> None:
        """Append chunks lo..hi-1 of the base index, unchanged."""
        self.base_to_new[lo:hi] = np.arange(self.num_docs, self.num_docs + hi - lo)
        self.lens.append(self.base.doc_len[lo:hi].astype(np.float64))
        self.num_docs += hi - lo

    def build(self, params: BM25Params) -> BM25Index:
        parts = list(self.parts)
        if self.base is not None and self.base.num_docs:
            base = self.base
            terms = np.repeat(np.arange(len(base.indptr) - 1, dtype=np.int32), np.diff(base.indptr))
            docs = self.base_to_new[base.doc_ids]
            keep = docs >= 0
            parts.append((terms[keep], docs[keep], base.tfs[keep]))
        empty = (np.zeros(0, dtype=np.int32), np.zeros(0, dtype=np.int32), np.zeros(0, dtype=np.float32))
        term, doc, tf = (np.concatenate([p[k] for p in parts] + [empty[k]]) for k in range(3))
        doc_len = np.concatenate(self.lens + [np.zeros(0, dtype=np.float64)])
        terms = [""] * len(self.term_id)
        for word, t in self.term_id.items():
            terms[t] = word
        return _assemble(terms, term, doc, tf, doc_len, params)


def _count(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct keys, sorted, and how often each occurs (np.unique's result, without its overhead)."""
    keys = np.sort(keys)
    starts = np.flatnonzero(np.concatenate(([True], keys[1:] != keys[:-1]))) if len(keys) else np.zeros(0, np.int64)
    return keys[starts], np.diff(np.append(starts, len(keys)))


def _assemble(terms: list[str], term: np.ndarray, doc: np.ndarray, tf: np.ndarray, doc_len: np.ndarray,
              params: BM25Params) -> BM25Index:
    """CSR postings from (term, doc, tf) triples: unused terms dropped, terms numbered in sorted order."""
    used = np.flatnonzero(np.bincount(term, minlength=len(terms)))
    order = sorted(used.tolist(), key=terms.__getitem__)
    new_id = np.full(len(terms), -1, dtype=np.int32)
    new_id[order] = np.arange(len(order))
    term = new_id[term]
    sort = np.argsort((term.astype(np.int64) << 32) | doc, kind="stable")
    indptr = np.zeros(len(order) + 1, dtype=np.int64)
    np.cumsum(np.bincount(term, minlength=len(order)), out=indptr[1:])
    return BM25Index(
        vocab={terms[t]: n for n, t in enumerate(order)},
        indptr=indptr,
        doc_ids=doc[sort].astype(np.int32, copy=False),
        tfs=tf[sort].astype(np.float32, copy=False),
        doc_len=doc_len,
        params=params,
    )


def top_indices(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k highest scores, best first, ties broken by index."""
    k = min(k, len(scores))
    if k <= 0:
        return np.zeros(0, dtype=np.int64)
    if k < len(scores):
        kth = scores[np.argpartition(-scores, k - 1)[k - 1]]
        part = np.flatnonzero(scores >= kth)  # every tie at the cut-off, so the lowest index wins it
    else:
        part = np.arange(len(scores))
    return part[np.lexsort((part, -scores[part]))][:k]


def build_bm25(tokenized: list[list[str]], params: BM25Params) -> BM25Index:
    """Postings for a tokenised corpus (one token list per chunk)."""
    builder = PostingsBuilder()
    builder.add_tokens(tokenized)
    return builder.build(params)
