"""The reader: its span search (pure), its training script (a few real steps), and the shipped model's spans."""
from __future__ import annotations

import gzip
import json
import random

import numpy as np
import pytest

from qa.read import best_span, rescore_in_sentences, trim_span


def test_best_span_stays_inside_one_sentence():
    # tokens 1..4: "ab" "cd" | "ef" "gh" (two sentences); the best unconstrained pair would cross the boundary
    offsets = [(0, 0), (0, 2), (3, 5), (7, 9), (10, 12)]
    start = np.array([0.0, 1.0, 5.0, 0.0, 0.0])
    end = np.array([0.0, 0.0, 0.0, 6.0, 1.0])
    span = best_span(start, end, offsets, range(1, 5), [(0, 6), (7, 12)])
    assert span is not None
    s, e, score = span
    assert (s, e) in {(3, 5), (7, 9)}, "a span may not cross the sentence boundary"
    assert (s, e) == (7, 9)  # end 6 + start 0 beats 5 + 0


def test_best_span_respects_the_length_limit():
    offsets = [(0, 0)] + [(2 * i, 2 * i + 1) for i in range(40)]
    start = np.zeros(41)
    end = np.zeros(41)
    start[1], end[40] = 10.0, 10.0
    s, e, _ = best_span(start, end, offsets, range(1, 41), [(0, 100)], max_answer_tokens=5)
    assert e - s <= 2 * 5


def test_rereading_the_sentence_outvotes_the_passage_pull_and_keeps_other_sentences():
    # passage: "Lee wrote it with Kim Park. Park won." -- sentence 0 is (0, 27); the passage reading prefers Kim Park
    passage = ((18, 26, 9.0), (0, 3, 8.0), (28, 32, 5.0))
    alone = ((0, 3, 9.5), (18, 26, 7.0))  # the sentence alone prefers Lee (offsets local to the sentence)
    spans = rescore_in_sentences(passage, [(0, 27, alone)])
    assert spans[0][:2] == (0, 3) and spans[0][2] == pytest.approx(8.75)  # (8.0 + 9.5) / 2 beats (9.0 + 7.0) / 2
    assert spans[1][:2] == (18, 26)
    assert spans[-1] == (28, 32, 5.0), "spans of other sentences keep their passage scores, after the sentence's"
    # a span only one reading found gets the other's lowest score; a sentence read as nothing changes nothing
    assert rescore_in_sentences(passage, [(0, 27, ((5, 9, 12.0), (0, 3, 2.0)))])[0] == (5, 9, (5.0 + 12.0) / 2)
    assert rescore_in_sentences(passage, [(0, 27, ())]) == list(passage)


def test_near_tied_spans_in_two_sentences_are_each_judged_by_their_sentence_read_alone():
    # "Istanbul 2022 | 85,000" (0, 22) and "European counterproposal | 800,000" (23, 57): the passage reading all but
    # ties the two figures; read alone, the row that holds the question's words keeps its figure's score
    passage = ((50, 57, 7.48), (16, 22, 7.44), (23, 57, 4.35))
    first_row = ((16, 22, 8.0),)
    second_row = ((27, 34, 6.0), (0, 34, 5.0))
    spans = rescore_in_sentences(passage, [(23, 57, second_row), (0, 22, first_row)])
    assert spans[0][:2] == (16, 22)
    assert {sp[:2] for sp in spans} >= {(50, 57), (23, 57)}  # every span is still there to choose from


def test_trim_span_drops_punctuation_but_keeps_abbreviations():
    text = 'He said "85,000 troops," then left. The U.S. agreed.'
    s = text.index('"85')
    assert text[slice(*trim_span(text, s, text.index(" then")))] == "85,000 troops"
    k = text.index("troops")
    assert text[slice(*trim_span(text, k + 1, k + 3))] == "troops", "a word-piece span grows to the whole word"
    u = text.index("U.S.")
    assert text[slice(*trim_span(text, u, u + 4))] == "U.S."


