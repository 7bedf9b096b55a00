"""Does a sentence state a claim at all? The rule that separates ``nofact`` from "a claim the judge cannot
check", for judges that read claims through patterns (the ``kb`` judge's extractors).

A sentence states a claim when it is not filler by :func:`~maskdpo.server.judge.checkable_items.is_filler`
(no reader talk such as "I hope" or "you", no meta opening such as "Here is" or "In summary", no word of
opinion without a checkable item), and it has

- a checkable item that is not the topic itself: a number, a year, a month, or a named entity
  ("Åsa Lind won the Nobel Prize." names "Nobel Prize"), or
- a content word and a verb: a form of be / have / do, a modal, a past form (a word ending in "-ed" or one
  of :data:`IRREGULAR_PAST`), or a word ending in "-s" right after he / she / it ("She paints.").

"Hello there." and "What a life!" state nothing; "She was kind." and "She loved the sea." state something.
Text in scripts written without spaces (Chinese, Japanese) has no verbs this rule can see: there, only a
number or year counts, and the extractors add their own literal matches of the names they know.
"""

from __future__ import annotations

from maskdpo.server.judge.checkable_items import STOP_WORDS, Analysis, analyse, is_filler, stem, tokenize
from maskdpo.server.judge.scripts import is_unspaced

AUXILIARIES = frozenset(
    """is was are were be been being am has had have having do does did can could will would may might must
    shall should""".split()
)
IRREGULAR_PAST = frozenset(
    """arose awoke became began bore born bought brought built came caught chose drew drove fell felt fought
    found flew forgot gave got grew heard held hid kept knew laid led left lent lost made meant met paid put
    ran rang read rode rose said sang sat saw sent set shot showed shown sold spent spoke stood stole struck
    swam taught thought told took threw understood went woke won wore wrote written""".split()
)
_THIRD_PERSON = frozenset({"he", "she", "it"})


def topic_words(topic: str) -> frozenset[str]:
    """The lower-cased word stems of a topic ("Åsa Lind" -> {"åsa", "lind"})."""
    return frozenset(stem(t.lower) for t in tokenize(topic) if t.text[0].isalpha() and t.lower not in STOP_WORDS)


def has_verb(analysis: Analysis) -> bool:
    """A verb the rule can see (see the module docstring)."""
    lowers = [t.lower for t in analysis.tokens]
    for index, word in enumerate(lowers):
        if word in AUXILIARIES or word in IRREGULAR_PAST or word.endswith("n't"):
            return True
        if len(word) > 3 and word.endswith("ed") and word.isalpha():
            return True
        if index > 0 and lowers[index - 1] in _THIRD_PERSON and len(word) > 2 and word.endswith("s"):
            return True
    return False


def states_claim(sentence: str, topic: str = "") -> bool:
    """True when ``sentence`` states a claim (see the module docstring)."""
    analysis = analyse(sentence)
    words = topic_words(topic)
    if is_filler(analysis, words):
        return False
    if any(item.kind != "entity" or not set(item.words) <= words for item in analysis.items):
        return True
    content = [w for w in analysis.content if w not in words and not any(is_unspaced(c) for c in w)]
    return bool(content) and has_verb(analysis)
