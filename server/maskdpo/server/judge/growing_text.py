"""Which sentences of a text still being written are complete, by the shared splitter.

    complete_end("Ada was born in Oslo. She", finished=False)   # 21: the first sentence is complete
    complete_end("Ada was born in Oslo.", finished=False)       # 0: another sentence may not have begun
    complete_end("Ada was born in Oslo.", finished=True)        # 21

A sentence is complete once the splitter sees the next sentence begin after it, or when the text is
finished. Waiting for the next sentence rather than for a full stop keeps the boundary where the splitter
puts it in the finished text ("born in 1961. She" ends a sentence; "Dr." or "U.S." followed by more words
does not), so the spans of complete sentences are those a judge finds in the whole answer.
"""

from __future__ import annotations

from maskdpo.trainer.sentences import SplitterConfig, split_sentences


def complete_end(text: str, finished: bool, splitter: SplitterConfig | None = None) -> int:
    """The end offset of the last complete sentence of ``text``; 0 when none is complete yet."""
    spans = split_sentences(text, splitter)
    done = spans if finished else spans[:-1]
    return done[-1].end if done else 0
