"""Explicit-refusal detection: does a response decline to answer ("I could not find information on X")?

A refusal is not a factual answer, so it counts as *abstained* in the respond ratio instead of as a
response with zero facts judged. A response is a refusal when it is empty, or when its opening sentence matches one of
:data:`REFUSAL_PATTERNS` (case-insensitive); when the first sentence is a short interjection (fewer than
:data:`SHORT_OPENING_WORDS` words, e.g. "Hmm."), the second one is the opening. Only the opening is
checked: "Jan Kowal is a footballer. There is no information about his later life." is an answer.

The patterns, each with an example it is meant to catch:

- apology + inability: "I'm sorry, but I cannot find any information about ..." /
  "I apologize, but I couldn't find ..." / "Sorry, I do not have ..."
- inability to find or provide: "I could not find any notable person named ...",
  "I am unable to provide a biography of ...", "I can't locate information ..."
- no information held: "I don't have any information about ...", "I do not have enough information ..."
- no information exists: "There is no information about ...", "No reliable information is available ..."
- not known: "I'm not aware of anyone named ...", "I am not familiar with ..."
"""

from __future__ import annotations

import re

from maskdpo.trainer.sentences import SplitterConfig, split_sentences

SHORT_OPENING_WORDS = 4

_CANNOT = r"(?:can ?not|can't|could ?not|couldn't|am unable to|was unable to|am not able to|wasn't able to)"
_FIND = r"(?:find|locate|provide|identify|give|offer|write|share|access)"
_INFO = r"(?:information|info|details|data|records?|bio(?:graphy)?|knowledge)"

REFUSAL_PATTERNS: tuple[re.Pattern[str], ...] = tuple(
    re.compile(pattern, re.IGNORECASE)
    for pattern in (
        # apology followed by an inability or a lack of information
        rf"\b(?:I'm|I am|I'm very|we're)?\s*(?:sorry|apologi[sz]e)\b.*\b(?:{_CANNOT}|(?:do not|don't) have|no {_INFO})",
        # inability to find or provide, with or without an apology
        rf"\bI {_CANNOT} {_FIND}\b",
        # no information held
        rf"\bI (?:do not|don't|did not|didn't) have (?:any |enough |sufficient |specific |reliable |much )*{_INFO}",
        # no information exists
        rf"\bthere (?:is|are|was) (?:no|not enough|little|insufficient) (?:\w+ ){{0,3}}{_INFO}",
        rf"^\s*no (?:\w+ ){{0,3}}{_INFO} (?:is |was )?(?:available|found)",
        # not known
        r"\bI(?:'m| am) not (?:aware of|familiar with)\b",
    )
)


def is_refusal(response: str, splitter: SplitterConfig | None = None) -> bool:
    """True when ``response`` is empty or opens with an explicit refusal (see the module docstring)."""
    if not response.strip():
        return True
    return matching_pattern(response, splitter) is not None


def matching_pattern(response: str, splitter: SplitterConfig | None = None) -> str | None:
    """The first pattern that makes ``response`` a refusal (for reports), ``"empty"``, or None."""
    if not response.strip():
        return "empty"
    for sentence in _opening(response, splitter):
        for pattern in REFUSAL_PATTERNS:
            if pattern.search(sentence):
                return pattern.pattern
    return None


def _opening(response: str, splitter: SplitterConfig | None) -> list[str]:
    sentences = [span.text_of(response) for span in split_sentences(response, splitter)[:2]]
    if len(sentences) == 2 and len(sentences[0].split()) >= SHORT_OPENING_WORDS:
        return sentences[:1]
    return sentences
