"""The reader alone with the gold paragraph given: SQuAD v1.1 dev EM/F1, or SQuAD v2.0 dev's official EM/F1 with
HasAns and NoAns at the shipped threshold, beside published readers.

    python -m bench.reader_squad --limit 2000                    # SQuAD v1.1 dev, a seeded 2,000 (0 = all 10,570)
    python -m bench.reader_squad --v2 --limit 0                  # SQuAD v2.0 dev, all 11,873
    python -m bench.reader_squad --v2 --articles 17: --limit 0   # its last 18 articles (the report half)
    python -m bench.reader_squad --no-reread                     # each passage read once
"""
from __future__ import annotations

import argparse
import gzip
import json
import random
import sys
import time
from pathlib import Path

from bench.corpus import SQUAD_DIR
from index.chunk import split_sentences
from qa.confidence import ConfidenceModel
from qa.read import READER_DIR, Reader
from qa.span_metrics import exact_match, f1

SQUAD2_DIR = SQUAD_DIR.parent / "squad_v2.0_dev"
PUBLISHED = [("DrQA (Chen et al. 2017)", 69.5, 78.8), ("BiDAF (Seo et al. 2017)", 67.7, 77.3),
             ("DistilBERT (Sanh et al. 2019)", 77.7, 85.8), ("BERT-base (Devlin et al. 2019)", 80.8, 88.5)]
PUBLISHED_V2 = [("BiDAF-No-Answer (Rajpurkar et al. 2018)", 59.2, 62.1), ("BERT-base (Devlin et al. 2019)", 73.7, 76.8),
                ("deepset/minilm-uncased-squad2", 76.1, 79.5), ("MiniLM-L12 (Wang et al. 2020)", None, 81.7),
                ("always \"no answer\"", 50.1, 50.1)]
WINDOW_CHARS = 600


def windows(text: str) -> list[tuple[int, int, list[tuple[int, int]]]]:
    """The paragraph as passages the way the index cuts them: sentences up to ~600 characters, one overlapping."""
    sents = split_sentences(text) or [(0, len(text))]
    out, i = [], 0
    while i < len(sents):
        j = i
        while j + 1 < len(sents) and sents[j + 1][1] - sents[i][0] <= WINDOW_CHARS:
            j += 1
        ws, we = sents[i][0], sents[j][1]
        out.append((ws, we, [(s - ws, e - ws) for s, e in sents[i:j + 1]]))
        if j + 1 >= len(sents):
            break
        i = j if j > i else j + 1
    return out


def predict(reader: Reader, question: str, paragraph: str, reread: bool = True) -> tuple[str | None, float]:
    """Best span over the paragraph's passages (by the reader's answerability) and that answerability; `reread`
    chooses the span as `qa` does, the sentence read again alone."""
    best, best_margin = None, -float("inf")
    q_ids = reader.question_ids(question)
    for ws, we, sents in windows(paragraph):
        r = reader.read(q_ids, paragraph[ws:we], sents, reread)
        if r.start is None:
            continue
        margin = r.span_score - r.null_score
        if margin > best_margin:
            best, best_margin = (ws, r), margin
    if best is None:
        return None, 0.0
    ws, r = best
    return paragraph[ws + r.start:ws + r.end], r.has_answer


def squad2_rows(articles: str | None) -> list[dict]:
    """SQuAD v2.0 dev's questions with their paragraphs, optionally of a slice of its articles ("17:", ":17")."""
    with gzip.open(SQUAD2_DIR / "paragraphs.jsonl.gz", "rt", encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh]
    if articles:
        titles = list(dict.fromkeys(r["title"] for r in rows))
        lo, hi = (int(x) if x else None for x in articles.split(":"))
        keep = set(titles[lo:hi])
        rows = [r for r in rows if r["title"] in keep]
    return rows


