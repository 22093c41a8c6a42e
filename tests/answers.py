"""Hand-made answers for the rendering and card tests: every kind of reply, no index or model needed."""
from __future__ import annotations

from qa.models import Answer, AnswerGroup, Citation, Passage

CAP = "Istanbul 2022 proposed capping Ukraine's army at 85,000 troops, a figure Kyiv rejected."
PLAN = "The US plan would cap the Ukrainian armed forces at 600,000 personnel."
OTHER = "Talks resumed in Geneva with no agreement on numbers."


def passage(rank: int, text: str, doc: str, answer: str | None, score: float, line: int = 12,
            start: int = 1000, title: str | None = "Peace plans compared", date: str | None = "2025-11-25") -> Passage:
    """A passage at file offset `start` whose answer span is the first occurrence of `answer` in `text`."""
    span = None
    if answer is not None:
        at = text.index(answer)
        span = (start + at, start + at + len(answer))
    return Passage(rank=rank, text=text, answer=answer, answer_start=span[0] if span else None,
                   answer_end=span[1] if span else None, sentence_start=start, sentence_end=start + len(text),
                   score=score, citation=Citation(doc=doc, start=start, end=start + len(text), line_start=line,
                                                  line_end=line + text.count("\n"), title=title, date=date))


def agreeing() -> Answer:
    """Two documents give the same figure."""
    p1 = passage(1, CAP, "003_plan.txt", "85,000", 0.97)
    p2 = passage(2, "The cap discussed in Istanbul was 85 000 soldiers.", "000_history.txt", "85 000", 0.81,
                 line=40, title=None, date=None)
    return Answer(question="what army cap did Istanbul 2022 propose?", answered=True, confidence=0.97,
                  passages=[p1, p2], answer="85,000",
                  groups=[AnswerGroup(answer="85,000", docs=["003_plan.txt", "000_history.txt"], ranks=[1, 2])],
                  mode="hybrid", reranked=True, seconds=0.42)


def disagreeing() -> Answer:
    """Sources give different figures; the follow-up was expanded before searching."""
    p1 = passage(1, CAP, "003_plan.txt", "85,000", 0.91)
    p2 = passage(2, PLAN + "\nIt was leaked in November.", "002_leak.txt", "600,000", 0.64, line=7, start=200)
    return Answer(question="and the army cap?", answered=True, confidence=0.91, passages=[p1, p2], answer="85,000",
                  groups=[AnswerGroup(answer="85,000", docs=["003_plan.txt"], ranks=[1]),
                          AnswerGroup(answer="600,000", docs=["002_leak.txt"], ranks=[2])],
                  disagreement=True, query="and the army cap? Istanbul 2022", mode="hybrid", reranked=True,
                  seconds=0.38)


def abstained() -> Answer:
    """No answer: the closest passages are still shown."""
    return Answer(question="what was the exchange rate of the hryvnia?", answered=False, confidence=0.03,
                  passages=[passage(1, OTHER, "004_talks.txt", None, 0.03, line=3, start=50)],
                  message="no answer found in the documents", mode="bm25", reranked=False, seconds=0.05)
