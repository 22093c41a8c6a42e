"""`qa eval`: run gold questions through the same answer() users get, and score retrieval, answers and faithfulness."""
from __future__ import annotations

import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from .errors import GoldError, PartialFailure
from .confidence import reliability
from .models import Answer, EvalReport, GoldItem, ItemResult
from .span_metrics import exact_match, f1, normalise

K = 5
M = TypeVar("M", bound=BaseModel)
__all__ = ["GoldError", "evaluate", "gold_warnings", "load_gold", "sample", "summarise"]


def gold_records(path: Path, model: type[M]) -> Iterator[tuple[int, M]]:
    """(line number, record) for each non-blank line of a gold JSONL file, validated as `model`; an unreadable file
    or a bad line is a GoldError naming the file and the line."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise GoldError(f"no such gold file: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise GoldError(f"cannot read gold file {path}: {exc}") from None
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            yield n, model.model_validate_json(line)
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(map(str, err["loc"])) or "line"
            raise GoldError(f"{path}:{n}: {where}: {err['msg']}") from None


def load_gold(path: Path, line_of: dict[str, int] | None = None) -> list[GoldItem]:
    """Parse and validate a gold JSONL file; any bad line is an error naming its number (nothing is dropped).

    `line_of`, when given, receives each item's line number by id, for later messages.
    """
    items, seen = [], set()
    for n, item in gold_records(path, GoldItem):
        if len(item.doc) != len(item.evidence) and item.evidence:
            raise GoldError(f"{path}:{n}: {len(item.doc)} docs but {len(item.evidence)} evidence strings")
        if item.answers and not item.doc:
            raise GoldError(f"{path}:{n}: answerable item without a supporting doc")
        if item.id in seen:
            raise GoldError(f"{path}:{n}: duplicate id {item.id!r}")
        seen.add(item.id)
        items.append(item)
        if line_of is not None:
            line_of[item.id] = n
    if not items:
        raise GoldError(f"{path}: no questions")
    return items


def sample(items: list[GoldItem], limit: int | None, seed: int = 0) -> list[GoldItem]:
    """A seeded random sample, kept in file order, so --limit runs are repeatable."""
    if limit is None or limit >= len(items):
        return items
    chosen = set(random.Random(seed).sample(range(len(items)), limit))
    return [it for i, it in enumerate(items) if i in chosen]


def contains_answer(text: str | None, answers: list[str]) -> bool:
    if not text:
        return False
    t = normalise(text)
    return any(normalise(a) in t for a in answers if a.strip())


def score_item(item: GoldItem, ans: Answer) -> ItemResult:
    """Judge one answer: rank of the first counting passage, doc recall, span hit, abstention."""
    top = ans.passages[:K]
    hit_rank = None
    doc_recall = span_hit = span_em = span_f1 = None
    if item.answerable:
        for p in top:
            if p.citation.doc in item.doc and contains_answer(p.text, item.answers):
                hit_rank = p.rank
                break
        docs = {p.citation.doc for p in top}
        doc_recall = sum(d in docs for d in set(item.doc)) / len(set(item.doc))
        span_hit = bool(top) and contains_answer(top[0].answer, item.answers)
        span_em = exact_match(top[0].answer if top else None, item.answers)
        span_f1 = f1(top[0].answer if top else None, item.answers)
    first = top[0] if top else None
    right = bool(item.answerable and first and first.citation.doc in item.doc
                 and contains_answer(first.answer, item.answers))
    return ItemResult(
        id=item.id, question=item.question, answerable=item.answerable, answered=ans.answered,
        confidence=ans.confidence, hit_rank=hit_rank, doc_recall=doc_recall, span_hit=span_hit,
        span_em=span_em, span_f1=span_f1, expected=item.answers, expected_docs=item.doc,
        got=(first.answer or first.text) if first else None,
        got_citation=f"{first.citation.doc}:{first.citation.line_start}" if first else None,
        right=right, disagreement=ans.disagreement, conflict=item.conflict,
    )


def summarise(results: list[ItemResult]) -> dict:
    """The report's metrics from per-question results (pure arithmetic; errors count as misses)."""
    answerable = [r for r in results if r.answerable]
    unanswerable = [r for r in results if not r.answerable]
    n = len(answerable)

    def frac(xs) -> float:
        return round(sum(xs) / n, 4) if n else 0.0

    abstained = [r for r in results if not r.answered]
    correct_abstentions = sum(1 for r in abstained if not r.answerable)
    answered = [r for r in results if r.answered and not r.error]
    scored = [r for r in results if not r.error]
    ece, table = reliability([r.confidence for r in scored], [r.right and r.answered for r in scored])
    right_answers = [r for r in answered if r.right]
    flagged = [r for r in answered if r.disagreement]
    conflicts = [r for r in answered if r.conflict]
    return {
        "questions": len(results),
        "answerable": n,
        "unanswerable": len(unanswerable),
        "hit_at_1": frac(r.hit_rank == 1 for r in answerable),
        "hit_at_3": frac(r.hit_rank is not None and r.hit_rank <= 3 for r in answerable),
        "hit_at_5": frac(r.hit_rank is not None and r.hit_rank <= 5 for r in answerable),
        "mrr_at_5": frac((1 / r.hit_rank) if r.hit_rank else 0.0 for r in answerable),
        "doc_recall_at_5": frac(r.doc_recall or 0.0 for r in answerable),
        "span_hit_at_1": frac(bool(r.span_hit) for r in answerable),
        "span_em": frac(r.span_em or 0.0 for r in answerable),
        "span_f1": frac(r.span_f1 or 0.0 for r in answerable),
        "abstain_precision": round(correct_abstentions / len(abstained), 4) if abstained else None,
        "abstain_recall": round(correct_abstentions / len(unanswerable), 4) if unanswerable else None,
        "false_abstain_rate": frac(not r.answered for r in answerable),
        "answered_precision": round(len(right_answers) / len(answered), 4) if answered else None,
        "ece": ece if scored else None,
        "reliability": table if scored else [],
        "false_conflict_rate": round(sum(1 for r in right_answers if r.disagreement and not r.conflict)
                                     / len(right_answers), 4) if right_answers else None,
        "conflict_precision": round(sum(1 for r in flagged if r.conflict) / len(flagged), 4) if flagged else None,
        "conflict_recall": round(sum(1 for r in conflicts if r.disagreement) / len(conflicts), 4)
        if conflicts else None,
        "errors": sum(1 for r in results if r.error),
    }


