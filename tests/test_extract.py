"""Picking the answering sentence and span, and the answer()/abstention contract on the seed index."""
from __future__ import annotations

from pathlib import Path

import pytest
from conftest import OFF_TOPIC_QUESTION, SAMPLE_QUESTION

from index.bm25 import tokenize
from index.chunk import split_sentences
from qa import NO_ANSWER, Answer, QAError, answer
from qa.extract import answer_type, asks_for_money, count_focus, extract_answer, find_candidates, number_value


@pytest.mark.parametrize("question, kind", [
    ("what army cap did Istanbul 2022 propose?", "number"),
    ("How many Russian soldiers have died?", "number"),
    ("To what size would Ukraine's army be limited?", "number"),
    ("who drafted the plan with Witkoff?", "name"),
    ("Which envoy met Putin in August?", "name"),
    ("Where did Zelensky arrive with an alternative proposal?", "name"),
    ("When was the full text of the draft published?", "date"),
    ("In what year did Russia first invade?", "date"),
    ("Why is the plan structurally doomed?", None),
    ("Describe the electricity war", None),
])
def test_answer_type(question, kind):
    assert answer_type(question) == kind


def spans(text: str, kind: str) -> list[str]:
    return [text[s:e] for s, e in find_candidates(text, kind)]


def test_number_candidates():
    text = "Russia demanded 85,000 troops, $100 billion, 50% of profits and twenty-eight points."
    found = spans(text, "number")
    for expected in ("85,000", "$100 billion", "50%", "twenty-eight"):
        assert expected in found


def test_date_candidates():
    found = spans("On November 21, 2025 the text leaked; in March 2022 talks in Istanbul failed.", "date")
    assert "November 21, 2025" in found and "March 2022" in found


def test_name_candidates_are_whole_names():
    text = ("Witkoff drafted it with Kremlin confidant Kirill Dmitriev of the fund. "
            "Larry Johnson interviewed the Russian Ministry of Foreign Affairs spokesperson.")
    found = spans(text, "name")
    assert "Kirill Dmitriev" in found and "Larry Johnson" in found
    assert any(f.endswith("Ministry of Foreign Affairs") for f in found)
    assert not any(f.endswith((" of", " the")) or f == "Dmitriev" for f in found)


def terms_for(question: str) -> dict[str, float]:
    return {t: 1.0 for t in tokenize(question)}


def extract(question: str, text: str):
    ex = extract_answer(question, text, split_sentences(text), terms_for(question), answer_type(question))
    return text[ex.start:ex.end], (text[ex.answer[0]:ex.answer[1]] if ex.answer else None)


def test_extracts_the_name_from_the_right_sentence():
    text = ("A transcript was published by Bloomberg News this week. "
            "Witkoff drafted the plan with input from Kremlin confidant Kirill Dmitriev. "
            "Putin said nothing about it on Thursday.")
    sentence, span = extract("who drafted the plan with Witkoff?", text)
    assert sentence == "Witkoff drafted the plan with input from Kremlin confidant Kirill Dmitriev."
    assert span == "Kirill Dmitriev"


def test_number_span_is_not_a_number_from_the_question():
    text = "In March 2022 in Istanbul, Russia demanded a peacetime cap of 85,000 active personnel for Ukraine's army."
    _, span = extract("what army cap did Russia demand in Istanbul in 2022?", text)
    assert span == "85,000"


def test_short_sentence_comes_with_its_neighbour():
    text = ("The draft treaty from Istanbul would have made Ukraine a permanently neutral state. "
            "It capped the army at 85,000. "
            "Nobody in Kyiv accepted such terms at the time, and few would accept them today.")
    sentence, span = extract("what army cap did the draft propose?", text)
    assert "It capped the army at 85,000." in sentence
    assert len(split_sentences(sentence)) == 2
    assert span == "85,000"


def test_extraction_is_whole_sentences_in_file_offsets():
    text = "  Preamble line\n\nFirst sentence about sanctions. Second one on the G8 and Russia. Third."
    sentences = split_sentences(text)
    q = "will Russia rejoin the G8?"
    ex = extract_answer(q, text, sentences, terms_for(q), answer_type(q))
    starts = {s for s, _ in sentences}
    ends = {e for _, e in sentences}
    assert ex.start in starts and ex.end in ends
    assert "G8" in text[ex.start:ex.end]


# --- answer() on the seeds ----------------------------------------------------------------------

def file_text(index, doc: str) -> str:
    return (Path(index.manifest.corpus_root) / doc).read_bytes().decode("utf-8")


