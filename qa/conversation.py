"""Conversations: answer each line with its follow-up resolved (qa.followup), and score conversation gold files.

A conversation gold file (`seeds/conversations.jsonl`) holds one conversation per line:
    {"id": "c01", "topic": "...", "turns": [{"id": "c01.1", "question": "...", "answers": [...], "doc": [...],
      "evidence": [...], "followup": false, "kind": "first"}, ...]}
Each turn carries the fields of a `qa eval` gold question, plus whether it leans on the turns before it.
"""
from __future__ import annotations

import time
from pathlib import Path

from pydantic import BaseModel, Field

from .evaluate import GoldError, check_faithfulness, gold_records, format_misses, label, sample, score_item, summarise
from .followup import Turn, index_idf, resolve
from .models import Answer, GoldItem, ItemResult


class GoldTurn(GoldItem):
    """One turn of a gold conversation: a gold question that may lean on the turns before it."""

    followup: bool = False
    kind: str | None = Field(default=None, description="first, self_contained, topic_switch, or how it follows up")


class GoldConversation(BaseModel):
    """A gold conversation: its turns in order."""

    id: str
    topic: str | None = None
    turns: list[GoldTurn] = Field(min_length=1)


class TurnResult(ItemResult):
    """How one conversation turn fared, with what was searched for it."""

    conversation: str
    followup: bool
    kind: str | None = None
    query: str | None = Field(default=None, description="what was searched, when it differs from the question")


class ConversationReport(BaseModel):
    """Metrics over all turns, over follow-up turns and over self-contained turns of a conversation gold set."""

    gold: str
    config: dict
    conversations: int
    turns: int
    all: dict
    followup: dict
    self_contained: dict
    self_contained_changed: list[str] = Field(description="self-contained turns whose search was changed")
    followups_unchanged: list[str] = Field(description="follow-up turns searched exactly as typed")
    faithfulness: float
    questions_per_second: float
    seconds: float
    items: list[TurnResult] = Field(default_factory=list)


class Conversation:
    """One conversation over an index: each question is searched as resolved against the turns before it."""

    def __init__(self, index, settings, idf=None) -> None:
        self.index = index
        self.settings = settings
        self.idf = idf if idf is not None else index_idf(index)
        self.turns: list[Turn] = []

    def ask(self, question: str) -> Answer:
        """Answer question as the next turn (its `query` says what was searched when it was resolved)."""
        from .answering import answer

        question = question.strip()
        resolution = resolve(question, self.turns, self.idf)
        reply = answer(question, self.index, self.settings,
                       query=resolution.query if resolution.query != question else None)
        self.turns.append(Turn.from_answer(question, reply))
        return reply

    def reset(self) -> None:
        """Start a new conversation."""
        self.turns = []


