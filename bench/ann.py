"""Dense search at scale: exact vs approximate FAISS indexes over real cached passage vectors (bench/vectors.py).

    python -m bench.ann                         # every cached vector (1M when bench.vectors build finished)
    python -m bench.ann --at 100k,250k,all      # one row group per size
    python -m bench.ann --layouts flat,hnsw,ivf --ef 64,96,128 --nprobe 32,64

For each size N (the first N cached vectors) and each layout, the index is built once and cached beside the
vectors (<shard folder>/indexes/), then a fresh process (`python -m bench.ann probe`) loads it and searches each
question alone on one thread, as `qa ask` does:
  load      read_index of the file (the product's dense.load_faiss), seconds
  RSS       that process's peak resident memory after loading and searching (MB)
  p50/p95   FAISS search time of one question vector for its top 10 (ms); questions are embedded beforehand
  recall@10 share of exact search's top 10 that the index returns in its top 10 (1.0 for flat)
Questions: seeds/gold.jsonl and SQuAD dev questions, embedded by the query encoder (int8 ONNX). The layouts:
flat (exact, IndexFlatIP), hnsw (what qa builds above ann_above: dense.new_faiss with the settings' M and
efConstruction; --ef sets efSearch per row) and ivf (bench-only comparison: IVF with 4*sqrt(N) lists, --nprobe).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from .corpus import REPO, SQUAD_DIR, bench_dir, parse_size
from .vectors import load_vectors, shard_dir

K = 10
TARGETS = {"recall_at_10": (">=", 0.98, ""), "p50_ms": ("<=", 20.0, "ms"), "rss_mb": ("<=", 2048.0, "MB")}
PYTHON = sys.executable


def questions(n: int) -> list[str]:
    """Seed gold questions first, then SQuAD dev questions, n in all."""
    out = []
    for path in (REPO / "seeds" / "gold.jsonl", SQUAD_DIR / "gold.jsonl"):
        if path.exists():
            for line in path.read_text(encoding="utf-8").splitlines():
                if line.strip():
                    out.append(json.loads(line)["question"])
    return out[:n]


def query_vectors(folder: Path, n: int) -> np.ndarray:
    """The questions embedded by the query encoder, cached in the shard folder."""
    path = folder / f"queries-{n}.npy"
    if path.exists():
        return np.load(path)
    from index import dense
    from qa.settings import Settings

    encoder = dense.load_encoder(Settings(corpus=[Path(".")], index_dir=Path(".")).query_encoder)
    vectors = encoder.encode(questions(n))
    np.save(path, vectors)
    return vectors


def exact_top(vectors: np.ndarray, queries: np.ndarray, k: int = K, block: int = 100_000) -> np.ndarray:
    """Ids of each query's k highest inner products, best first (blocked numpy: the ground truth)."""
    best_s = np.full((len(queries), 0), -np.inf, dtype=np.float32)
    best_i = np.zeros((len(queries), 0), dtype=np.int64)
    for lo in range(0, len(vectors), block):
        scores = queries @ vectors[lo:lo + block].T
        top = np.argpartition(-scores, min(k, scores.shape[1] - 1), axis=1)[:, :k]
        s = np.concatenate([best_s, np.take_along_axis(scores, top, axis=1)], axis=1)
        i = np.concatenate([best_i, top + lo], axis=1)
        keep = np.argsort(-s, axis=1, kind="stable")[:, :k]
        best_s, best_i = np.take_along_axis(s, keep, axis=1), np.take_along_axis(i, keep, axis=1)
    return best_i


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    """Mean share of the true top k found in the returned top k."""
    return float(np.mean([len(set(f[f >= 0]) & set(t)) / len(t) for f, t in zip(found, truth)]))