def check_passages_are_verbatim(index, ans: Answer) -> None:
    for p in ans.passages:
        text = file_text(index, p.citation.doc)
        c = p.citation
        assert text[c.start:c.end] == p.text
        assert c.line_start == text.count("\n", 0, c.start) + 1
        assert c.line_end == c.line_start + p.text.count("\n")
        if p.answer is not None:
            assert text[p.answer_start:p.answer_end] == p.answer
            assert c.start <= p.answer_start < p.answer_end <= c.end


@pytest.fixture(scope="module")
def sample_answer(seed_index, seed_settings):
    return answer(SAMPLE_QUESTION, seed_index, seed_settings)


def test_sample_question_is_answered_with_85000(seed_index, sample_answer):
    assert sample_answer.answered is True
    assert sample_answer.message is None
    assert "85,000" in sample_answer.answer and "800,000" not in sample_answer.answer
    top = sample_answer.passages[0]
    assert "85,000" in top.text
    assert top.citation.doc in ("000_a5367d4183c4154e.txt", "003_341094064a9670fe.txt")
    check_passages_are_verbatim(seed_index, sample_answer)


def test_answer_passages_are_ranked_distinct_and_limited(seed_index, seed_settings, sample_answer):
    ranks = [p.rank for p in sample_answer.passages]
    assert ranks == list(range(1, len(ranks) + 1))
    assert 1 <= len(ranks) <= seed_settings.top_k
    keys = [(p.citation.doc, p.citation.start) for p in sample_answer.passages]
    assert len(set(keys)) == len(keys)
    one = answer(SAMPLE_QUESTION, seed_index, seed_settings.model_copy(update={"top_k": 1}))
    assert len(one.passages) == 1 and one.passages[0].text == sample_answer.passages[0].text


def test_citations_carry_article_metadata(sample_answer):
    for p in sample_answer.passages:
        if p.citation.doc == "000_a5367d4183c4154e.txt":
            assert p.citation.date == "2025-11-29" and p.citation.author == "Matthew Luxmoore"


def test_sample_question_sources_do_not_differ(sample_answer):
    """The US plan's 800,000 in the passage beside Istanbul's 85,000 is not another source's answer."""
    assert sample_answer.answered and "85,000" in sample_answer.answer
    assert not sample_answer.disagreement
    assert all("85,000" in g.answer for g in sample_answer.groups)


def test_who_question_names_dmitriev(seed_index, seed_settings):
    ans = answer("who drafted the plan with Witkoff?", seed_index, seed_settings)
    assert ans.answered and "Dmitriev" in ans.answer
    check_passages_are_verbatim(seed_index, ans)


def test_who_question_groups_do_not_repeat_the_question_subject(seed_index, seed_settings):
    ans = answer("who drafted the plan with Witkoff?", seed_index, seed_settings)
    assert all("Witkoff" not in g.answer for g in ans.groups)
    assert all(g.answer not in ("Ukraine’s", "Ukraine's") for g in ans.groups)


@pytest.mark.parametrize("rerank", [True, False], ids=["rerank", "no-rerank"])
def test_off_topic_question_abstains_but_shows_passages(seed_index, seed_settings, rerank):
    settings = seed_settings.model_copy(update={"rerank": rerank})
    ans = answer(OFF_TOPIC_QUESTION, seed_index, settings)
    assert ans.answered is False
    assert ans.message == NO_ANSWER == "no answer found in the documents"
    assert ans.answer is None and ans.groups == [] and not ans.disagreement
    assert ans.passages, "closest passages are still shown"
    check_passages_are_verbatim(seed_index, ans)


@pytest.mark.parametrize("question", ["How do I bake sourdough bread?", "who won the 1998 football world cup?"])
def test_other_off_topic_questions_abstain(seed_index, seed_settings, question):
    assert answer(question, seed_index, seed_settings).answered is False


@pytest.mark.parametrize("rerank", [True, False], ids=["rerank", "no-rerank"])
def test_sample_question_answered_without_reranker_too(seed_index, seed_settings, rerank):
    ans = answer(SAMPLE_QUESTION, seed_index, seed_settings.model_copy(update={"rerank": rerank}))
    assert ans.answered is True
    assert ans.reranked is rerank
    assert any("85,000" in p.text for p in ans.passages[:3])


@pytest.mark.parametrize("question", ["", "   ", "\n"])
def test_empty_question_is_an_error(seed_index, seed_settings, question):
    with pytest.raises(QAError):
        answer(question, seed_index, seed_settings)


def test_answer_round_trips_through_json(sample_answer):
    again = Answer.model_validate_json(sample_answer.model_dump_json())
    assert again == sample_answer