def is_conversation_file(path: Path) -> bool:
    """Whether a gold file holds conversations (its first record has "turns")."""
    try:
        with path.open(encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    return '"turns"' in line
    except (OSError, UnicodeDecodeError):
        return False
    return False


def load_conversations(path: Path) -> list[GoldConversation]:
    """Parse and validate a conversation gold file; any bad line is an error naming its number."""
    out: list[GoldConversation] = []
    seen: set[str] = set()
    for n, conv in gold_records(path, GoldConversation):
        for turn in conv.turns:
            if turn.evidence and len(turn.doc) != len(turn.evidence):
                raise GoldError(f"{path}:{n}: {turn.id}: {len(turn.doc)} docs but {len(turn.evidence)} evidence strings")
            if turn.answers and not turn.doc:
                raise GoldError(f"{path}:{n}: {turn.id}: answerable turn without a supporting doc")
            if turn.id in seen:
                raise GoldError(f"{path}:{n}: duplicate id {turn.id!r}")
            seen.add(turn.id)
        if conv.turns[0].followup:
            raise GoldError(f"{path}:{n}: {conv.turns[0].id}: a first turn cannot be a follow-up")
        out.append(conv)
    if not out:
        raise GoldError(f"{path}: no conversations")
    return out


def evaluate_conversations(convs: list[GoldConversation], index, settings, gold_name: str = "conversations",
                           idf=None) -> ConversationReport:
    """Answer every conversation turn by turn (each follow-up resolved against the answers actually given)."""
    from .answering import QAError

    known = {f.doc for f in index.manifest.files}
    unknown = sorted({d for c in convs for t in c.turns for d in t.doc if d not in known})
    if unknown:
        raise GoldError(f"gold names documents not in the corpus: {', '.join(unknown[:5])}")
    idf = idf if idf is not None else index_idf(index)
    results: list[TurnResult] = []
    unfaithful: list[str] = []
    checked = 0
    cache: dict[str, str] = {}
    t0 = time.perf_counter()
    for conv in convs:
        talk = Conversation(index, settings, idf)
        for turn in conv.turns:
            extra = {"conversation": conv.id, "followup": turn.followup, "kind": turn.kind}
            try:
                reply = talk.ask(turn.question)
            except QAError as exc:
                results.append(TurnResult(id=turn.id, question=turn.question, answerable=turn.answerable,
                                          answered=False, confidence=0.0, hit_rank=None, expected=turn.answers,
                                          expected_docs=turn.doc, error=str(exc), **extra))
                continue
            scored = score_item(turn, reply)
            results.append(TurnResult(**scored.model_dump(), query=reply.query, **extra))
            checked += len(reply.passages)
            unfaithful += check_faithfulness(reply, index, cache)
    seconds = time.perf_counter() - t0
    followups = [r for r in results if r.followup]
    alone = [r for r in results if not r.followup]
    config = {"mode": settings.mode, "rerank": settings.rerank, "reader": settings.rerank and settings.reader,
              "top_k": settings.top_k}
    return ConversationReport(
        gold=gold_name, config=config, conversations=len(convs), turns=len(results),
        all=summarise(results), followup=summarise(followups), self_contained=summarise(alone),
        self_contained_changed=[r.id for r in alone if r.query],
        followups_unchanged=[r.id for r in followups if not r.query],
        faithfulness=round(1 - len(unfaithful) / checked, 4) if checked else 1.0,
        questions_per_second=round(len(results) / seconds, 2) if seconds > 0 else 0.0,
        seconds=round(seconds, 2), items=results,
    )


ROWS = [("hit@1", "hit_at_1"), ("hit@3", "hit_at_3"), ("hit@5", "hit_at_5"), ("MRR@5", "mrr_at_5"),
        ("span hit@1", "span_hit_at_1"), ("abstain precision", "abstain_precision"),
        ("abstain recall", "abstain_recall"), ("false abstain", "false_abstain_rate")]


def format_conversation_report(report: ConversationReport, misses: int | None = 20) -> str:
    """Follow-up turns next to self-contained ones and all turns, then the expansion checks and the misses."""
    n_follow = sum(r.followup for r in report.items)
    n_alone = report.turns - n_follow
    cols = [(f"follow-ups ({report.followup['answerable']})", report.followup),
            (f"self-contained ({report.self_contained['answerable']})", report.self_contained),
            (f"all ({report.all['answerable']})", report.all)]
    width = max(len(c[0]) for c in cols) + 2
    out = [f"{'answerable turns':<18}" + "".join(f"{name:>{width}}" for name, _ in cols)]
    for title, key in ROWS:
        cells = []
        for _, m in cols:
            v = m.get(key)
            cells.append(f"{'—' if v is None else f'{v:.3f}':>{width}}")
        out.append(f"{title:<18}" + "".join(cells))
    out.append(f"{'faithfulness':<18}{report.faithfulness:>{width}.3f}")
    out.append("")
    out.append(f"self-contained questions changed by expansion: {len(report.self_contained_changed)} of {n_alone}"
               + (f" ({', '.join(report.self_contained_changed)})" if report.self_contained_changed else ""))
    out.append(f"follow-ups searched as typed: {len(report.followups_unchanged)} of {n_follow}"
               + (f" ({', '.join(report.followups_unchanged)})" if report.followups_unchanged else ""))
    if misses is None:
        return "\n".join(out)
    out.append("")
    out.append(format_misses(report, misses))
    return "\n".join(out)


def run_conversation_eval(args, settings, warn=None) -> int:
    """`qa eval CONVERSATIONS.jsonl`: load, answer, print, gate --min-hit1 on follow-up hit@1.

    Bad input raises GoldError and a corpus that cannot be read CorpusError; the CLI reports either as one line.
    """
    from .answering import open_index
    from .evaluate import check_min_hit1, compare_configs, reports_json

    if args.limit is not None and args.limit < 1:
        raise GoldError("--limit must be at least 1")
    convs = sample(load_conversations(args.gold), args.limit, args.seed)
    index = open_index(settings, warn=warn)
    configs = compare_configs(settings) if args.compare else [settings]
    reports = [evaluate_conversations(convs, index, cfg, gold_name=str(args.gold)) for cfg in configs]
    if args.json:
        print(reports_json(reports))
    else:
        r0 = reports[0]
        print(f"{args.gold}: {r0.conversations} conversations, {r0.turns} turns "
              f"({sum(r.followup for r in r0.items)} follow-ups), corpus {index.manifest.corpus_root}")
        for r in reports:
            print(f"\n{label(r)}:")
            print(format_conversation_report(r, args.misses if r is reports[-1] else None))
    check_min_hit1("follow-up hit@1", reports[-1].followup["hit_at_1"], args.min_hit1)
    return 0


__all__ = ["Conversation", "ConversationReport", "GoldConversation", "GoldTurn", "TurnResult",
           "evaluate_conversations", "format_conversation_report", "is_conversation_file", "load_conversations",
           "run_conversation_eval"]