def squad2_score(pred: str | None, answers: list[str]) -> tuple[float, float]:
    """The official SQuAD 2.0 EM and F1 of one prediction (None = no answer)."""
    if not answers:
        return (1.0, 1.0) if pred is None else (0.0, 0.0)
    return exact_match(pred, answers), f1(pred, answers)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--limit", type=int, default=2000, help="seeded sample size (0 = all)")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--model", default=str(READER_DIR))
    p.add_argument("--v2", action="store_true", help="SQuAD v2.0 dev (half unanswerable), official metric")
    p.add_argument("--articles", default=None, help="v2: a slice of its 35 articles in file order, e.g. 17: or :17")
    p.add_argument("--threshold", type=float, default=None, help="v2: answer when the reader's answerability "
                   "reaches this (default: the shipped reader_threshold in qa/data/confidence.json)")
    p.add_argument("--json", default=None, help="also write the figures here")
    p.add_argument("--dump", default=None, help="write each question's prediction (v2: and answerability; v1: and "
                   "its EM and F1) here, for paired comparisons")
    p.add_argument("--no-reread", action="store_true", help="each passage read once (no sentence re-reading)")
    args = p.parse_args(argv)
    if args.v2:
        rows = [{"id": r["id"], "question": r["question"], "paragraph": r["context"],
                 "answers": [a["text"] if isinstance(a, dict) else a for a in r["answers"]]}
                for r in squad2_rows(args.articles)]
    else:
        rows = [{"id": r["id"], "question": r["question"], "paragraph": r["evidence"][0], "answers": r["answers"]}
                for r in map(json.loads, open(SQUAD_DIR / "gold.jsonl", encoding="utf-8"))]
    if args.limit:
        rows = random.Random(args.seed).sample(rows, min(args.limit, len(rows)))
    threshold = args.threshold if args.threshold is not None else ConfidenceModel.load().reader_threshold
    reader = Reader(Path(args.model))
    t0 = time.perf_counter()
    scores, dump = [], []
    for row in rows:
        pred, has_answer = predict(reader, row["question"], row["paragraph"], not args.no_reread)
        if args.v2:
            shown = pred if has_answer >= threshold else None
            scores.append((*squad2_score(shown, row["answers"]), bool(row["answers"])))
            dump.append({"id": row["id"], "pred": pred, "has_answer": has_answer, "answers": row["answers"]})
        else:
            scores.append((exact_match(pred, row["answers"]), f1(pred, row["answers"]), True))
            dump.append({"id": row["id"], "pred": pred, "em": scores[-1][0], "f1": scores[-1][1]})
    seconds = time.perf_counter() - t0
    n = len(rows)

    def mean(xs):
        xs = list(xs)
        return 100 * sum(xs) / len(xs) if xs else float("nan")

    em, f = mean(s[0] for s in scores), mean(s[1] for s in scores)
    figures = {"questions": n, "em": em, "f1": f, "questions_per_s": n / seconds}
    if args.v2:
        figures.update(threshold=threshold, has_ans_em=mean(s[0] for s in scores if s[2]),
                       has_ans_f1=mean(s[1] for s in scores if s[2]), no_ans_acc=mean(s[0] for s in scores if not s[2]),
                       has_ans=sum(s[2] for s in scores))
        print(f"SQuAD v2.0 dev{' articles ' + args.articles if args.articles else ''}, gold paragraph given: {n} "
              f"questions ({figures['has_ans']} answerable), threshold {threshold:.3f}, {n / seconds:.1f} questions/s")
        print(f"{'reader':42} {'EM':>6} {'F1':>6} {'HasAns F1':>10} {'NoAns':>6}")
        print(f"{'qa reader (this model)':42} {em:6.1f} {f:6.1f} {figures['has_ans_f1']:10.1f} "
              f"{figures['no_ans_acc']:6.1f}")
        for name, e, ff in PUBLISHED_V2:
            print(f"{name:42} {'—' if e is None else f'{e:.1f}':>6} {ff:6.1f}")
    else:
        print(f"SQuAD v1.1 dev, gold paragraph given: {n} questions, {n / seconds:.1f} questions/s")
        print(f"{'reader':34} {'EM':>6} {'F1':>6}")
        print(f"{'qa reader (this model)':34} {em:6.1f} {f:6.1f}")
        for name, e, ff in PUBLISHED:
            print(f"{name:34} {e:6.1f} {ff:6.1f}")
    if args.json:
        Path(args.json).write_text(json.dumps(figures) + "\n")
    if args.dump:
        Path(args.dump).write_text("".join(json.dumps(d) + "\n" for d in dump))


if __name__ == "__main__":
    sys.exit(main())