def test_how_many_picks_the_figure_that_counts_the_asked_thing():
    text = ("In Istanbul in March 2022, Russia demanded a peacetime cap of 85,000 active personnel for Ukraine's army. "
            "This was part of broader demands, including restrictions on tanks (e.g., fewer than 400) and aircraft.")
    sentence, span = extract("How many tanks did Russia want Ukraine limited to in Istanbul in March 2022?", text)
    assert "tanks" in sentence and span == "400"
    sentence, span = extract("How many active personnel did Russia demand in Istanbul?", text)
    assert span == "85,000"


@pytest.mark.parametrize("question, focus", [
    ("How many tanks would the plan allow?", {"tank"}),
    ("How much rent per year would Russia pay?", {"rent"}),
    ("How much of the frozen Russian assets would go to the fund?", {"frozen", "russian", "asset"}),
    ("By roughly how much would the plan shrink the army?", set()),
    ("Who drafted the plan?", set()),
])
def test_count_focus_is_the_counted_thing(question, focus):
    assert count_focus(question) == focus


def test_currency_amounts_are_number_candidates():
    assert spans("BSkyB paid £304m; the fund holds $5bn and €2.5 billion.", "number") == ["£304m", "$5bn", "€2.5 billion"]


@pytest.mark.parametrize("text, value", [
    ("85,000", 85000.0), ("twenty-eight", 28.0), ("Twenty", 20.0), ("one", 1.0), ("2.5", 2.5),
    ("50%", None), ("600,000 personnel", None), ("forty-zero", None),
])
def test_number_value(text, value):
    assert number_value(text) == value


def test_the_questions_own_figure_in_words_is_not_its_answer():
    text = "As the twenty-eight point plan leaked, drones hit Ukraine; officials later counted 810 of them."
    _, span = extract("How many drones hit Ukraine as the 28-point plan leaked?", text)
    assert span == "810"  # "twenty-eight" sits nearer the question's words


@pytest.mark.parametrize("question, money", [
    ("How much rent per year would Russia pay Ukraine?", True),
    ("How much did the new stadium cost?", True),
    ("How much money did the appeal raise?", True),
    ("How much of the budget went to defence?", False),
    ("From 1947 to 1967, how much did the price of oil increase?", False),
    ("How much did advertising revenue increase between 1953 and 1958?", False),
    ("How much land would Ukraine cede?", False),
    ("How many tanks would the plan allow?", False),
])
def test_asks_for_money(question, money):
    assert asks_for_money(question) is money


def test_a_money_question_takes_only_an_amount_of_money():
    question = "How much rent would Russia pay Ukraine for the Donbas?"
    _, span = extract(question, "One proposal says Russia would pay rent to Ukraine for the Donbas.")
    assert span is None  # "One" is not an amount: no span, so the answer's confidence drops
    _, span = extract(question, "Russia would pay rent of $2bn a year, or one tenth of the region's output.")
    assert span == "$2bn"


def test_a_span_fits_only_the_kind_the_question_asks_for():
    from qa.extract import span_fits

    assert span_fits("How many tanks could Ukraine keep?", "number", "fewer than 400")
    assert not span_fits("How many tanks could Ukraine keep?", "number", "oblige Ukraine")
    assert not span_fits("When would Ukraine hold elections?", "date", "oblige Ukraine")
    assert span_fits("When would Ukraine hold elections?", "date", "within 100 days in 2026")
    assert not span_fits("How much rent per year would Russia pay?", "number", "a rental fee")
    assert span_fits("How much rent per year would Russia pay?", "number", "$2 billion")
    assert span_fits("Who drafted the plan?", "name", "some envoy")  # names are not checked by pattern
    assert not span_fits("How many soldiers?", "number", None)


@pytest.mark.parametrize("rerank", [True, False], ids=["rerank", "no-rerank"])
def test_a_file_edited_after_indexing_is_never_cited_from_the_index(tmp_path, rerank):
    """An open index (the chat app's) whose file changed under it cites only text the file still holds there."""
    import shutil

    from qa import Settings, open_index

    from conftest import SEEDS

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    source = next(SEEDS.glob("003_*.txt"))
    shutil.copyfile(source, corpus / source.name)
    settings = Settings(corpus=[corpus], index_dir=tmp_path / "index", rerank=rerank)
    index = open_index(settings)
    assert any("85,000" in p.text for p in answer(SAMPLE_QUESTION, index, settings).passages)
    edited = source.read_text(encoding="utf-8").replace("85,000", "95,000")
    (corpus / source.name).write_text(edited, encoding="utf-8")
    reply = answer(SAMPLE_QUESTION, index, settings)
    for p in reply.passages:
        assert edited[p.citation.start:p.citation.end] == p.text
    assert not any("85,000" in p.text for p in reply.passages)
