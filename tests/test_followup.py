"""Follow-up resolution (qa.followup) on hand-made turns: pure, no models, no index."""
from __future__ import annotations

import pytest

from qa.followup import Turn, default_idf, followup_query, index_idf, is_followup, keywords, resolve
from qa.models import Answer, Citation, Passage

FIRST = "what army cap did Istanbul 2022 propose?"

# idf-like weights in the range BM25+ gives on the seeds; words missing here are unknown to the corpus (0)
IDF = {"army": 2.6, "cap": 3.43, "istanbul": 3.77, "2022": 2.81, "propose": 2.04, "plan": 1.16, "us": 0.0,
       "ukraine": 0.53, "russia": 0.92, "witkoff": 2.74, "ushakov": 4.5, "donetsk": 3.3, "call": 2.2,
       "leaked": 3.1, "putin": 1.35, "tanks": 5.38, "kremlin": 2.6, "aide": 3.99, "telegraph": 4.2, "pay": 3.0,
       "donbass": 3.6, "drafted": 2.5, "who": 0.0, "missile": 3.0, "range": 3.5, "aircraft": 3.9,
       "talks": 2.0, "limited": 2.4, "want": 1.5, "transcript": 4.4, "published": 2.7, "news": 3.0,
       "outlet": 0.0, "capital": 0.0, "peru": 0.0, "boiling": 0.0, "point": 1.9, "mercury": 0.0, "european": 1.4,
       "counterproposal": 4.4, "suggest": 3.0, "kremlin's": 2.6, "concession": 3.8, "sign": 2.5, "date": 2.9}


def idf(word: str) -> float:
    return IDF.get(word.lower().strip("?.,"), 1.0)


def test_no_history_leaves_the_question_alone():
    assert followup_query("and what did the US plan propose?", [], idf) == "and what did the US plan propose?"
    assert not is_followup("what about it?", [])


@pytest.mark.parametrize("question", [
    "How many Russian troops have died in the war, according to Western estimates?",
    # "it" is the clause's own subject, "its" points to Ukraine, "they" to the officials named before it
    "In the leaked call, which region did Witkoff say, possibly together with a land swap, it would take to get a "
    "peace deal done?",
    "How much of Ukraine's electricity comes from its nuclear power plants?",
    "What did Washington threaten to stop supplying to Kyiv unless it signed the deal?",
    "what is the capital of Peru?",
    "Is there a deadline for Kyiv?",
    "What did Putin say this week?",
    "What did Witkoff say he knew?",
    # long questions that name their own antecedents, before or after the pronoun
    "Through what route did Putin say the text of the draft reached him, unlike the Europeans who learned of it "
    "from the press?",
    "In his November 21 address, what did Zelensky say Ukraine risked losing as the alternative to losing its "
    "dignity?",
])
def test_self_contained_questions_are_searched_as_typed(question):
    history = [Turn(FIRST, answer="85,000"), Turn("how many tanks did it allow?", answer="fewer than 400")]
    r = resolve(question, history, idf)
    assert not r.followup, r
    assert r.query == question


def test_a_question_about_what_the_corpus_lacks_is_not_expanded():
    """No name, but its words are unknown to the corpus: a new topic, not a follow-up."""
    turns = [Turn("Which pipeline project with Russia frustrated Ukrainians?", answer="Nord Stream 2")]
    q = "what is the boiling point of mercury?"
    assert followup_query(q, turns, idf) == q
    # with the stand-in weights (no corpus) a question naming nothing leans on the conversation
    assert is_followup("which news outlet published the transcript?", ["Which aide did Witkoff advise?"])


@pytest.mark.parametrize("question", ["what did they propose?", "and what about it", "what did this plan allow?",
                                      "what about the US?", "...and Russia?", "why?", "how much?", "how many tanks?",
                                      "who drafted it?", "what did she say?", "who lives there?"])
def test_follow_up_cues(question):
    assert is_followup(question, [FIRST])


