"""The reader alone on SQuAD v1.1 dev with the gold paragraph given: EM/F1 beside published readers.

    python -m bench.reader_squad --limit 2000          # a seeded 2,000 questions (0 = all 10,570)
    python -m bench.reader_squad --no-reread           # each passage read once
    python -m bench.reader_squad --no-span-reader      # the reader marks name questions' spans too
"""
from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

from bench.corpus import SQUAD_DIR
from index.chunk import split_sentences
from qa.extract import answer_type
from qa.read import READER_DIR, SPAN_MODEL, Reader
from qa.span_metrics import exact_match, f1

PUBLISHED = [("DrQA (Chen et al. 2017)", 69.5, 78.8), ("BiDAF (Seo et al. 2017)", 67.7, 77.3),
             ("DistilBERT (Sanh et al. 2019)", 77.7, 85.8), ("BERT-base (Devlin et al. 2019)", 80.8, 88.5)]
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


def predict(reader: Reader, question: str, paragraph: str, reread: bool = True, spans: Reader | None = None
            ) -> str | None:
    """Best span over the paragraph's passages (by span score against each passage's no-answer score); `reread`
    chooses it as `qa` does, the sentence read again alone; `spans` (the span reader) marks it in the passage the
    reader chose for a name question, as `qa` does when it ships."""
    best, best_margin = None, -float("inf")
    q_ids = reader.question_ids(question)
    for ws, we, sents in windows(paragraph):
        r = reader.read(q_ids, paragraph[ws:we], sents, reread)
        if r.start is None:
            continue
        margin = r.span_score - r.null_score
        if margin > best_margin:
            best, best_margin = (ws, we, sents, r), margin
    if best is None:
        return None
    ws, we, sents, r = best
    if spans is not None and answer_type(question) == "name":
        r = spans.mark(q_ids, paragraph[ws:we], sents, r, reread)  # one tokenizer for both models
    return paragraph[ws + r.start:ws + r.end]


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--limit", type=int, default=2000, help="seeded sample size (0 = all)")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--model", default=str(READER_DIR))
    p.add_argument("--json", default=None, help="also write the figures here")
    p.add_argument("--no-reread", action="store_true", help="each passage read once (no sentence re-reading)")
    p.add_argument("--no-span-reader", action="store_true", help="the reader marks spans itself even where the "
                   f"model folder holds {SPAN_MODEL}")
    args = p.parse_args(argv)
    rows = [json.loads(line) for line in open(SQUAD_DIR / "gold.jsonl", encoding="utf-8")]
    if args.limit:
        rows = random.Random(args.seed).sample(rows, min(args.limit, len(rows)))
    reader = Reader(Path(args.model))
    spans = None if args.no_span_reader or not (Path(args.model) / SPAN_MODEL).exists() else \
        Reader(Path(args.model), model_file=SPAN_MODEL)
    t0 = time.perf_counter()
    em = f = 0.0
    for row in rows:
        pred = predict(reader, row["question"], row["evidence"][0], not args.no_reread, spans)
        em += exact_match(pred, row["answers"])
        f += f1(pred, row["answers"])
    seconds = time.perf_counter() - t0
    n = len(rows)
    print(f"SQuAD v1.1 dev, gold paragraph given: {n} questions, {n / seconds:.1f} questions/s")
    print(f"{'reader':34} {'EM':>6} {'F1':>6}")
    print(f"{'qa reader (this model)':34} {100 * em / n:6.1f} {100 * f / n:6.1f}")
    for name, e, ff in PUBLISHED:
        print(f"{name:34} {e:6.1f} {ff:6.1f}")
    if args.json:
        Path(args.json).write_text(json.dumps({"questions": n, "em": 100 * em / n, "f1": 100 * f / n,
                                               "questions_per_s": n / seconds}) + "\n")


if __name__ == "__main__":
    sys.exit(main())
