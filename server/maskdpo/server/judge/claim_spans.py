"""Where a sentence's wrong claims sit: the character spans of their values, for claim-level masks.

The ``kb`` judge checks the (subject, attribute, value) claims its extractor reads from a sentence; each
value is text of that sentence. :func:`wrong_value_spans` finds the value of every claim the knowledge does
not support (contradicted or unknown) in the sentence -- case-insensitively, any run of whitespace matching
any other -- and returns the spans relative to the response, which the trainer's claim-level masks keep
(``LabeledSentence.wrong_spans``). If any wrong value cannot be found, it returns none: the sentence then
counts whole, never with a wrong value left out.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from maskdpo.server.judge.knowledge_base import ClaimCheck
from maskdpo.server.judge.types import Fact
from maskdpo.trainer.labels import Span


def wrong_value_spans(
    sentence: str, offset: int, claims: Sequence[Fact], checks: Sequence[ClaimCheck]
) -> tuple[Span, ...]:
    """Spans (``offset`` = the sentence's start in the response) of the values of the unsupported claims."""
    spans: set[Span] = set()
    for claim, check in zip(claims, checks, strict=True):
        if check is ClaimCheck.SUPPORTED:
            continue
        words = claim.value.split()
        match = re.search(r"\s+".join(map(re.escape, words)), sentence, re.IGNORECASE) if words else None
        if match is None:
            return ()
        spans.add(Span(offset + match.start(), offset + match.end()))
    return tuple(sorted(spans, key=lambda s: (s.start, s.end)))
