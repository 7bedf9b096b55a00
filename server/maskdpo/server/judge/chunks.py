"""Reference text cut into sentence chunks, the units the heuristic judge retrieves and compares.

A rule, not the shared splitter: a chunk ends at ``.``, ``!`` or ``?`` (and any closing quotes or
brackets) followed by white space and an upper-case letter, a digit or an opening quote, unless the word
before the stop is a known abbreviation or a single capital (an initial: "Thomas K. Arnold", "U.S.").
References can be whole web pages (hundreds of sentences per request) and pysbd, the splitter of response
sentences (:mod:`maskdpo.trainer.sentences`), cuts about 3,000 sentences a second on this machine against
the rule's 100,000+; on the project's labelled passages both give the same chunks. Response sentences
still come from the shared splitter only: chunks never reach masks or metrics.
"""

from __future__ import annotations

import re

_STOP = re.compile(r"[.!?]+[\"'”’)\]]*\s+(?=[\"'“‘(\[]?[A-Z0-9])")
_ABBREVIATION = re.compile(
    r"(?:^|[\s(\[])(?:Mr|Mrs|Ms|Dr|Prof|Sr|Jr|St|Mt|Ft|Gen|Col|Lt|Sgt|Capt|Rev|Gov|Sen|Rep|Pres|Inc|Ltd|Co|"
    r"Corp|No|Nos|Vol|vs|etc|e\.g|i\.e|approx|ca|Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec|"
    r"[A-Z](?:\.[A-Z])*)\.$"
)


def chunk_text(text: str) -> list[str]:
    """The sentence chunks of ``text``, in order, stripped, none empty."""
    out: list[str] = []
    start = 0
    for stop in _STOP.finditer(text):
        if _ABBREVIATION.search(text[max(start, stop.start() - 12) : stop.start() + 1]):
            continue
        piece = text[start : stop.end()].strip()
        if piece:
            out.append(piece)
        start = stop.end()
    rest = text[start:].strip()
    if rest:
        out.append(rest)
    return out
