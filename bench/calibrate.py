"""Fit the calibrated confidence (qa/confidence.py) on SQuAD 2.0 dev's first 17 articles, open corpus.

    python -m bench.calibrate split --out DIR        # DIR/squad2_fit.jsonl (first 17 articles), squad2_report.jsonl
    python -m bench.calibrate features --limit 1500  # read the fit half's questions with qa, store each candidate
    python -m bench.calibrate fit                    # fit, choose the threshold, write qa/data/confidence.json
    python -m bench.calibrate reader DUMP            # the reader-alone threshold from bench.reader_squad --dump

A candidate's label is whether its shown span answers (a gold answer inside it, in a gold document); unanswerable
questions' candidates are all wrong. The threshold abstains on at most 5% of the fit half's answerable questions
(--false-abstain): the confidence shown is the calibrated probability either way; the threshold only says where
"no answer" starts.
"""
from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

import numpy as np

from bench.reader_squad import SQUAD2_DIR, squad2_score
from qa.confidence import FEATURE_SIGNS, FEATURES, MODEL_FILE, fit_logistic, reliability
from qa.evaluate import contains_answer

FIT_ARTICLES = 17  # Normans ... Pharmacy: calibration and thresholds; the other 18 are reported on
REPO = Path(__file__).resolve().parent.parent
FEATURES_FILE = REPO / "bench" / "results-calibration.jsonl"


def split(out: Path) -> None:
    """The open-corpus gold file cut into its first 17 articles and the other 18, in file order."""
    rows = [json.loads(line) for line in open(SQUAD2_DIR / "gold.jsonl", encoding="utf-8")]
    titles = list(dict.fromkeys(r["doc"][0] for r in rows))
    fit = set(titles[:FIT_ARTICLES])
    out.mkdir(parents=True, exist_ok=True)
    for name, keep in (("squad2_fit.jsonl", True), ("squad2_report.jsonl", False)):
        with open(out / name, "w", encoding="utf-8") as fh:
            for r in rows:
                if (r["doc"][0] in fit) == keep:
                    fh.write(json.dumps(r, ensure_ascii=False) + "\n")
    print(f"{len(fit)} fit articles ({titles[0]} … {titles[FIT_ARTICLES - 1]}), {len(titles) - len(fit)} report "
          f"articles ({titles[FIT_ARTICLES]} … {titles[-1]}) -> {out}")


def features(args) -> None:
    """Each sampled fit-half question read by qa: every candidate's features and whether its span answers."""
    from qa.answering import candidates_for, open_index
    from qa.settings import Settings

    rows = [json.loads(line) for line in open(SQUAD2_DIR / "gold.jsonl", encoding="utf-8")]
    titles = list(dict.fromkeys(r["doc"][0] for r in rows))
    fit = set(titles[:FIT_ARTICLES])
    rows = [r for r in rows if r["doc"][0] in fit]
    rows = random.Random(args.seed).sample(rows, min(args.limit, len(rows)))
    settings = Settings(corpus=[SQUAD2_DIR / "corpus"])
    index = open_index(settings)
    done = set()
    if FEATURES_FILE.exists():
        done = {json.loads(line)["id"] for line in open(FEATURES_FILE, encoding="utf-8")}
    with open(FEATURES_FILE, "a", encoding="utf-8") as fh:
        for n, r in enumerate(rows, 1):
            if r["id"] in done:
                continue
            cands = candidates_for(r["question"], index, settings)
            out = []
            for c in cands:
                span = c.chunk.text[c.span[0]:c.span[1]] if c.span else None
                right = bool(r["answers"]) and c.chunk.doc in r["doc"] and contains_answer(span, r["answers"])
                out.append({"features": c.features, "right": right, "span": span})
            fh.write(json.dumps({"id": r["id"], "answerable": bool(r["answers"]), "candidates": out}) + "\n")
            fh.flush()
            if n % 100 == 0:
                print(f"{n} of {len(rows)}", flush=True)