def check_faithfulness(ans: Answer, index, cache: dict[str, str]) -> list[str]:
    """Citations whose offsets do not reproduce the passage (or span) from the original file or its text layer."""
    bad = []
    for p in ans.passages:
        doc = p.citation.doc
        if doc not in cache:
            try:
                cache[doc] = index.text(doc)
            except (OSError, UnicodeDecodeError):
                cache[doc] = ""
        text = cache[doc]
        ok = text[p.citation.start:p.citation.end] == p.text
        if p.answer is not None:
            ok = ok and text[p.answer_start:p.answer_end] == p.answer
        if not ok:
            bad.append(f"{doc}:{p.citation.start}-{p.citation.end}")
    return bad


def _where(gold_name: str, lines: dict[str, int] | None, item: GoldItem) -> str:
    n = (lines or {}).get(item.id)
    return f"{gold_name}:{n}" if n else f"{gold_name} (id {item.id})"


def gold_warnings(items: list[GoldItem], index, gold_name: str = "gold",
                  lines: dict[str, int] | None = None) -> list[str]:
    """Evidence strings that their document does not contain, one message each naming the gold line."""
    out = []
    cache: dict[str, str] = {}
    for item in items:
        for doc, evidence in zip(item.doc, item.evidence):
            if doc not in cache:
                try:
                    cache[doc] = normalise(index.text(doc))
                except (OSError, UnicodeDecodeError):
                    cache[doc] = ""
            if evidence.strip() and normalise(evidence) not in cache[doc]:
                out.append(f"{_where(gold_name, lines, item)}: evidence not found in {doc}: "
                           f"{' '.join(evidence.split())[:60]!r}")
    return out


