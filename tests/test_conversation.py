"""Conversations end to end: `qa ask --conversation` and `qa eval` on seeds/conversations.jsonl, real models."""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from conftest import SAMPLE_QUESTION, run_qa

from qa.conversation import ConversationReport, format_conversation_report, load_conversations
from qa.models import Answer

ROOT = Path(__file__).resolve().parent.parent
CONVERSATIONS = ROOT / "seeds" / "conversations.jsonl"
ARMY_DOCS = {"000_a5367d4183c4154e.txt", "003_341094064a9670fe.txt"}


@pytest.fixture(scope="module")
def prepared(seed_index, seed_corpus, seed_settings, tmp_path_factory):
    cache = tmp_path_factory.mktemp("conversation-cache")
    return ["--corpus", str(seed_corpus), "--index-dir", str(seed_settings.index_dir)], cache


def test_conversation_gold_is_written_from_the_documents():
    convs = load_conversations(CONVERSATIONS)
    texts = {p.name: p.read_text(encoding="utf-8") for p in (ROOT / "seeds").glob("*.txt")}
    assert len(convs) >= 25
    assert all(2 <= len(c.turns) <= 4 for c in convs)
    for turn in (t for c in convs for t in c.turns):
        for doc, ev in zip(turn.doc, turn.evidence, strict=True):
            assert ev in texts[doc], f"{turn.id}: evidence not in {doc}"
            assert any(a in ev for a in turn.answers), f"{turn.id}: no answer inside its evidence"
    kinds = Counter(t.kind for c in convs for t in c.turns if t.followup)
    for kind in ("pronoun", "person", "place", "new_subject", "what_about", "ellipsis", "missing_subject"):
        assert kinds[kind] >= 2, kind
    after_a_topic = [t for c in convs for t in c.turns[1:] if not t.followup]
    assert len(after_a_topic) >= 8 and sum(not t.answers for t in after_a_topic) >= 2
    readme = [t.question for t in convs[0].turns[:3]]
    assert readme == [SAMPLE_QUESTION, "and what did the US plan propose?", "who drafted it?"]


def test_ask_conversation_json_follows_the_thread_and_a_blank_line_starts_over(prepared):
    args, cache = prepared
    stdin = (f"{SAMPLE_QUESTION}\nand what did the US plan propose?\nwho drafted it?\n"
             "\nwho drafted it?\nwhat is the capital of Peru?\n")
    proc = run_qa(["ask", "--conversation", "--json", *args], cache, stdin=stdin)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    replies = [Answer.model_validate_json(line) for line in proc.stdout.strip().split("\n")]
    assert [r.question for r in replies] == [SAMPLE_QUESTION, "and what did the US plan propose?",
                                            "who drafted it?", "who drafted it?", "what is the capital of Peru?"]
    first, us_plan, drafted, alone, peru = replies
    assert first.query is None and "85,000" in first.answer

    assert us_plan.query == "what army cap did the US plan propose?"  # the intent kept, the subject replaced
    top = us_plan.passages[0]
    assert top.citation.doc in ARMY_DOCS and ("800,000" in top.text or "600,000" in top.text)
    assert "800,000" in us_plan.answer or "600,000" in us_plan.answer  # not Istanbul's 85,000 again

    assert drafted.query == "who drafted the US plan?"  # "it" is the plan of the turn before
    assert any("Witkoff" in p.text for p in drafted.passages)

    assert alone.query is None  # after the blank line nothing came before it
    assert peru.query is None and not peru.answered  # self-contained: searched as typed, and not in the seeds


def test_ask_conversation_text_shows_what_was_searched(prepared):
    args, cache = prepared
    proc = run_qa(["ask", "--conversation", *args], cache,
                  stdin=f"{SAMPLE_QUESTION}\nwhat about Russia?\n")
    assert proc.returncode == 0, proc.stderr
    assert "searched: what army cap did Russia propose?" in proc.stdout.splitlines()
    assert proc.stdout.count("searched:") == 1


def test_ask_conversation_takes_its_questions_from_stdin(prepared):
    args, cache = prepared
    proc = run_qa(["ask", "--conversation", SAMPLE_QUESTION, *args], cache)
    assert proc.returncode == 2
    err = proc.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("qa: error: --conversation reads the questions from stdin")


@pytest.mark.slow  # ~40 s: 83 questions through the reranker
def test_eval_scores_follow_ups_separately_and_never_expands_a_self_contained_question(prepared):
    args, cache = prepared
    proc = run_qa(["eval", str(CONVERSATIONS), "--json", *args], cache, timeout=600)
    assert proc.returncode == 0, proc.stderr
    report = ConversationReport.model_validate(json.loads(proc.stdout))
    assert report.conversations >= 25
    assert report.self_contained_changed == []
    assert report.followup["hit_at_1"] >= 0.85, format_conversation_report(report)
    assert report.followup["hit_at_3"] >= 0.9
    assert report.followup["answerable"] >= 30 and report.self_contained["answerable"] >= 30
    assert report.faithfulness == 1.0
    # the off-corpus questions asked mid-conversation are abstained on, unexpanded
    off_topic = [r for r in report.items if not r.answerable and not r.followup]
    assert off_topic and all(not r.answered and r.query is None for r in off_topic)
    text = format_conversation_report(report)
    assert f"self-contained questions changed by expansion: 0 of {sum(not r.followup for r in report.items)}" in text
    assert text.splitlines()[0].split()[2].startswith("follow-ups")


def test_eval_rejects_a_conversation_that_starts_with_a_follow_up(tmp_path, prepared):
    args, cache = prepared
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"id": "x", "turns": [{"id": "x.1", "question": "and him?", "followup": True}]}) + "\n",
                   encoding="utf-8")
    proc = run_qa(["eval", str(bad), *args], cache)
    assert proc.returncode == 2
    err = proc.stderr.strip().splitlines()
    assert len(err) == 1 and "a first turn cannot be a follow-up" in err[0]
