"""qa eval: the gold sets are valid, the metric arithmetic is right, and a small eval runs end to end."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.corpus import SQUAD_DIR
from qa.evaluate import GoldError, evaluate, load_gold, sample, summarise
from qa.models import GoldItem, ItemResult

ROOT = Path(__file__).resolve().parent.parent
SEEDS = ROOT / "seeds"
SQUAD = SQUAD_DIR  # the copy bench/ reads: $QA_BENCH_SQUAD, else ../shared beside the repository


@pytest.mark.parametrize("name", ["gold.jsonl", "heldout.jsonl"])
def test_every_evidence_is_in_its_document_and_holds_an_answer(name):
    items = load_gold(SEEDS / name)
    texts = {p.name: p.read_text(encoding="utf-8") for p in SEEDS.glob("*.txt")}
    for item in items:
        assert len(item.doc) == len(item.evidence), item.id
        for doc, ev in zip(item.doc, item.evidence):
            assert doc in texts, f"{item.id}: unknown document {doc}"
            assert ev in texts[doc], f"{item.id}: evidence not found in {doc}"
            assert any(a in ev for a in item.answers), f"{item.id}: no answer inside its evidence"


def test_gold_set_shape():
    items = load_gold(SEEDS / "gold.jsonl")
    assert len(items) >= 60
    assert {d for it in items for d in it.doc} == {p.name for p in SEEDS.glob("*.txt")}
    assert sum(not it.answerable for it in items) >= 6
    assert sum(len(it.doc) > 1 for it in items) >= 3


def _result(id, answerable, answered, hit_rank, span_hit=False, doc_recall=1.0):
    return ItemResult(id=id, question=id, answerable=answerable, answered=answered, confidence=0.5,
                      hit_rank=hit_rank, doc_recall=doc_recall if answerable else None,
                      span_hit=span_hit if answerable else None, expected=["x"] if answerable else [],
                      expected_docs=["a.txt"] if answerable else [])


def test_metric_arithmetic_on_a_hand_made_case():
    results = [
        _result("a", True, True, 1, span_hit=True),
        _result("b", True, True, 2, doc_recall=0.5),
        _result("c", True, False, 4),            # a false abstention, found at rank 4
        _result("d", True, True, None, doc_recall=0.0),
        _result("u1", False, False, None),       # correct abstention
        _result("u2", False, True, None),        # answered what it should not
    ]
    m = summarise(results)
    assert (m["answerable"], m["unanswerable"]) == (4, 2)
    assert m["hit_at_1"] == 0.25
    assert m["hit_at_3"] == 0.5
    assert m["hit_at_5"] == 0.75
    assert m["mrr_at_5"] == round((1 + 0.5 + 0.25 + 0) / 4, 4)
    assert m["doc_recall_at_5"] == round((1 + 0.5 + 1 + 0) / 4, 4)
    assert m["span_hit_at_1"] == 0.25
    assert m["abstain_precision"] == 0.5   # 2 abstentions, 1 right
    assert m["abstain_recall"] == 0.5      # 1 of 2 unanswerable
    assert m["false_abstain_rate"] == 0.25


def test_bad_gold_lines_name_their_line(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "1", "question": "q?", "answers": ["a"], "doc": ["x.txt"], "evidence": ["a"]}\n'
                   '{"id": "2", "answers": ["a"]}\n', encoding="utf-8")
    with pytest.raises(GoldError, match=r"bad.jsonl:2: question"):
        load_gold(bad)
    bad.write_text("not json\n", encoding="utf-8")
    with pytest.raises(GoldError, match=r":1:"):
        load_gold(bad)


def test_sample_is_seeded_and_keeps_order():
    items = [GoldItem(id=str(i), question=f"q{i}") for i in range(50)]
    a, b = sample(items, 10, seed=1), sample(items, 10, seed=1)
    assert [i.id for i in a] == [i.id for i in b]
    assert [int(i.id) for i in a] == sorted(int(i.id) for i in a)
    assert sample(items, None) == items


def test_unknown_documents_are_named(seed_index, seed_settings):
    items = [GoldItem(id="x", question="what army cap did Istanbul 2022 propose?", answers=["85,000"],
                      doc=["nope.txt"], evidence=["85,000"])]
    with pytest.raises(GoldError, match="nope.txt"):
        evaluate(items, seed_index, seed_settings)


def test_small_eval_end_to_end(seed_index, seed_settings):
    items = [it for it in load_gold(SEEDS / "gold.jsonl") if it.id in {"g061", "g074", "g006"}]
    report = evaluate(items, seed_index, seed_settings, gold_name="mini")
    assert report.questions == 3 and report.faithfulness == 1.0
    by_id = {r.id: r for r in report.items}
    assert by_id["g061"].hit_rank == 1          # the 85,000 cap from Istanbul 2022
    minsk = by_id["g074"]                       # Minsk 2019 is not in the corpus
    assert not minsk.answerable and minsk.right == (not minsk.answered)
    assert report.abstain_recall == float(not minsk.answered)
    answered = [r for r in report.items if r.answered]
    assert report.answered_precision == (round(sum(r.right for r in answered) / len(answered), 4) if answered else None)
    assert report.hit_at_1 == round(sum(r.hit_rank == 1 for r in report.items if r.answerable) / 2, 4)


def test_cli_eval_json_and_gate(seed_settings, tmp_path):
    gold = tmp_path / "mini.jsonl"
    lines = [l for l in (SEEDS / "gold.jsonl").read_text(encoding="utf-8").splitlines() if '"g061"' in l]
    gold.write_text("\n".join(lines) + "\n", encoding="utf-8")
    base = [sys.executable, "-m", "qa.cli", "eval", str(gold), "--corpus", str(seed_settings.corpus[0]),
            "--index-dir", str(seed_settings.index_dir)]
    out = subprocess.run(base + ["--json"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["questions"] == 1 and report["faithfulness"] == 1.0
    gated = subprocess.run(base + ["--min-hit1", "1.01"], capture_output=True, text=True, timeout=300)
    assert gated.returncode == 1 and "below" in gated.stderr


@pytest.mark.skipif(not (SQUAD / "gold.jsonl").exists(), reason="SQuAD benchmark copy not present")
def test_squad_gold_parses_in_the_same_format():
    items = load_gold(SQUAD / "gold.jsonl")
    assert len(items) > 10000 and all(it.answerable for it in items[:100])
