"""Terminal views say what the judge could check: coverage, unmatched sentences, uncheckable answers."""

from __future__ import annotations

import io

from maskdpo.client.display import print_answer, print_batch
from maskdpo.v1 import common_pb2, factuality_pb2


def _answer(uncheckable: bool) -> factuality_pb2.ScoredAnswer:
    answer = factuality_pb2.ScoredAnswer()
    answer.sentences.add(text="Åsa Lind won the Nobel Prize.", label=common_pb2.SENTENCE_LABEL_UNVERIFIABLE,
                         unmatched=True)
    answer.metrics.uncheckable = uncheckable
    answer.metrics.counts.unverifiable = 1
    answer.metrics.coverage.CopyFrom(common_pb2.Coverage(sentences=1, unmatched=1))
    return answer


def test_answer_view_marks_unmatched_sentences_and_an_uncheckable_answer() -> None:
    out = io.StringIO()
    print_answer(_answer(uncheckable=True), out)
    text = out.getvalue()
    assert "unverifiable*" in text and "* unmatched" in text
    assert "checked 0 of 1 sentences, unmatched 1, unparsed 0  |  not checkable by this judge" in text
    assert "abstained" not in text


def test_batch_view_counts_uncheckable_answers() -> None:
    response = factuality_pb2.BatchScoreResponse(answers=[_answer(uncheckable=True)])
    response.metrics.answers, response.metrics.uncheckable, response.metrics.respond_ratio = 1, 1, 1.0
    response.metrics.coverage.CopyFrom(common_pb2.Coverage(sentences=1, unmatched=1))
    out = io.StringIO()
    print_batch(response, out)
    text = out.getvalue()
    assert "not checkable by this judge" in text.splitlines()[1]
    assert "coverage: checked 0 of 1 sentences, unmatched 1, unparsed 0; not checkable by this judge: 1 answer(s)" in text
