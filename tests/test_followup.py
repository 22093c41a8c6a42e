"""History query expansion for follow-up questions (qa.followup): pure, no models, no index."""
from __future__ import annotations

import pytest

from qa.followup import default_idf, expand_query, index_idf, is_followup, keywords

FIRST = "what army cap did Istanbul 2022 propose?"

# idf-like weights in the range BM25+ gives on the seeds (log((N + 1) / df), N = 215 chunks)
IDF = {"army": 2.6, "cap": 3.43, "istanbul": 3.77, "2022": 2.81, "propose": 2.04, "plan": 1.16, "us": 0.0,
       "ukraine": 0.53, "russia": 0.92, "witkoff": 2.74, "ushakov": 4.5, "donetsk": 3.3, "say": 0.0,
       "call": 2.2, "leaked": 3.1, "putin": 1.35, "troops": 2.6, "tanks": 5.38, "coach": 5.0, "kremlin": 2.6,
       "aide": 3.99, "peace": 1.61, "deal": 2.0, "land": 2.5, "swap": 4.0, "region": 2.5, "yuri": 4.5}


def idf(word: str) -> float:
    return IDF.get(word.lower().strip("?.,"), 1.0)


def test_no_history_leaves_the_question_alone():
    assert expand_query("and what did the US plan propose?", [], idf) == "and what did the US plan propose?"
    assert not is_followup("what about it?", [])


def test_self_contained_question_is_unchanged():
    q = "How many Russian troops have died in the war, according to Western estimates?"
    assert expand_query(q, [FIRST], idf) == q
    long_with_pronoun = ("In the leaked call, which region did Witkoff say, possibly together with a land swap, "
                         "it would take to get a peace deal done?")
    assert not is_followup(long_with_pronoun, [FIRST], idf)
    assert expand_query(long_with_pronoun, [FIRST], idf) == long_with_pronoun


def test_and_what_about_a_new_subject_carries_the_topic_not_the_old_entities():
    q = "and what did the US plan propose?"
    out = expand_query(q, [FIRST], idf)
    assert out.startswith(q)
    added = out[len(q):].split()
    assert "army" in added and "cap" in added
    assert "Istanbul" not in added and "2022" not in added  # the US plan replaces Istanbul 2022
    assert "propose" not in added  # already in the question


def test_what_about_x():
    out = expand_query("what about Russia?", [FIRST], idf)
    assert out.startswith("what about Russia?")
    assert {"army", "cap"} <= set(out.split())
    assert "Istanbul" not in out


def test_pronoun_follow_up_keeps_the_earlier_entities():
    out = expand_query("who did he coach?", ["What did Witkoff say in the leaked call?"], idf)
    assert out.startswith("who did he coach?")
    assert "Witkoff" in out.split()
    assert "leaked" in out.split()


def test_ellipsis_and_very_short_questions_are_follow_ups():
    assert is_followup("…and in 2022?", [FIRST])
    assert is_followup("why?", [FIRST])
    assert is_followup("and the tanks", [FIRST])
    out = expand_query("why?", [FIRST], idf)
    assert {"army", "cap", "Istanbul", "2022"} <= set(out.split())


def test_low_idf_words_are_not_carried_over():
    out = expand_query("what did they say?", ["what did the plan say about Ukraine and Donetsk?"], idf)
    added = set(out.split()) - set("what did they say?".split())
    assert "Donetsk" in added
    assert not {"plan", "Ukraine"} & added  # common in the corpus: they would not narrow the search


def test_older_turns_only_carry_topic_words():
    history = ["what did the Kremlin aide Ushakov discuss with Witkoff?", "what about the peace deal?",
               "and the land swap?"]
    out = expand_query("why?", history, idf, window=1, topic_idf=3.0, max_terms=10)
    words = set(out.split())
    assert {"Ushakov", "aide"} <= words  # idf >= topic_idf: carried from older turns
    assert not {"Kremlin", "Witkoff", "deal"} & words  # below topic_idf, and not in the last turn
    assert {"land", "swap"} <= words  # the last turn's words come in at the lower sub_idf threshold


def test_max_terms_keeps_the_most_salient():
    history = ["Istanbul Ushakov Witkoff Donetsk swap tanks coach army cap"]
    out = expand_query("why?", history, idf, max_terms=3)
    added = out.split()[1:]
    assert len(added) == 3
    assert set(added) == {"tanks", "coach", "Ushakov"}


def test_previous_answer_is_the_referent_of_a_pronoun():
    out = expand_query("what did he say?", ["Which Kremlin aide did Witkoff coach?"], idf,
                       previous_answer="Yuri Ushakov")
    assert "Ushakov" in out.split() and "Yuri" in out.split()
    # a follow-up naming its own subject does not take the previous answer
    out2 = expand_query("what did Putin say?", ["Which Kremlin aide did Witkoff coach?"], idf,
                        previous_answer="Yuri Ushakov")
    assert "Ushakov" not in out2


def test_keywords_drop_function_words_and_keep_acronyms():
    ks = keywords("and what did the US plan propose for NATO in 2022?")
    texts = [k.text for k in ks]
    assert texts == ["US", "plan", "propose", "NATO", "2022"]
    assert [k.entity for k in ks] == [True, False, False, True, True]
    assert keywords("Tell me about the plan")[0].text == "plan"  # "Tell" is not a name


def test_default_idf_prefers_names_and_figures():
    assert default_idf("Istanbul") > default_idf("army")
    assert default_idf("85,000") > default_idf("army")
    out = expand_query("and what did the US plan propose?", [FIRST])
    assert out.startswith("and what did the US plan propose?") and "army" in out and "Istanbul" not in out


@pytest.mark.parametrize("question", ["what did they propose?", "and what about it", "what did this plan allow?",
                                      "what about the US?", "...and Russia?"])
def test_follow_up_cues(question):
    assert is_followup(question, [FIRST])


def test_index_idf_reads_bm25_statistics():
    class FakeIndex:
        def term_idf(self, token):
            return {"armi": 2.6, "cap": 3.4}.get(token)

    f = index_idf(FakeIndex())
    assert f("army") == pytest.approx(2.6)  # stemmed like the index
    assert f("caps") == pytest.approx(3.4)
    assert f("Zanzibar") == 0.0
    assert f("the") == 0.0
