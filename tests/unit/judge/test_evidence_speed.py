"""Long evidence is cheap: BM25 narrows an inline reference before anything is embedded, and a registered
knowledge source is embedded once, when registered, and judged against after a restart without
re-embedding its passages."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from maskdpo.server.judge.chunks import chunk_text
from maskdpo.server.judge.embedding import MiniLMEncoder, Vectors
from maskdpo.server.judge.heuristic import HeuristicJudge, HeuristicSettings
from maskdpo.server.judge.labelled_sets import DEFAULT_SENTENCES
from maskdpo.server.judge.types import JudgeRequest, Passage
from maskdpo.server.store.knowledge_sources import KnowledgeStore
from maskdpo.trainer.sentences import split_sentences

FILLER = [f"The village of Ostmark{i} lies on the {i}th bend of the Grey River and has a small chapel."
          for i in range(60)]
FACT = "Tobias Renfrew designed the Pensacola public library in 1921."
PAGE = Passage(" ".join([*FILLER[:30], FACT, *FILLER[30:]]), title="Tobias Renfrew")


class CountingEncoder(MiniLMEncoder):
    """The real encoder, recording every text it embeds."""

    def __init__(self) -> None:
        super().__init__(threads=2)
        self.texts: list[str] = []

    def encode(self, texts: Sequence[str]) -> Vectors:
        self.texts.extend(texts)
        return super().encode(texts)


@pytest.fixture(scope="module")
def encoder() -> CountingEncoder:
    return CountingEncoder()


def judge_of(encoder: CountingEncoder, **overrides: object) -> HeuristicJudge:
    encoder.texts.clear()
    return HeuristicJudge(HeuristicSettings(threads=2), encoder=encoder, **overrides)


def test_bm25_narrows_a_long_reference_before_embedding(encoder: CountingEncoder) -> None:
    judge = judge_of(encoder, candidates=8)
    [judgment] = judge.judge_batch([JudgeRequest("Renfrew designed the public library of Pensacola in 1921.",
                                                 topic="Tobias Renfrew", passages=(PAGE,))])
    assert [v.sentence.label.value for v in judgment.verdicts] == ["ok"]
    assert FACT in judgment.verdicts[0].evidence
    assert len(encoder.texts) == 8 + 1, "8 candidate chunks and the sentence, not all 61 chunks"
    assert FACT in encoder.texts
    judge.judge_batch([JudgeRequest("Renfrew designed a library in 1921.", topic="Tobias Renfrew",
                                    passages=(PAGE,))])
    assert len(encoder.texts) < 2 * 9, "chunks embedded for the first sentence are not embedded again"


def test_every_chunk_of_a_short_reference_is_a_candidate(encoder: CountingEncoder) -> None:
    judge = judge_of(encoder, candidates=8)
    short = Passage(" ".join([*FILLER[:3], FACT]))
    judge.judge_batch([JudgeRequest("Renfrew designed a library.", passages=(short,))])
    assert sorted(encoder.texts[:-1]) == sorted(chunk_text(short.text)) and len(encoder.texts) == 5


def test_a_registered_source_is_embedded_once_and_kept_across_restarts(
    tmp_path: Path, encoder: CountingEncoder
) -> None:
    passages = [PAGE, Passage("Ida Moss (1899-1980) was a painter from Mobile, Alabama.", "Ida Moss")]
    judge = judge_of(encoder)
    index = judge.index(passages)
    assert len(encoder.texts) == sum(len(chunk_text(p.text)) for p in passages)
    KnowledgeStore(tmp_path).create("towns", "", passages, [], index)
    assert KnowledgeStore(tmp_path).get("towns").embedding_model == "all-MiniLM-L6-v2"

    restarted_store = KnowledgeStore(tmp_path)  # the server restarted on the same data folder
    restarted_judge = judge_of(encoder)
    found, _ = restarted_store.resolve("towns", "Tobias Renfrew")
    vectors = restarted_store.chunk_vectors("towns", "Tobias Renfrew")
    assert found == (PAGE,) and vectors is not None and vectors.chunks == (tuple(chunk_text(PAGE.text)),)
    response = "Renfrew designed the public library of Pensacola in 1922. He lived in Ostmark3."
    stored = JudgeRequest(response, topic="Tobias Renfrew", passages=found, chunk_vectors=vectors)
    [judgment] = restarted_judge.judge_batch([stored])
    assert encoder.texts == [s.text_of(response) for s in split_sentences(response)], \
        "only the response's sentences are embedded"
    inline = judge_of(encoder).judge_batch([JudgeRequest(response, topic="Tobias Renfrew", passages=found)])
    assert judgment.sentences == inline[0].sentences
    assert [v.sentence.label.value for v in judgment.verdicts] == ["contradictory", "ok"]
    assert np.allclose(vectors.vectors, index.select([0]).vectors) and index.select([0, 1]) is index


def test_vectors_of_another_model_are_ignored(encoder: CountingEncoder) -> None:
    judge = judge_of(encoder)
    index = judge.index([PAGE])
    alien = type(index)("another-model", index.chunks, index.vectors)
    encoder.texts.clear()
    judge_of(encoder).judge_batch([JudgeRequest("Renfrew designed a library.", passages=(PAGE,),
                                                chunk_vectors=alien)])
    assert len(encoder.texts) > 1, "chunks embedded again with the judge's own model"


def test_chunks_match_the_shared_splitter_on_the_labelled_passages_and_keep_initials() -> None:
    passages = {json.loads(line)["passage"] for line in DEFAULT_SENTENCES.read_text().splitlines() if line}
    for passage in passages:
        assert chunk_text(passage) == [s.text_of(passage) for s in split_sentences(passage)]
    assert chunk_text("Thomas K. Arnold moved to the U.S. Army in 1991. Dr. Lee agreed! \"Yes.\" 3 left.") == [
        "Thomas K. Arnold moved to the U.S. Army in 1991.", "Dr. Lee agreed!", '"Yes."', "3 left."]
    assert chunk_text("  ") == []