def evaluate(items: list[GoldItem], index, settings, gold_name: str = "gold",
             lines: dict[str, int] | None = None) -> EvalReport:
    """Answer every gold question with answer() and score the results."""
    from .answering import answer
    from .errors import QAError

    known = {f.doc for f in index.manifest.files if f.skipped is None}
    for item in items:
        missing = [d for d in item.doc if d not in known]
        if missing:
            raise GoldError(f"{_where(gold_name, lines, item)}: document {missing[0]!r} is not in the corpus "
                            f"{index.manifest.corpus_root} (id {item.id})")
    results: list[ItemResult] = []
    unfaithful: list[str] = []
    passages_checked = 0
    cache: dict[str, str] = {}
    t0 = time.perf_counter()
    for item in items:
        try:
            ans = answer(item.question, index, settings)
        except QAError as exc:
            results.append(ItemResult(id=item.id, question=item.question, answerable=item.answerable, answered=False,
                                      confidence=0.0, hit_rank=None, expected=item.answers,
                                      expected_docs=item.doc, error=str(exc)))
            continue
        results.append(score_item(item, ans))
        passages_checked += len(ans.passages)
        unfaithful += check_faithfulness(ans, index, cache)
    seconds = time.perf_counter() - t0
    config = {"mode": settings.mode, "rerank": settings.rerank, "fusion": settings.fusion,
              "dense_weight": settings.dense_weight, "candidates": settings.candidates,
              "rerank_candidates": settings.rerank_candidates,
              "rerank_dense_nominees": settings.rerank_dense_nominees,
              "rerank_cover_nominees": settings.rerank_cover_nominees, "chunk_max_chars": settings.chunk_max_chars,
              "chunk_overlap_sentences": settings.chunk_overlap_sentences, "top_k": settings.top_k,
              "reader": reads(settings), "span_threshold": settings.span_threshold,
              "reread_sentence": settings.reread_sentence,
              "abstain_below": answer_threshold(settings) if reads(settings)
              else settings.abstain_below if settings.rerank else settings.abstain_below_no_rerank}
    return EvalReport(
        gold=gold_name, config=config, **summarise(results),
        faithfulness=round(1 - len(unfaithful) / passages_checked, 4) if passages_checked else 1.0,
        unfaithful=unfaithful[:50],
        questions_per_second=round(len(items) / seconds, 2) if seconds > 0 else 0.0,
        seconds=round(seconds, 2), items=results,
    )


def reads(settings) -> bool:
    """Whether answer() runs the trained reader with these settings."""
    from .read import reader_installed

    return settings.rerank and settings.reader and reader_installed()


def answer_threshold(settings) -> float:
    """The calibrated confidence an answer must reach with these settings (reader on)."""
    from .answering import load_confidence_model

    return settings.answer_threshold if settings.answer_threshold is not None else load_confidence_model().threshold


def compare_configs(settings) -> list:
    """The --compare columns: each retriever alone, hybrid, + cross-encoder, + reader (when installed)."""
    configs = [settings.model_copy(update={"mode": "bm25", "rerank": False}),
               settings.model_copy(update={"mode": "dense", "rerank": False}),
               settings.model_copy(update={"mode": "hybrid", "rerank": False}),
               settings.model_copy(update={"mode": "hybrid", "rerank": True, "reader": False})]
    if reads(settings.model_copy(update={"rerank": True, "reader": True})):
        configs.append(settings.model_copy(update={"mode": "hybrid", "rerank": True, "reader": True}))
    return configs


