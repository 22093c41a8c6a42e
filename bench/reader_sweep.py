"""Choose the reader's fusion weight and thresholds by numbers: read each gold question's passages once, then score
every setting offline with the same rules answer() applies.

    python -m bench.reader_sweep seeds/gold.jsonl
    python -m bench.reader_sweep ../shared/bench/squad_v1.1_dev/gold.jsonl \
        --corpus ../shared/bench/squad_v1.1_dev/corpus --limit 1000
"""
from __future__ import annotations

import argparse
import itertools
import math
import json
from pathlib import Path

from qa import Settings, open_index
from qa.answering import (NO_SPAN_PENALTY, UNKNOWN_NAME_PENALTY, Hit, asked_for, choose_passages, fuse_scores,
                          passage_chunk, rank, read_passages, reread_passages, reader_span, reading_extraction)
from qa.evaluate import contains_answer, load_gold, sample
from qa.extract import answer_type, span_fits, unknown_names
from qa.span_metrics import exact_match, f1

WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0)
SPAN_THRESHOLDS = (0.3, 0.5)
ABSTAIN = (0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.5)


def collect(items, index, settings: Settings) -> list[dict]:
    """Per question: each read passage's rerank probability, reader probability, span, and whether it counts."""
    out = []
    for item in items:
        ranking = rank(index, item.question, settings)
        hits = [Hit(i, *index.extent(i), s) for i, s in ranking.hits]
        choices = choose_passages(hits, max(settings.top_k, settings.read_candidates), 2 * settings.chunk_max_chars)
        chunks = [passage_chunk(c.ids, index.chunk) for c in choices]
        readings = read_passages(item.question, chunks)
        if settings.reread_sentence:  # every passage's span counts here (span threshold 0)
            readings = reread_passages(item.question, chunks, readings, set(range(len(chunks))))
        asked = asked_for(item.question, answer_type(item.question))
        passages = []
        for c, chunk, r in zip(choices, chunks, readings):
            ex = reading_extraction(chunk, r, reader_span(chunk, r, asked), 0.0)
            span = chunk.text[ex.answer[0]:ex.answer[1]] if ex.answer else None
            passages.append({"rerank": c.score, "has_answer": r.has_answer, "span": span,
                             "counts": item.answerable and chunk.doc in item.doc
                             and contains_answer(chunk.text, item.answers)})
        out.append({"question": item.question, "answers": item.answers, "answerable": item.answerable, "passages": passages,
                    "unknown": bool(unknown_names(item.question, index.terms))})
    return out


def tempered(p: float, temperature: float) -> float:
    """The reader's probability with its logit divided by `temperature` (a softer, less saturated score)."""
    if temperature == 1.0:
        return p
    p = min(max(p, 1e-12), 1 - 1e-12)
    return 1.0 / (1.0 + math.exp(-math.log(p / (1 - p)) / temperature))


def score(rows: list[dict], weight: float, span_threshold: float, abstain: float, top_k: int = 5,
          temperature: float = 1.0) -> dict:
    """The eval metrics for one setting, from the collected readings."""
    if temperature != 1.0:
        rows = [{**r, "passages": [{**p, "has_answer": tempered(p["has_answer"], temperature)} for p in r["passages"]]}
                for r in rows]
    n = sum(r["answerable"] for r in rows)
    hit1 = hit3 = span_hit = em = fsum = false_abstain = 0
    abstained_unanswerable = 0
    for r in rows:
        ps = sorted(r["passages"], key=lambda p: -fuse_scores(p["rerank"], p["has_answer"], weight))[:top_k]
        conf = fuse_scores(ps[0]["rerank"], ps[0]["has_answer"], weight) if ps else 0.0
        if r["unknown"]:
            conf *= UNKNOWN_NAME_PENALTY
        if ps and not span_fits(r["question"], answer_type(r["question"]), ps[0]["span"]):
            conf *= NO_SPAN_PENALTY
        answered = bool(ps) and conf >= abstain
        if not r["answerable"]:
            abstained_unanswerable += not answered
            continue
        false_abstain += not answered
        ranks = [i for i, p in enumerate(ps, 1) if p["counts"]]
        hit1 += bool(ranks) and ranks[0] == 1
        hit3 += bool(ranks) and ranks[0] <= 3
        top_span = ps[0]["span"] if ps and ps[0]["has_answer"] >= span_threshold else None
        span_hit += contains_answer(top_span, r["answers"])
        em += exact_match(top_span, r["answers"])
        fsum += f1(top_span, r["answers"])
    m = len(rows) - n
    return {"hit@1": hit1 / n, "hit@3": hit3 / n, "span_hit@1": span_hit / n, "EM": em / n, "F1": fsum / n,
            "abstain_recall": abstained_unanswerable / m if m else None, "false_abstain": false_abstain / n}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("gold", type=Path)
    p.add_argument("--corpus", type=Path, action="append")
    p.add_argument("--limit", type=int)
    p.add_argument("--cache", type=Path, help="read/write the collected readings here")
    p.add_argument("--temperatures", default="1", help="comma list: the reader's logit is divided by each")
    args = p.parse_args(argv)
    settings = Settings(**({"corpus": args.corpus} if args.corpus else {}))
    if args.cache and args.cache.exists():
        rows = json.loads(args.cache.read_text())
    else:
        index = open_index(settings)
        rows = collect(sample(load_gold(args.gold), args.limit), index, settings)
        if args.cache:
            args.cache.write_text(json.dumps(rows))
    print(f"{args.gold}: {len(rows)} questions")
    print(f"{'temp':>5} {'weight':>6} {'span>=':>6} {'abst<':>6} {'hit@1':>6} {'hit@3':>6} {'span@1':>6} {'EM':>6} {'F1':>6} "
          f"{'abs.rec':>7} {'false':>6}")
    temperatures = [float(x) for x in args.temperatures.split(",")]
    for temp, w, t, a in itertools.product(temperatures, WEIGHTS, SPAN_THRESHOLDS, ABSTAIN):
        s = score(rows, w, t, a, temperature=temp)
        rec = "—" if s["abstain_recall"] is None else f"{s['abstain_recall']:.3f}"
        print(f"{temp:5.1f} {w:6.2f} {t:6.2f} {a:6.2f} {s['hit@1']:6.3f} {s['hit@3']:6.3f} {s['span_hit@1']:6.3f} {s['EM']:6.3f} "
              f"{s['F1']:6.3f} {rec:>7} {s['false_abstain']:6.3f}")


if __name__ == "__main__":
    main()
