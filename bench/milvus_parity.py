"""BM25 ranking parity and query latency, embedded index vs Milvus, over a gold file's questions.

    python -m bench.milvus_parity seeds/gold.jsonl --uri http://127.0.0.1:19530
    python -m bench.milvus_parity ../shared/bench/squad_v1.1_dev/gold.jsonl \
        --corpus ../shared/bench/squad_v1.1_dev/corpus --limit 1000 --uri http://127.0.0.1:19530

Both backends get the same query terms (index.bm25.tokenize); for each question it compares our BM25+ top 10 with
Milvus's BM25 top 10 (overlap of the two sets, top-1 agreement), and the hybrid first-stage fused top 10 the same
way. Latencies are per call, measured in this process (median and p95, milliseconds). Prints one JSON object.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np


def _ms(samples: list[float]) -> dict:
    ordered = sorted(samples)
    return {"p50_ms": round(statistics.median(ordered) * 1e3, 2),
            "p95_ms": round(ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))] * 1e3, 2)}


def _overlap(a: list[int], b: list[int]) -> float | None:
    return len(set(a) & set(b)) / len(a) if a else None


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.milvus_parity")
    parser.add_argument("gold", type=Path)
    parser.add_argument("--corpus", type=Path, action="append")
    parser.add_argument("--uri", required=True)
    parser.add_argument("--limit", type=int)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--k", type=int, default=10)
    args = parser.parse_args()

    from index.bm25 import tokenize
    from qa import Settings, open_index
    from qa.evaluate import load_gold, sample
    from qa.retrieve import query_vector, retrieve

    extra = {"corpus": args.corpus} if args.corpus else {}
    embedded_settings = Settings(**extra)
    milvus_settings = Settings(**extra, backend="milvus", milvus_uri=args.uri)
    embedded = open_index(embedded_settings)
    milvus = open_index(milvus_settings)
    items = sample(load_gold(args.gold), args.limit, args.seed)
    k = args.k
    bm25_overlap, bm25_top1, fused_overlap, fused_top1 = [], [], [], []
    times: dict[str, list[float]] = {"milvus_bm25": [], "milvus_dense": [], "milvus_retrieve": [],
                                     "embedded_bm25": [], "embedded_dense": [], "embedded_retrieve": []}
    for item in items:
        terms = tokenize(item.question)
        qvec = query_vector(item.question, embedded_settings.query_encoder)
        rankings = {}
        for name, index in (("embedded", embedded), ("milvus", milvus)):
            t = time.perf_counter()
            rankings[name] = [int(i) for i in index.bm25_rank(terms, k).ids]
            times[f"{name}_bm25"].append(time.perf_counter() - t)
            t = time.perf_counter()
            index.dense_search(qvec, 50)
            times[f"{name}_dense"].append(time.perf_counter() - t)
        ours = embedded.bm25_scores(terms)
        baseline = float(ours.min()) if len(ours) else 0.0  # BM25+ gives every chunk delta * idf: no term matched
        mine = [i for i in rankings["embedded"] if ours[i] > baseline + 1e-9]  # Milvus returns matches only
        theirs = rankings["milvus"]
        if mine:
            bm25_overlap.append(_overlap(mine, theirs))
            bm25_top1.append(bool(theirs) and mine[0] == theirs[0])
        fused = {}
        for name, index, settings in (("embedded", embedded, embedded_settings), ("milvus", milvus, milvus_settings)):
            t = time.perf_counter()
            fused[name] = [i for i, _ in retrieve(index, item.question, settings.retrieval).hits[:k]]
            times[f"{name}_retrieve"].append(time.perf_counter() - t)
        fused_overlap.append(_overlap(fused["embedded"], fused["milvus"]))
        fused_top1.append(fused["embedded"][:1] == fused["milvus"][:1])
    report = {
        "gold": str(args.gold), "questions": len(items), "chunks": embedded.manifest.num_chunks, "k": k,
        "bm25_top10_overlap": round(float(np.mean(bm25_overlap)), 3),
        "bm25_top1_agreement": round(float(np.mean(bm25_top1)), 3),
        "hybrid_top10_overlap": round(float(np.mean(fused_overlap)), 3),
        "hybrid_top1_agreement": round(float(np.mean(fused_top1)), 3),
        "latency": {name: _ms(samples) for name, samples in times.items()},
    }
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
