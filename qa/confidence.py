"""The calibrated confidence: the estimated probability that a passage's shown answer is right.

One logistic regression over a few features of a read passage (passage_features), fitted by `python -m
bench.calibrate` on SQuAD 2.0 dev's first 17 articles (never on the articles it is reported on) and stored in
qa/data/confidence.json with the threshold it was chosen with. The same number ranks passages, decides whether to
answer, admits a passage to "Sources differ", and is shown as the confidence.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MODEL_FILE = Path(__file__).resolve().parent / "data" / "confidence.json"
FEATURES = ("reader_logodds", "span_margin", "relevance_logit", "key_term_coverage", "kind_mismatch", "names_unknown")
# The direction each feature may push the probability (fit_logistic's sign constraint): a more answerable reading, a
# wider span margin, a more relevant passage or more of the question's key terms never make an answer less likely;
# a span of the wrong kind or a name the corpus never mentions never make it more likely. A weight the data would
# give the other sign is fitted as 0 (SQuAD 2.0's unanswerable questions, written over their paragraph, share more
# of its words than answerable ones do: unconstrained, key-term coverage would count against an answer).
FEATURE_SIGNS = (1, 1, 1, 1, -1, -1)
CLIP = 12.0


def logit(p: float) -> float:
    """Log-odds of a probability, clipped to ±CLIP."""
    p = min(max(p, 1e-6), 1 - 1e-6)
    return max(-CLIP, min(CLIP, math.log(p / (1 - p))))


def passage_features(has_answer: float, margin: float, relevance: float, coverage: float, kind_fits: bool,
                     names_unknown: bool) -> list[float]:
    """The features, in FEATURES order: the answerability head's log-odds, the span logits' own best-span-minus-[CLS]
    margin, the cross-encoder's relevance log-odds, the share of the question's key-term weight the passage holds,
    whether the span misses the asked kind (a figure or date), and whether the question names something the corpus
    never mentions ("Minsk")."""
    return [logit(has_answer), max(-CLIP, min(CLIP, margin)), logit(relevance), coverage, 0.0 if kind_fits else 1.0,
            1.0 if names_unknown else 0.0]


def key_term_coverage(question_terms: dict[str, float], passage_terms: set[str]) -> float:
    """The share of the question's term weight (idf; a term the corpus lacks weighs most) the passage holds."""
    total = sum(question_terms.values())
    if total <= 0:
        return 1.0
    return sum(w for t, w in question_terms.items() if t in passage_terms) / total


@dataclass(frozen=True)
class ConfidenceModel:
    """Weights over FEATURES, a bias, the one threshold an answer must reach, and the reader-alone threshold
    (answerability, gold paragraph given: bench.reader_squad)."""

    weights: tuple[float, ...]
    bias: float
    threshold: float
    reader_threshold: float = 0.5

    def probability(self, features: list[float]) -> float:
        z = self.bias + sum(w * x for w, x in zip(self.weights, features))
        return 1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, z))))

    @classmethod
    def load(cls, path: Path = MODEL_FILE) -> ConfidenceModel:
        data = json.loads(path.read_text(encoding="utf-8"))
        if tuple(data["features"]) != FEATURES:
            raise ValueError(f"{path}: features {data['features']} are not {list(FEATURES)}")
        return cls(tuple(float(w) for w in data["weights"]), float(data["bias"]), float(data["threshold"]),
                   float(data.get("reader_threshold", 0.5)))


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = 1e-2, signs: tuple[int, ...] | None = None,
                 iterations: int = 50) -> tuple[np.ndarray, float]:
    """Weights and bias of an L2-regularised logistic regression; with `signs`, a weight of the wrong sign is fixed
    at 0 and the rest refitted until none is (an active set)."""
    keep = list(range(x.shape[1]))
    while True:
        w, b = _newton_logistic(x[:, keep], y, l2, iterations)
        wrong = [k for k, wk in zip(keep, w) if signs is not None and signs[k] * wk < 0]
        if not wrong:
            break
        keep = [k for k in keep if k not in wrong]
    weights = np.zeros(x.shape[1])
    weights[keep] = w
    return weights, b


def _newton_logistic(x: np.ndarray, y: np.ndarray, l2: float, iterations: int) -> tuple[np.ndarray, float]:
    """Newton's method on the standardised features; weights returned on the original scale."""
    if x.shape[1] == 0:
        p = float(np.clip(y.mean(), 1e-6, 1 - 1e-6))
        return np.zeros(0), math.log(p / (1 - p))
    mean, std = x.mean(0), x.std(0) + 1e-9
    z = np.hstack([(x - mean) / std, np.ones((len(x), 1))])
    w = np.zeros(z.shape[1])
    reg = np.full(z.shape[1], l2)
    reg[-1] = 0.0
    for _ in range(iterations):
        p = 1 / (1 + np.exp(-np.clip(z @ w, -60, 60)))
        grad = z.T @ (p - y) + reg * w
        hess = (z * (p * (1 - p))[:, None]).T @ z + np.diag(reg) + 1e-9 * np.eye(len(w))
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    weights = w[:-1] / std
    return weights, float(w[-1] - (weights * mean).sum())


def reliability(probabilities: list[float], correct: list[bool], bins: int = 10) -> tuple[float, list[dict]]:
    """Expected calibration error and the reliability table (equal-width bins): count, mean confidence, accuracy."""
    p, c = np.asarray(probabilities, dtype=float), np.asarray(correct, dtype=float)
    table, ece = [], 0.0
    for b in range(bins):
        lo, hi = b / bins, (b + 1) / bins
        m = (p >= lo) & ((p < hi) if b < bins - 1 else (p <= hi))
        n = int(m.sum())
        if n:
            conf, acc = float(p[m].mean()), float(c[m].mean())
            ece += n / len(p) * abs(conf - acc)
        else:
            conf = acc = None
        table.append({"bin": f"{lo:.1f}-{hi:.1f}", "count": n, "confidence": conf, "accuracy": acc})
    return (round(ece, 4) if len(p) else 0.0), table