def test_readme_conversation_resolves_each_turn_to_the_one_it_follows():
    turns = [Turn(FIRST, answer="85,000")]
    r = resolve("and what did the US plan propose?", turns, idf)
    assert r.followup and r.query == "what army cap did the US plan propose?"  # intent kept, subject replaced
    turns.append(Turn("and what did the US plan propose?", r.query, answer="800,000"))
    r = resolve("who drafted it?", turns, idf)
    assert r.query == "who drafted the US plan?" and r.kind == "pronoun"  # "it" is the last question's topic
    turns.append(Turn("who drafted it?", r.query, answer="Witkoff"))
    r = resolve("who gave him input?", turns, idf)
    assert r.query == "who gave Witkoff input?" and r.referent == "Witkoff"  # the person just answered


def test_what_about_a_name_replaces_the_subject():
    r = resolve("what about Russia?", [Turn(FIRST)], idf)
    assert r.query == "what army cap did Russia propose?"
    assert r.referent == "Istanbul 2022"


def test_what_about_a_thing_replaces_the_intent_and_keeps_the_subject():
    turns = [Turn("How many tanks did Russia want Ukraine limited to in the Istanbul talks?", answer="fewer than 400")]
    out = followup_query("what about missile range?", turns, idf)
    assert "missile range" in out and "Istanbul" in out and "Russia" in out
    assert "tanks" not in out


def test_he_is_the_person_answered_before_the_person_named():
    turns = [Turn("Which Kremlin aide did Witkoff advise?", answer="Yuri Ushakov")]
    assert followup_query("what did he say about Donetsk?", turns, idf) == "what did Yuri Ushakov say about Donetsk?"
    # a question that did not ask for a person: "he" is the person it names ("Kremlin" only modifies "aide")
    turns = [Turn("What did Witkoff tell the Kremlin aide?", answer="Donetsk")]
    assert followup_query("when did he say it?", turns, idf).startswith("when did Witkoff say")


def test_he_skips_places_and_reaches_back_to_the_most_recent_person():
    turns = [Turn("Who drafted the plan with Dmitriev?", answer="Witkoff"),
             Turn("What army cap did Russia demand in Istanbul?", answer="85,000")]
    r = resolve("where did he meet Umerov?", turns, idf)
    assert r.query == "where did Witkoff meet Umerov?"


def test_possessives_keep_their_s():
    turns = [Turn("Which Ukrainian official was the plan conveyed to in Miami?", answer="Rustem Umerov")]
    assert followup_query("what is his position?", turns, idf) == "what is Rustem Umerov’s position?"


def test_she_names_a_person_with_particles():
    turns = [Turn("What did Ursula von der Leyen say cannot be changed by force?", answer="borders")]
    assert followup_query("when did she say it?", turns, idf).startswith("when did Ursula von der Leyen say")


def test_it_after_a_which_thing_question_is_the_answer():
    turns = [Turn("Which 1994 agreement was cited as a cautionary precedent?", answer="Budapest Memorandum")]
    assert followup_query("what did Ukraine give up under it?", turns, idf) == \
        "what did Ukraine give up under Budapest Memorandum?"
    # ... but not a figure: "it" then stays, and the last search's salient words are added
    turns = [Turn("Which figure did the Telegraph give?", answer="85,000")]
    assert "85,000" not in followup_query("who reported it?", turns, idf)


def test_there_is_the_last_place_asked_for_or_named():
    turns = [Turn("Which city did Gerasimov say Russia had seized?", answer="Kupyansk"),
             Turn("What is Valery Gerasimov's position?", answer="Armed-forces chief")]
    assert followup_query("what happened there?", turns, idf) == "what happened in Kupyansk?"
    turns = [Turn("How many Ukrainians live in the part of Donetsk still held by Kyiv?", answer="200,000")]
    assert followup_query("what has Ukraine built there?", turns, idf) == "what has Ukraine built in Donetsk?"


def test_a_bare_question_carries_the_whole_last_search():
    turns = [Turn("What did the Telegraph report Russia would pay Ukraine for control of the Donbass?",
                  answer="a rental fee")]
    out = followup_query("how much?", turns, idf)
    assert out.startswith("how much? ")
    assert {"Telegraph", "pay", "Donbass"} <= set(out.split())
    assert "Ukraine" not in out.split()  # too common in the corpus to narrow the search