def _tiny_training_file(folder, n=24):
    rng = random.Random(0)
    rows = []
    for i in range(n):
        city = rng.choice(["Paris", "Lima", "Oslo", "Kyiv"])
        ctx = (f"Report {i} was filed in {city} in the spring. The committee met twice. "
               f"Its chair was named Alex {i}. The budget rose sharply.")
        q = f"Where was report {i} filed?"
        rows.append({"id": f"t{i}", "title": f"T{i % 3}", "context": ctx, "question": q,
                     "answers": [{"text": city, "answer_start": ctx.index(city)}], "is_impossible": False,
                     "source": "test"})
    folder.mkdir()
    with gzip.open(folder / "tiny.jsonl.gz", "wt", encoding="utf-8") as fh:
        for r in rows:
            fh.write(json.dumps(r) + "\n")


def test_training_script_runs_resumes_and_exports(tmp_path, monkeypatch):
    pytest.importorskip("torch")
    from train import reader as trainer

    data = tmp_path / "data"
    _tiny_training_file(data)
    monkeypatch.setattr(trainer, "DATA_FILES", ("tiny.jsonl.gz",))
    out = tmp_path / "run"
    common = ["--out", str(out), "--data", str(data), "--batch-size", "8", "--threads", "1", "--save-every", "1",
              "--log-every", "1"]
    trainer.main(common + ["--epochs", "1", "--cut-rate", "0.5", "--steps", "1"])  # stops after step 1 ...
    assert [json.loads(x)["step"] for x in (out / "train_log.jsonl").read_text().splitlines()] == [1]
    trainer.main(common + ["--epochs", "1", "--cut-rate", "0.5"])  # ... and the same command without it goes on
    log = [json.loads(x) for x in (out / "train_log.jsonl").read_text().splitlines()]
    assert log and all(np.isfinite(r["loss"]) for r in log)
    first_total = log[-1]["step"]
    trainer.main(common + ["--epochs", "2", "--cut-rate", "0.5"])  # a longer plan continues from the checkpoint instead of restarting
    log = [json.loads(x) for x in (out / "train_log.jsonl").read_text().splitlines()]
    assert log[-1]["step"] > first_total
    assert [r["step"] for r in log] == sorted(r["step"] for r in log)
    export = tmp_path / "export"
    trainer.main(common + ["--export", str(export)])
    from qa.read import Reader

    reader = Reader(export)
    text = "Report 3 was filed in Lima in the spring. The committee met twice."
    (r,) = reader.read_many("Where was report 3 filed?", [(text, [(0, 41), (42, len(text))])])
    assert 0.0 <= r.has_answer <= 1.0
    assert r.start is None or 0 <= r.start < r.end <= len(text)


def test_the_shipped_reader_reads_the_seeds_and_marks_spans_inside_their_sentence(seed_index, seed_settings):
    from qa import answer
    from qa.read import reader_installed

    assert reader_installed(), "the trained reader ships in qa/data/reader"
    summit = answer("Where did Trump and Putin hold the summit that preceded the 28-point draft?", seed_index,
                    seed_settings)
    top = summit.passages[0]
    assert top.answer_score is not None and top.relevance is not None
    for p in summit.passages:  # a span shows inside its sentence of the cited passage
        if p.answer is not None:
            assert p.answer in p.text and p.sentence_start <= p.answer_start < p.answer_end <= p.sentence_end


def test_without_reranking_the_fast_path_runs_no_reader(seed_index, seed_settings):
    from qa import answer

    fast = answer("what army cap did Istanbul 2022 propose?", seed_index,
                  seed_settings.model_copy(update={"rerank": False}))
    assert all(p.answer_score is None and p.relevance is None for p in fast.passages)


def test_a_long_question_keeps_its_start_and_its_end_for_the_reader():
    from qa.read import MAX_QUESTION_TOKENS, question_tokens

    ids = list(range(200))
    kept = question_tokens(ids)
    assert len(kept) == MAX_QUESTION_TOKENS and kept[0] == 0 and kept[-1] == 199
    assert question_tokens(ids[:10]) == ids[:10]


