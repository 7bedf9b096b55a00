"""A sentence of a growing text is complete once the next one has begun (or the text is finished), and the
complete sentences of every prefix are exactly the first sentences of the finished text."""

from __future__ import annotations

import pytest

from maskdpo.server.judge.growing_text import complete_end
from maskdpo.trainer.sentences import split_sentences

TEXTS = [
    "Ada Lind was born in Oslo in 1901. She studied at the U.S. Naval Academy. Later, she worked for Acme Inc. "
    "in Bergen! Did she marry? Yes. Her work, e.g. the Tide Atlas, was praised by Dr. Holt.",
    "Maren Holt is a Norwegian glaciologist born in 1961.  She won the Vega Medal in 2003.\nShe lives in Tromsø.",
    "Taia Zandal was born in Kraisport in 1910. He worked as a surveyor at Velmora Works. He led a busy life.",
]


@pytest.mark.parametrize("text", TEXTS)
def test_every_prefix_completes_exactly_the_finished_texts_first_sentences(text: str) -> None:
    final = split_sentences(text)
    seen_end = 0
    for cut in range(len(text) + 1):
        prefix = text[:cut]
        end = complete_end(prefix, finished=False)
        assert end >= seen_end  # completion never moves back
        seen_end = end
        complete = [s for s in final if s.end <= end]
        assert split_sentences(prefix[:end]) == complete  # the judge of prefix[:end] finds these spans
        assert end == (complete[-1].end if complete else 0)
        if any(s.start < cut for s in final[1:]) and cut < len(text):  # the next sentence has begun
            started = max(i for i, s in enumerate(final) if s.start < cut)
            assert end == final[started - 1].end
    assert complete_end(text, finished=True) == final[-1].end


def test_nothing_is_complete_before_the_next_sentence_begins() -> None:
    assert complete_end("", finished=False) == complete_end("", finished=True) == 0
    assert complete_end("Ada was born in Oslo.", finished=False) == 0
    assert complete_end("Ada was born in Oslo.  ", finished=False) == 0
    assert complete_end("Ada was born in Oslo. S", finished=False) == len("Ada was born in Oslo.")
    assert complete_end("Ada was born in Oslo.", finished=True) == len("Ada was born in Oslo.")
    assert complete_end("She met Dr. ", finished=False) == 0
