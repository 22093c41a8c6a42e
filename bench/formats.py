"""Mixed-format corpus: gold scores against the text-only seeds, and extraction speed per format.

    python -m bench.formats                    # ~3 min on 2 cores: two indexes, two `qa eval` runs
    python -m bench.formats --speed-only       # extraction speed alone (seconds)
    python -m bench.formats --pdf-timing       # PDF reading time against pages and lines per page (~1 min)

The five seeds become 000.html (in news-site boilerplate), 001.docx (with a table), 002.md, 003.pdf (running
header, page numbers) and 004.txt (bench/make_formats.py). The gold file's document names are mapped by stem
(003_….txt → 003_….pdf) into a copy, and `qa eval --compare --json` runs on both corpora: the same
questions, answers and settings. Extraction speed is `index.formats.extract` in-process on each seed in each
format (best of 3, CPU seconds of this process), plus the worker's start-up and first PDF once (wall time). Needs the `test` extra (reportlab, python-docx).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .corpus import REPO, SEEDS_DIR
from .make_formats import make_docx, make_epub, make_html, make_pdf

QA_BIN = Path(sys.executable).parent / "qa"
LAYOUT = {"000": ".html", "001": ".docx", "002": ".md", "003": ".pdf", "004": ".txt"}
MAKERS = {".pdf": make_pdf, ".html": make_html, ".docx": make_docx, ".epub": make_epub}
METRICS = [("hit@1", "hit_at_1"), ("hit@3", "hit_at_3"), ("hit@5", "hit_at_5"), ("MRR@5", "mrr_at_5"),
           ("doc recall@5", "doc_recall_at_5"), ("span hit@1", "span_hit_at_1"), ("span EM", "span_em"), ("span F1", "span_f1"),
           ("abstain recall", "abstain_recall"), ("false abstain", "false_abstain_rate"),
           ("faithfulness", "faithfulness")]


def make_mixed(out: Path) -> dict[str, str]:
    """Write the mixed corpus; return {seed file name: mixed file name}."""
    out.mkdir(parents=True, exist_ok=True)
    names = {}
    for seed in sorted(SEEDS_DIR.glob("*.txt")):
        suffix = LAYOUT[seed.name[:3]]
        target = out / (seed.stem + suffix)
        if suffix in MAKERS:
            MAKERS[suffix](seed.read_text(encoding="utf-8"), target)
        else:
            shutil.copyfile(seed, target)
        names[seed.name] = target.name
    return names


def map_gold(gold: Path, names: dict[str, str], out: Path) -> Path:
    """A copy of the gold file with each document name replaced by its mixed-format twin."""
    lines = []
    for line in gold.read_text(encoding="utf-8").splitlines():
        if line.strip():
            item = json.loads(line)
            item["doc"] = [names.get(d, d) for d in item.get("doc", [])]
            lines.append(json.dumps(item, ensure_ascii=False))
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return out


def run_eval(gold: Path, corpus: Path, index_dir: Path) -> list[dict]:
    r = subprocess.run([str(QA_BIN), "eval", str(gold), "--corpus", str(corpus), "--index-dir", str(index_dir),
                        "--compare", "--json"], capture_output=True, text=True, cwd=REPO,
                       env={k: v for k, v in os.environ.items() if not k.startswith("QA_")})
    if r.returncode != 0:
        raise SystemExit(f"qa eval failed on {corpus}: {r.stderr.strip().splitlines()[-1:]}")
    return json.loads(r.stdout)


def extraction_speed(work: Path, repeats: int = 3) -> dict[str, dict]:
    """Per format: ms per file (median seed), characters of text layer per second, over the five seeds."""
    from index.formats import Extractor, extract

    out = {}
    seeds = sorted(SEEDS_DIR.glob("*.txt"))
    for suffix, make in MAKERS.items():
        total_s, total_chars, total_bytes = 0.0, 0, 0
        for seed in seeds:
            path = make(seed.read_text(encoding="utf-8"), work / (seed.stem + suffix))
            best = float("inf")
            for _ in range(repeats):
                t0 = time.process_time()  # CPU time: steadier than wall time on a shared machine
                text = extract(path).text
                best = min(best, time.process_time() - t0)
            total_s += best
            total_chars += len(text)
            total_bytes += path.stat().st_size
        out[suffix[1:]] = {"files": len(seeds), "ms_per_file": round(1000 * total_s / len(seeds), 1),
                           "chars_per_s": round(total_chars / total_s), "mb_per_s": round(total_bytes / total_s / 1e6, 2)}
    t0 = time.perf_counter()
    with Extractor() as ex:
        ex.read(work / (seeds[0].stem + ".pdf"))
    out["worker_first_file_s"] = round(time.perf_counter() - t0, 2)
    return out


SENTENCE = ("the negotiators met again in istanbul on the third day and the delegation agreed to report every "
            "figure to the capital before the next round of talks began in earnest, ")  # lower case: every page
#                                                           continues the paragraph of the page before


def make_flowing_pdf(out: Path, pages: int, lines_per_page: int = 50, font_size: float = 10.0) -> Path:
    """A PDF of `pages` pages of one paragraph flowing from page to page (no blank line, no page ends a sentence):
    the case whose layout was quadratic in pages. With many lines on a tall page: the dense-page case."""
    from reportlab.pdfgen import canvas

    leading = font_size * 1.2
    height = max(792.0, 72 + lines_per_page * leading + 72)
    c = canvas.Canvas(str(out), pagesize=(612, height))
    words = SENTENCE.split()
    k = 0
    for _ in range(pages):
        c.setFont("Helvetica", font_size)
        y = height - 72
        for _ in range(lines_per_page):
            line = []
            while len(" ".join(line)) < 80:
                line.append(words[k % len(words)])
                k += 1
            c.drawString(72, y, " ".join(line))
            y -= leading
        c.showPage()
    c.save()
    return out


def pdf_timing(work: Path) -> list[dict]:
    """Seconds `index.formats.extract` takes on flowing PDFs of 100, 400 and 1,600 pages and on one dense page of
    5,000 and 10,000 lines (wall time, in-process)."""
    from index import formats

    rows = []
    for pages, lines in ((100, 50), (400, 50), (1600, 50), (1, 5000), (1, 10000)):
        path = make_flowing_pdf(work / f"flow-{pages}-{lines}.pdf", pages, lines)
        t0 = time.perf_counter()
        text = formats.extract(path).text
        rows.append({"pages": pages, "lines_per_page": lines, "seconds": round(time.perf_counter() - t0, 2),
                     "chars": len(text)})
        print(f"  {pages:5} pages x {lines:6,} lines: {rows[-1]['seconds']:7.2f} s ({len(text):,} characters)",
              flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.formats", description=__doc__.splitlines()[0])
    parser.add_argument("--gold", type=Path, default=SEEDS_DIR / "gold.jsonl")
    parser.add_argument("--speed-only", action="store_true")
    parser.add_argument("--out", type=Path, help="write the figures as JSON here")
    parser.add_argument("--pdf-timing", action="store_true", help="PDF reading time against pages and lines only")
    args = parser.parse_args(argv)
    results: dict = {}
    if args.pdf_timing:
        with tempfile.TemporaryDirectory(prefix="qa-pdf-timing-") as tmp:
            print("PDF reading time (formats.extract, wall):")
            results["pdf_timing"] = pdf_timing(Path(tmp))
        if args.out:
            args.out.write_text(json.dumps(results, indent=1), encoding="utf-8")
        return 0
    with tempfile.TemporaryDirectory(prefix="qa-formats-") as tmp:
        work = Path(tmp)
        (work / "speed").mkdir()
        results["extraction"] = extraction_speed(work / "speed")
        print("extraction (in-process CPU time, best of 3, five seeds each):")
        for fmt, r in results["extraction"].items():
            if isinstance(r, dict):
                print(f"  {fmt:5} {r['ms_per_file']:7.1f} ms/file  {r['chars_per_s']:>10,} chars/s  "
                      f"{r['mb_per_s']:6.2f} MB/s")
        print(f"  worker start-up + first PDF: {results['extraction']['worker_first_file_s']} s")
        if not args.speed_only:
            text_corpus = work / "text"
            text_corpus.mkdir()
            for seed in SEEDS_DIR.glob("*.txt"):
                shutil.copyfile(seed, text_corpus / seed.name)
            names = make_mixed(work / "mixed")
            gold = map_gold(args.gold, names, work / "gold-mixed.jsonl")
            text = run_eval(args.gold, text_corpus, work / "index-text")
            mixed = run_eval(gold, work / "mixed", work / "index-mixed")
            results["eval"] = {"text": text, "mixed": mixed, "layout": names}
            configs = [r["config"]["mode"] + ("+rerank" if r["config"]["rerank"] else "")
                       + ("+reader" if r["config"].get("reader") else "") for r in text]
            print(f"\n{'':16}" + "".join(f"{c:>22}" for c in configs) + "   (text-only / mixed formats)")
            for label, key in METRICS:
                cells = []
                for t, m in zip(text, mixed):
                    a, b = t.get(key), m.get(key)
                    cells.append("      n/a" if a is None or b is None else f"{a:.3f} / {b:.3f}")
                print(f"{label:16}" + "".join(f"{c:>22}" for c in cells))
            delta = mixed[-1]["hit_at_1"] - text[-1]["hit_at_1"]
            print(f"\n{configs[-1]} hit@1 mixed - text = {delta:+.3f}; unfaithful: {mixed[-1]['unfaithful'][:5]}")
    if args.out:
        args.out.write_text(json.dumps(results, indent=1, ensure_ascii=False), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