def test_the_rerankers_encoder_dequantises_into_a_complete_bert(tmp_path):
    """The shipped reader's base: every encoder weight of the int8 reranker is recovered, none invented."""
    pytest.importorskip("torch")
    from transformers import BertModel

    from qa.rerank import reranker_dir
    from train.reader import dequantize_bert

    dequantize_bert(reranker_dir(), tmp_path / "base")
    model, info = BertModel.from_pretrained(str(tmp_path / "base"), add_pooling_layer=False,
                                            output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    assert model.config.num_hidden_layers == 12
    query = model.encoder.layer[11].attention.self.query.weight
    assert query.shape == (384, 384) and float(query.abs().mean()) > 0.01


def test_rereading_the_sentence_changes_spans_but_never_the_readers_verdict(seed_index, seed_settings):
    """Re-reading a sentence may move a span (and so the answer kind's fit), never whether a passage answers."""
    from qa import answer

    question = "Which European-offered force for post-deal Ukraine would the US proposal block?"
    on = answer(question, seed_index, seed_settings)
    off = answer(question, seed_index, seed_settings.model_copy(update={"reread_sentence": False}))
    verdict = {(p.citation.doc, p.citation.start): p.answer_score for p in off.passages}
    assert {(p.citation.doc, p.citation.start): p.answer_score for p in on.passages} == verdict


def test_hold_null_loss_frees_spans_and_holds_the_no_answer_score():
    """--hold-null: moving the best span leaves the loss at zero; moving the [CLS] ("not here") score does not."""
    import torch

    from train.reader import null_drift

    teacher = torch.tensor([[2.0, 0.5, 3.0, -1.0], [0.0, 1.0, 1.5, 2.5]])
    spans_moved = teacher[:, [0, 2, 1, 3]]  # same [CLS] logit, other best token
    null_moved = teacher.clone()
    null_moved[:, 0] += 1.0
    assert float(null_drift(spans_moved, teacher, torch)) < 1e-8
    assert float(null_drift(null_moved, teacher, torch)) > 0.5


def test_spans_and_sources_differ_come_only_from_passages_past_the_threshold(seed_index, seed_settings):
    """A reply highlights a span only where its calibrated probability reaches the threshold, and groups a passage
    into "Sources differ" only where its answer is more likely right than wrong; a "no answer" reply highlights
    nothing."""
    from qa import answer
    from qa.evaluate import answer_threshold

    threshold = answer_threshold(seed_settings)
    for question in ("who drafted the US plan?", "what army cap did Istanbul 2022 propose?",
                     "what is the capital of Peru?", "how many Ukrainian soldiers have been killed?"):
        ans = answer(question, seed_index, seed_settings)
        assert ans.calibrated
        assert ans.answered == (ans.confidence >= threshold)
        for p in ans.passages:
            assert p.answer is None or p.score >= threshold
            assert p.answer is None or (p.answer in p.text and p.sentence_start <= p.answer_start < p.sentence_end)
        if not ans.answered:
            assert all(p.answer is None for p in ans.passages) and not ans.groups
        by_rank = {p.rank: p for p in ans.passages}
        assert all(by_rank[r].score >= 0.5 for g in ans.groups for r in g.ranks)


def test_the_shipped_reader_dequantises_into_a_training_start(tmp_path):
    """`--init qa/data/reader`: every weight of the int8 reader is recovered and reads as the shipped model does."""
    torch = pytest.importorskip("torch")
    from qa.read import READER_DIR, Reader
    from qa.rerank import reranker_dir
    from train.reader import build_model, dequantize_bert, init_weights

    dequantize_bert(reranker_dir(), tmp_path / "base")
    model = build_model(tmp_path / "base", torch)
    model.load_state_dict(init_weights(str(READER_DIR), torch), strict=True)
    model.eval()
    reader = Reader()
    q_ids = reader.question_ids("Where was report 3 filed?")
    p_ids = reader.tokenizer.encode("Report 3 was filed in Lima in the spring. The committee met twice.",
                                    add_special_tokens=False).ids
    ids = [reader.cls_id] + q_ids + [reader.sep_id] + p_ids + [reader.sep_id]
    types = [0] * (len(q_ids) + 2) + [1] * (len(p_ids) + 1)
    feed = {"input_ids": np.array([ids]), "token_type_ids": np.array([types]),
            "attention_mask": np.ones((1, len(ids)), dtype=np.int64)}
    shipped_start = reader.session.run(None, feed)[0]
    with torch.no_grad():
        start, _ = model(torch.tensor([ids]), torch.tensor([types]), torch.ones(1, len(ids), dtype=torch.long))
    passage = slice(len(q_ids) + 2, len(ids) - 1)
    assert np.corrcoef(shipped_start[0][passage], start[0].numpy()[passage])[0, 1] > 0.99
    assert int(np.argmax(shipped_start[0][passage])) == int(np.argmax(start[0].numpy()[passage]))