def test_chained_searches_are_read_by_their_question_part():
    """A last search with words appended ("… ? Telegraph …") still yields its own wh-phrase as the intent."""
    turns = [Turn("How many binding treaties does the plan violate?"),
             Turn("and how many political commitments?",
                  query="and how many political commitments? plan violate")]
    out = followup_query("what about legal principles?", turns, idf)
    assert out.startswith("what about legal principles?")
    assert "violate" in out and "commitments" not in out


def test_turn_record_from_an_answer_keeps_the_search_span_and_sentence():
    text = "Witkoff drafted the plan with input from Kremlin confidant Kirill Dmitriev. Other text."
    passage = Passage(rank=1, text=text, answer="Kirill Dmitriev", answer_start=100 + 59, answer_end=100 + 74,
                      sentence_start=100, sentence_end=100 + 75, score=0.9,
                      citation=Citation(doc="a.txt", start=100, end=100 + len(text), line_start=1, line_end=1))
    reply = Answer(question="who gave him input?", answered=True, confidence=0.9, passages=[passage],
                   answer="Kirill Dmitriev", query="who gave Witkoff input?", mode="hybrid", reranked=True,
                   seconds=0.1)
    turn = Turn.from_answer("who gave him input?", reply)
    assert turn.searched == "who gave Witkoff input?"
    assert turn.answer == "Kirill Dmitriev"
    assert turn.sentence == text[:75]
    abstained = reply.model_copy(update={"answered": False, "query": None})
    assert Turn.from_answer("q?", abstained).answer is None  # an abstention names nobody


def test_the_person_comes_from_the_sentence_when_the_span_is_missing():
    turns = [Turn("who drafted the plan?", answer=None,
                  sentence="Witkoff drafted the plan with input from Kremlin confidant Kirill Dmitriev.")]
    assert followup_query("where did he travel?", turns, idf) == "where did Witkoff travel?"


def test_keywords_drop_function_words_and_keep_acronyms():
    ks = keywords("and what did the US plan propose for NATO in 2022?")
    texts = [k.text for k in ks]
    assert texts == ["US", "plan", "propose", "NATO", "2022"]
    assert [k.entity for k in ks] == [True, False, False, True, True]
    assert keywords("Tell me about the plan")[0].text == "plan"  # "Tell" is not a name


def test_default_idf_prefers_names_and_figures():
    assert default_idf("Istanbul") > default_idf("army")
    assert default_idf("85,000") > default_idf("army")


def test_index_idf_reads_bm25_statistics():
    class FakeIndex:
        def term_idf(self, token):
            return {"armi": 2.6, "cap": 3.4}.get(token)

    f = index_idf(FakeIndex())
    assert f("army") == pytest.approx(2.6)  # stemmed like the index
    assert f("caps") == pytest.approx(3.4)
    assert f("Zanzibar") == 0.0
    assert f("the") == 0.0


def test_names_end_at_a_possessive_and_skip_organisations_and_sentence_adverbs():
    turns = [Turn("What did Putin's July 2021 essay compare Ukraine to?", answer="weapons of mass destruction")]
    assert followup_query("what did he say in his speech?", turns, idf) == "what did Putin say in his speech?"
    turns = [Turn("Which spokesperson did Larry Johnson interview?", answer=None,
                  sentence="Similarly, Larry Johnson just interviewed the Russian Ministry of Foreign Affairs "
                           "spokesperson, Maria Zharakova.")]
    assert followup_query("what did she say?", turns, idf) == "what did Maria Zharakova say?"


def test_and_what_keeps_the_intent_only_when_its_subject_is_new():
    turns = [Turn("Which regions might Russia give up as a show of flexibility?", answer="Kherson")]
    out = followup_query("and what would the plan not require of Zelensky?", turns, idf)
    assert not out.startswith("what regions")  # Zelensky is not the subject: the question asks its own thing


def test_a_definite_fragment_is_a_topic_of_its_own():
    turns = [Turn("Which package of sanctions is the EU up to?", answer="19th")]
    out = followup_query("what about the lifting of sanctions?", turns, idf)
    assert out.startswith("what about the lifting of sanctions?")
