"""Settle retrieval defaults by numbers: evaluate setting variants on gold sets in one process.

    python -m bench.sweep seeds/gold.jsonl seeds/heldout.jsonl --grid dense_weight=0.3,0.5,0.7 fusion=convex,rrf
Each combination of the grid is evaluated on every gold set; chunking variants rebuild the index (cached per variant).
"""
from __future__ import annotations

import argparse
import itertools
import sys
import tempfile
from pathlib import Path

from qa import Settings, open_index
from qa.evaluate import evaluate, load_gold, sample

COLUMNS = ["hit_at_1", "hit_at_3", "hit_at_5", "mrr_at_5", "span_hit_at_1", "abstain_recall", "false_abstain_rate",
           "questions_per_second"]


def parse_grid(specs: list[str]) -> list[dict]:
    axes = []
    for spec in specs:
        key, values = spec.split("=", 1)
        axes.append([(key, v) for v in values.split(",")])
    return [dict(combo) for combo in itertools.product(*axes)] if axes else [{}]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.sweep")
    ap.add_argument("gold", nargs="+", type=Path)
    ap.add_argument("--grid", nargs="*", default=[], help="key=v1,v2 (Settings fields)")
    ap.add_argument("--corpus", type=Path, action="append")
    ap.add_argument("--limit", type=int)
    ap.add_argument("--index-root", type=Path, default=Path(tempfile.gettempdir()) / "qa-sweep")
    args = ap.parse_args(argv)
    golds = {g.name: sample(load_gold(g), args.limit) for g in args.gold}
    print("setting".ljust(48) + "gold".ljust(14) + "".join(c[:12].rjust(13) for c in COLUMNS))
    for combo in parse_grid(args.grid):
        base = {"corpus": args.corpus} if args.corpus else {}
        settings = Settings(**base, **combo)
        key = f"{settings.chunk_max_chars}-{settings.chunk_overlap_sentences}-" + "-".join(
            p.resolve().name for p in settings.corpus)
        settings = settings.model_copy(update={"index_dir": args.index_root / key})
        index = open_index(settings, warn=lambda m: print(f"  ({m})", file=sys.stderr))
        for name, items in golds.items():
            r = evaluate(items, index, settings, gold_name=name)
            label = " ".join(f"{k}={v}" for k, v in combo.items()) or "defaults"
            cells = "".join(f"{(getattr(r, c) if getattr(r, c) is not None else float('nan')):13.3f}" for c in COLUMNS)
            print(label[:47].ljust(48) + name[:13].ljust(14) + cells, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