def label(report: EvalReport) -> str:
    c = report.config
    return c["mode"] + ("+rerank" if c["rerank"] else "") + ("+reader" if c.get("reader") else "")


def format_table(reports: list[EvalReport]) -> str:
    """Metrics side by side, one column per configuration."""
    rows = [("hit@1", "hit_at_1"), ("hit@3", "hit_at_3"), ("hit@5", "hit_at_5"), ("MRR@5", "mrr_at_5"),
            ("doc recall@5", "doc_recall_at_5"), ("span hit@1", "span_hit_at_1"),
            ("span EM", "span_em"), ("span F1", "span_f1"),
            ("abstain precision", "abstain_precision"), ("abstain recall", "abstain_recall"),
            ("false abstain", "false_abstain_rate"), ("answered precision", "answered_precision"),
            ("ECE", "ece"), ("false conflict", "false_conflict_rate"), ("conflict precision", "conflict_precision"),
            ("conflict recall", "conflict_recall"), ("faithfulness", "faithfulness"),
            ("questions/s", "questions_per_second")]
    names = [label(r) for r in reports]
    width = max(12, *(len(n) for n in names))
    out = [f"{'':<18}" + "".join(f"{n:>{width + 2}}" for n in names)]
    for title, key in rows:
        cells = []
        for r in reports:
            v = getattr(r, key)
            cells.append(f"{'—' if v is None else (f'{v:.1f}' if key == 'questions_per_second' else f'{v:.3f}'):>{width + 2}}")
        out.append(f"{title:<18}" + "".join(cells))
    return "\n".join(out)


def format_reliability(report: EvalReport) -> str:
    """The confidence's reliability table: per bin, how many questions and how often the shown answer was right."""
    out = [f"reliability ({label(report)}; ECE {report.ece:.3f}): bin, questions, mean confidence, share right"]
    for row in report.reliability:
        if row["count"]:
            out.append(f"  {row['bin']}  {row['count']:6d}  {row['confidence']:.3f}  {row['accuracy']:.3f}")
    return "\n".join(out)


def format_misses(report, limit: int) -> str:
    """The questions (or conversation turns) that missed, with what was searched when a follow-up was rewritten."""
    misses = [r for r in report.items
              if r.error or (r.answerable and (r.hit_rank != 1 or not r.answered)) or (not r.answerable and r.answered)]
    if not misses:
        return "misses: none"
    out = [f"misses ({len(misses)}{', first ' + str(limit) if len(misses) > limit else ''}):"]
    for r in misses[:limit]:
        if r.error:
            why = f"error: {r.error}"
        elif not r.answerable:
            why = "should abstain"
        elif not r.answered:
            why = f"abstained (confidence {r.confidence:.2f})" + ("" if r.hit_rank == 1 else f"; hit at {r.hit_rank}")
        else:
            why = f"hit at {r.hit_rank}" if r.hit_rank else "not in top 5"
        got = " ".join((r.got or "").split())
        got = got if len(got) <= 90 else got[:87] + "…"
        query = getattr(r, "query", None)
        searched = f"\n    searched: {query}" if query else ""
        out.append(f"- [{r.id}] {r.question}{searched}\n    expected {r.expected or 'abstain'} in "
                   f"{r.expected_docs or '-'}; {why}\n    first: {got!r} ({r.got_citation})")
    return "\n".join(out)


def reports_json(reports: list[BaseModel]) -> str:
    """`qa eval --json`: one report as an object, several (--compare) as a list."""
    import json

    payload = reports[0].model_dump() if len(reports) == 1 else [r.model_dump() for r in reports]
    return json.dumps(payload, ensure_ascii=False, indent=1)


def check_min_hit1(what: str, value: float, minimum: float | None) -> None:
    """`--min-hit1`: a PartialFailure (exit 1) when the gated hit@1 is below the minimum."""
    if minimum is not None and value < minimum:
        raise PartialFailure(f"{what} {value:.3f} is below --min-hit1 {minimum}")