def build_layout(vectors: np.ndarray, layout: str, path: Path, settings) -> dict:
    """Build one index over the vectors and write it atomically; its build seconds beside it."""
    import faiss

    from index import dense

    record = path.with_suffix(".json")
    if path.exists() and record.exists():
        return json.loads(record.read_text())
    t0 = time.perf_counter()
    if layout == "flat":
        index = dense.build_faiss(vectors)
    elif layout == "hnsw":
        params = settings.dense.model_copy(update={"ann": "hnsw", "ann_above": 0})
        index = dense.build_faiss(vectors, dense.index_layout(len(vectors), params))
    else:  # ivf
        nlist = max(1, int(4 * math.sqrt(len(vectors))))
        index = faiss.index_factory(dense.MODEL_DIM, f"IVF{nlist},Flat", faiss.METRIC_INNER_PRODUCT)
        faiss.omp_set_num_threads(dense.build_threads())
        rng = np.random.default_rng(0)
        sample = vectors[rng.choice(len(vectors), min(len(vectors), 64 * nlist), replace=False)]
        index.train(sample)
        index.add(vectors)
        faiss.omp_set_num_threads(1)
    seconds = time.perf_counter() - t0
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    dense.save_faiss(index, tmp)
    os.replace(tmp, path)
    info = {"build_s": round(seconds, 1), "file_mb": round(path.stat().st_size / 2**20, 1),
            "loadavg": os.getloadavg()[0]}
    record.write_text(json.dumps(info))
    return info


def probe(path: Path, queries_path: Path, ef: int | None, nprobe: int | None) -> dict:
    """In this (fresh) process: load the index, search each query alone, report times, memory and ids."""
    import faiss

    from index import dense

    t0 = time.perf_counter()
    index = dense.load_faiss(path)
    load_s = time.perf_counter() - t0
    inner = faiss.downcast_index(index)
    if ef is not None and hasattr(inner, "hnsw"):
        inner.hnsw.efSearch = ef
    if nprobe is not None and hasattr(inner, "nprobe"):
        inner.nprobe = nprobe
    queries = np.load(queries_path)
    times, ids = [], []
    for q in queries[:5]:
        dense.dense_search(index, q, K)  # warm-up
    for q in queries:
        t = time.perf_counter()
        found, _ = dense.dense_search(index, q, K)
        times.append((time.perf_counter() - t) * 1000)
        ids.append(found.tolist())
    return {"load_s": load_s, "rss_mb": peak_rss_mb(), "times_ms": times, "ids": ids}


