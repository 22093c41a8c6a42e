"""Word lists shared by indexing and answering: stopwords, function words, month names."""
from __future__ import annotations

# A small English stopword list: function words only, so "when", "not" and numbers stay searchable.
STOPWORDS = frozenset(
    """a an and are as at be been being but by can could did do does doing for from had has have having he her
    hers him his how i if in into is it its itself me my of on or our ours she should so than that the their
    theirs them then there these they this those to too us was we were what which while who whom why will with
    would you your yours about above after again against all am any because before below between both during
    each few further here just more most other over own same some such through under until up very s t don
    also may might must shall whether""".split()
)
# Words of conversation and question-asking: never keywords a follow-up carries over (besides the stopwords).
CONVERSATION_WORDS = frozenset(
    """done when where whose not no nor only once off out ever let lets tell say says said know think mean please
    else anything something thing things way ways one ones many much well really quite like get got give given
    make made see show explain describe list compare okay ok yes right now""".split()
)
# The commonest function words: never the last word of a name ("Bank of" is "Bank").
FUNCTION_WORDS = frozenset("the a an of and in on at to for by with from as is was were be been".split())

MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December")
MONTH_NAMES = "|".join(MONTHS)  # a regex alternation
