"""The terminal rendering of answers and the citation forms every front end shares, on hand-made answers."""
from __future__ import annotations

from answers import CAP, abstained, agreeing, disagreeing, passage

from qa.render import cite, citation_text, highlight, line_range, render_answer, sources_differ, sources_line


def test_citation_forms():
    one = passage(1, CAP, "003_plan.txt", "85,000", 0.9, line=43)
    two = passage(2, "First line.\nSecond line.", "notes/a.txt", None, 0.5, line=7, title=None, date=None)
    assert cite(one) == "003_plan.txt:43 — Peace plans compared · 2025-11-25"
    assert cite(two) == "notes/a.txt:7-8"
    assert line_range(one) == "line 43" and line_range(two) == "lines 7–8"
    assert citation_text(one) == "003_plan.txt, line 43 — Peace plans compared · 2025-11-25"
    assert citation_text(two) == "notes/a.txt, lines 7–8"


def test_highlight_marks_the_span_or_the_sentence():
    p = passage(1, CAP, "003_plan.txt", "85,000", 0.9)
    assert highlight(p, color=False) == CAP.replace("85,000", "**85,000**")
    assert highlight(p, color=True) == CAP.replace("85,000", "\033[1;33m85,000\033[0m")
    no_span = passage(1, CAP, "003_plan.txt", None, 0.9)
    assert highlight(no_span, color=False) == CAP
    assert highlight(no_span, color=True) == "\033[1m" + CAP + "\033[0m"  # the whole passage is the sentence


def test_sources_differ_line():
    groups = disagreeing().groups
    assert sources_differ(groups) == "Sources differ: 85,000 (003_plan.txt); 600,000 (002_leak.txt)"
    assert sources_differ(groups, sep=" · ") == "Sources differ: 85,000 (003_plan.txt) · 600,000 (002_leak.txt)"


def test_sources_line_differs_agrees_or_is_absent():
    assert sources_line(disagreeing(), sep=" · ") == "Sources differ: 85,000 (003_plan.txt) · 600,000 (002_leak.txt)"
    assert sources_line(agreeing()) == "Sources agree: 2 passages [1], [2] in 2 documents"
    assert sources_line(abstained()) is None
    one = agreeing().model_copy(update={"groups": [agreeing().groups[0].model_copy(update={"ranks": [1]})]})
    assert sources_line(one) is None  # a single passage agrees with nothing


def test_render_answered():
    assert render_answer(agreeing()) == "\n".join([
        "Q: what army cap did Istanbul 2022 propose?",
        "A: 85,000  (confidence 0.97)",
        "",
        "[1] 003_plan.txt:12 — Peace plans compared · 2025-11-25  score 0.97",
        "    Istanbul 2022 proposed capping Ukraine's army at **85,000** troops, a figure Kyiv rejected.",
        "",
        "[2] 000_history.txt:40  score 0.81",
        "    The cap discussed in Istanbul was **85 000** soldiers.",
    ])


def test_render_disagreement_and_the_searched_query():
    lines = render_answer(disagreeing(), width=60).splitlines()
    assert lines[:4] == ["Q: and the army cap?", "searched: and the army cap? Istanbul 2022",
                         "A: 85,000  (confidence 0.91)",
                         "Sources differ: 85,000 (003_plan.txt); 600,000 (002_leak.txt)"]
    assert lines[9:] == ["[2] 002_leak.txt:7-8 — Peace plans compared · 2025-11-25  score 0.64",
                         "    The US plan would cap the Ukrainian armed forces at",  # wrapped to the width
                         "    **600,000** personnel. It was leaked in November."]  # its newline folded


def test_render_abstention_shows_the_closest_passages():
    assert render_answer(abstained()).splitlines()[:4] == [
        "Q: what was the exchange rate of the hryvnia?",
        "no answer found in the documents  (confidence 0.03); closest passages:",
        "",
        "[1] 004_talks.txt:3 — Peace plans compared · 2025-11-25  score 0.03",
    ]


def test_a_no_answer_reply_marks_no_span_in_its_closest_passages():
    reply = agreeing().model_copy(update={"answered": False, "message": "no answer found in the documents",
                                          "answer": None, "groups": []})
    assert "**" not in render_answer(reply) and "\033[1;33m" not in render_answer(reply, color=True)
    assert "**85,000**" in render_answer(agreeing())


def test_render_in_colour_marks_the_span_and_dims_the_scores():
    text = render_answer(agreeing(), color=True)
    assert "\033[1;33m85,000\033[0m" in text and "\033[2mscore 0.97\033[0m" in text
    assert "\033[" not in render_answer(agreeing())