def peak_rss_mb() -> float:
    """This process image's peak resident memory. Not getrusage's ru_maxrss: Linux carries the forking parent's peak
    across exec into it (a parent holding 1M vectors would be counted in every probe)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def percentile(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[max(0, math.ceil(p / 100 * len(s)) - 1)]


def measure(path: Path, queries_path: Path, truth: np.ndarray, ef: int | None = None,
            nprobe: int | None = None) -> dict:
    cmd = [PYTHON, "-m", "bench.ann", "probe", str(path), str(queries_path)]
    cmd += ["--ef", str(ef)] if ef else []
    cmd += ["--nprobe", str(nprobe)] if nprobe else []
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO)
    if p.returncode:
        raise RuntimeError(p.stderr.strip()[-400:])
    r = json.loads(p.stdout)
    return {"load_s": round(r["load_s"], 3), "rss_mb": round(r["rss_mb"]),
            "p50_ms": round(percentile(r["times_ms"], 50), 3), "p95_ms": round(percentile(r["times_ms"], 95), 3),
            "recall_at_10": round(recall(np.array(r["ids"]), truth), 4)}


def verdict(key: str, value, approximate: bool) -> tuple[str, str]:
    if key not in TARGETS:
        return "", ""
    op, thr, unit = TARGETS[key]
    text = f"{op.replace('<=', '≤').replace('>=', '≥')} {thr:g}{(' ' + unit) if unit else ''}"
    if not approximate and key == "recall_at_10":
        return "", ""
    ok = value <= thr if op == "<=" else value >= thr
    return text, "PASS" if ok else "FAIL"


COLUMNS = [("vectors", "{:,}"), ("layout", "{}"), ("build_s", "{:.0f}"), ("file_mb", "{:.0f}"), ("load_s", "{:.2f}"),
           ("rss_mb", "{:.0f}"), ("p50_ms", "{:.2f}"), ("p95_ms", "{:.2f}"), ("recall_at_10", "{:.4f}")]


def table(rows: list[dict]) -> str:
    lines = []
    for r in rows:
        lines.append(f"== {r['layout']} over {r['vectors']:,} vectors ==")
        lines.append(f"{'metric':<34} {'value':>10}  {'target':<12} result")
        for key, label in (("build_s", "index build (s)"), ("file_mb", "index file (MB)"),
                           ("load_s", "load: read_index (s)"), ("rss_mb", "peak RSS: load + queries (MB)"),
                           ("p50_ms", "dense search p50 (ms)"), ("p95_ms", "dense search p95 (ms)"),
                           ("recall_at_10", "recall@10 vs exact")):
            fmt = dict(COLUMNS)[key]
            value = r.get(key)
            shown = fmt.format(value) if isinstance(value, (int, float)) else "—"
            target, result = verdict(key, value, r["layout"] != "flat") if value is not None else ("", "")
            lines.append(f"{label:<34} {shown:>10}  {target:<12} {result}".rstrip())
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    if argv[:1] == ["probe"]:
        ap = argparse.ArgumentParser(prog="python -m bench.ann probe")
        ap.add_argument("index", type=Path)
        ap.add_argument("queries", type=Path)
        ap.add_argument("--ef", type=int)
        ap.add_argument("--nprobe", type=int)
        a = ap.parse_args(argv[1:])
        print(json.dumps(probe(a.index, a.queries, a.ef, a.nprobe)))
        return 0
    ap = argparse.ArgumentParser(prog="python -m bench.ann", description=__doc__.split("\n")[0])
    ap.add_argument("--size", default="1m", help="the vector cache to read (bench.vectors --size)")
    ap.add_argument("--encoder", default="onnx-int8", help="the vector cache's encoder (bench.vectors --encoder)")
    ap.add_argument("--at", default="all", help="comma list of sizes to measure (e.g. 100k,250k,all)")
    ap.add_argument("--layouts", default="flat,hnsw", help="comma list of flat, hnsw, ivf")
    ap.add_argument("--ef", default="", help="HNSW efSearch values to measure (default: the setting's)")
    ap.add_argument("--nprobe", default="32,64", help="IVF nprobe values to measure")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--bench-dir", type=Path, help="cache root (env QA_BENCH_DIR, default /tmp/qa-bench)")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results-ann.json")
    args = ap.parse_args(argv)
    from qa.settings import Settings

    settings = Settings(corpus=[Path(".")], index_dir=Path("."))
    root = (args.bench_dir or bench_dir()).resolve()
    target = parse_size(args.size)
    folder = shard_dir(root, target, args.encoder)
    everything = load_vectors(root, target, args.encoder)
    if not len(everything):
        raise SystemExit(f"bench.ann: no cached vectors in {folder}; run: python -m bench.vectors build")
    queries = query_vectors(folder, args.queries)
    queries_path = folder / f"queries-{args.queries}.npy"
    sizes = sorted({len(everything) if s.strip() == "all" else min(parse_size(s), len(everything))
                    for s in args.at.split(",") if s.strip()})
    meta = {"started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "cached_vectors": len(everything), "target": target,
            "loadavg_start": os.getloadavg()[0], "queries": len(queries), "settings": settings.dense.model_dump()}
    rows = []
    (folder / "indexes").mkdir(exist_ok=True)
    for n in sizes:
        vectors = everything[:n]
        truth = exact_top(vectors, queries)
        for layout in [s.strip() for s in args.layouts.split(",") if s.strip()]:
            tag = {"flat": "flat", "hnsw": f"hnsw-m{settings.hnsw_m}-efc{settings.hnsw_ef_construction}",
                   "ivf": "ivf"}[layout]
            path = folder / "indexes" / f"{tag}-{n}.faiss"
            print(f"bench.ann: {layout} over {n} vectors", file=sys.stderr, flush=True)
            info = build_layout(vectors, layout, path, settings)
            knobs = ([("ef", int(e)) for e in args.ef.split(",") if e] or [("ef", settings.hnsw_ef_search)]
                     if layout == "hnsw" else
                     [("nprobe", int(p)) for p in args.nprobe.split(",") if p] if layout == "ivf" else [(None, None)])
            for knob, value in knobs:
                m = measure(path, queries_path, truth, **({knob: value} if knob else {}))
                name = layout if knob is None else f"{layout} {knob}={value}"
                if layout == "hnsw":
                    name = f"hnsw M={settings.hnsw_m} efC={settings.hnsw_ef_construction} efSearch={value}"
                rows.append({"vectors": n, "layout": name, **info, **m, "loadavg": os.getloadavg()[0]})
                print(table(rows[-1:]), file=sys.stderr, flush=True)
        del vectors
    print(table(rows))
    print(f"({len(everything):,} vectors cached of {target:,}; {len(queries)} questions; load average 1 min "
          f"{meta['loadavg_start']:.2f} at start, {os.getloadavg()[0]:.2f} at end; {os.cpu_count()} cores)")
    args.out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