def fit(args) -> None:
    """Fit on every candidate of the stored questions; choose the threshold on their top candidates."""
    records = [json.loads(line) for line in open(FEATURES_FILE, encoding="utf-8")]
    x = np.array([c["features"] for r in records for c in r["candidates"]], dtype=float)
    y = np.array([c["right"] for r in records for c in r["candidates"]], dtype=float)
    weights, bias = fit_logistic(x, y, l2=args.l2, signs=FEATURE_SIGNS)

    def prob(f):
        return 1 / (1 + np.exp(-(np.asarray(f) @ weights + bias)))
    tops, rights, any_right = [], [], []
    for r in records:
        if not r["candidates"]:
            continue
        p = prob([c["features"] for c in r["candidates"]])
        i = int(np.argmax(p))
        tops.append(float(p[i]))
        rights.append(bool(r["candidates"][i]["right"]))
        any_right.append(any(c["right"] for c in r["candidates"]))
    tops_a, rights_a = np.array(tops), np.array(rights)
    # the operating point: abstain on at most --false-abstain of the answerable questions (the target)
    unans = np.array([not r["answerable"] for r in records if r["candidates"]])
    best_t = float(np.quantile(tops_a[~unans], args.false_abstain)) if (~unans).any() else 0.5
    best_acc = float(np.mean(np.where(tops_a >= best_t, rights_a, ~rights_a)))
    print(f"at threshold {best_t:.3f}: abstains on {np.mean(tops_a[unans] < best_t):.3f} of the unanswerable, "
          f"answered precision {rights_a[tops_a >= best_t].mean():.3f}")
    ece, table = reliability(tops, rights)
    print(f"{len(records)} questions, {len(y)} candidates ({int(y.sum())} right)")
    print("weights: " + ", ".join(f"{n} {w:+.3f}" for n, w in zip(FEATURES, weights)) + f", bias {bias:+.3f}")
    print(f"threshold {best_t:.3f}: right decisions {best_acc:.3f}; top-candidate ECE {ece:.3f}")
    for row in table:
        print(f"  {row['bin']}  {row['count']:5d}  " + (f"conf {row['confidence']:.3f}  acc {row['accuracy']:.3f}"
                                                        if row['count'] else ""))
    current = json.loads(MODEL_FILE.read_text(encoding="utf-8"))
    model = {"features": list(FEATURES), "weights": [round(float(w), 6) for w in weights],
             "bias": round(float(bias), 6), "threshold": round(best_t, 3), "false_abstain": args.false_abstain,
             "reader_threshold": current.get("reader_threshold", 0.5),
             "fitted_on": f"SQuAD 2.0 dev, first {FIT_ARTICLES} articles, open corpus: {len(records)} questions "
                          f"(seed {args.seed}), {len(y)} candidates; python -m bench.calibrate fit"}
    if args.write:
        MODEL_FILE.write_text(json.dumps(model, indent=1) + "\n", encoding="utf-8")
        print(f"wrote {MODEL_FILE}")


def reader_threshold(args) -> None:
    """The answerability threshold that maximises the official F1 of the reader alone on a fit-half dump."""
    rows = [json.loads(line) for line in open(args.dump, encoding="utf-8")]
    best = (-1.0, 0.5)
    for t in np.linspace(0.02, 0.98, 97):
        f = np.mean([squad2_score(r["pred"] if r["has_answer"] >= t else None, r["answers"])[1] for r in rows])
        best = max(best, (float(f), float(t)))
    print(f"{len(rows)} questions: threshold {best[1]:.2f} gives F1 {100 * best[0]:.1f}")
    if args.write:
        model = json.loads(MODEL_FILE.read_text(encoding="utf-8"))
        model["reader_threshold"] = round(best[1], 3)
        MODEL_FILE.write_text(json.dumps(model, indent=1) + "\n", encoding="utf-8")
        print(f"wrote {MODEL_FILE}")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("split")
    s.add_argument("--out", type=Path, required=True)
    f = sub.add_parser("features")
    f.add_argument("--limit", type=int, default=1500)
    f.add_argument("--seed", type=int, default=11)
    t = sub.add_parser("fit")
    t.add_argument("--l2", type=float, default=1e-2)
    t.add_argument("--false-abstain", type=float, default=0.05, help="share of answerable questions the threshold "
                   "may abstain on")
    t.add_argument("--seed", type=int, default=11)
    t.add_argument("--write", action="store_true")
    r = sub.add_parser("reader")
    r.add_argument("dump")
    r.add_argument("--write", action="store_true")
    args = p.parse_args(argv)
    {"split": lambda: split(args.out), "features": lambda: features(args), "fit": lambda: fit(args),
     "reader": lambda: reader_threshold(args)}[args.command]()


if __name__ == "__main__":
    sys.exit(main())
