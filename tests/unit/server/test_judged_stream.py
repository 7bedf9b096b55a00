"""StreamGenerate's judged stream, in-process: a scripted delta source stands in for the engine, and the
real kb judge (called in this process instead of through its Ray actor) judges with the conversion Score
uses. Verdicts must come once per sentence, after the sentence is complete, with offsets into the streamed
text, equal to what Score finds in the finished text, and never hold back the text."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Sequence

import pytest

from maskdpo.server.errors import Unavailable
from maskdpo.server.generation.types import StreamDelta
from maskdpo.server.judge.kb import KbJudge
from maskdpo.server.judge.types import Fact, JudgeRequest
from maskdpo.server.services.judged_stream import judged_chunks
from maskdpo.server.services.judging import AnswerJudge, Scoring
from maskdpo.trainer.mask_rules import MaskRule
from maskdpo.trainer.sentences import split_sentences
from maskdpo.v1 import common_pb2, factuality_pb2, generation_pb2

TOPIC = "Ada Rell"
FACTS = (Fact(TOPIC, "birthplace", "Lyon"), Fact(TOPIC, "occupation", "painter"), Fact(TOPIC, "birth_year", "1901"))
TEXT = ("Ada Rell was born in Lyon in 1901. She worked as a baker. She loved the sea. Her birthplace was Porto. "
        "She was a painter.")
OTHER = "Ada Rell was born in Porto. She was a painter."
SCORING = Scoring(MaskRule.DEFAULT, 10.0, None, 0, 0)


class Judge:
    """The kb judge as the service calls it for one text; records the texts; may be held or fail."""

    def __init__(self, fail_on_call: int = 0) -> None:
        self.backend = KbJudge()
        self.texts: list[str] = []
        self.open = asyncio.Event()
        self.open.set()
        self.fail_on_call = fail_on_call

    def score(self, text: str) -> tuple[factuality_pb2.ScoredAnswer, common_pb2.JudgeIdentity]:
        [judgment] = self.backend.judge_batch([JudgeRequest(response=text, topic=TOPIC, facts=FACTS)])
        answer, _ = AnswerJudge.scored(judgment, AnswerJudge.record(judgment, TOPIC), SCORING)
        return answer, AnswerJudge.identity(judgment, "inline")

    async def __call__(self, text: str) -> tuple[factuality_pb2.ScoredAnswer, common_pb2.JudgeIdentity]:
        self.texts.append(text)
        if len(self.texts) == self.fail_on_call:
            raise Unavailable("the judge 'kb' is not running")
        await self.open.wait()
        return self.score(text)


def pieces(text: str, size: int = 3) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


class Engine:
    """Deltas of samples, interleaved round-robin, each finishing with "stop"; records being closed."""

    def __init__(self, *texts: str, size: int = 3) -> None:
        self.parts = [pieces(t, size) for t in texts]
        self.closed = False
        self.sent = 0

    async def deltas(self) -> AsyncGenerator[StreamDelta, None]:
        try:
            for step in range(max(len(p) for p in self.parts)):
                for index, parts in enumerate(self.parts):
                    if step < len(parts):
                        last = step == len(parts) - 1
                        self.sent += 1
                        yield StreamDelta("r", index, parts[step], (), (), last, "stop" if last else "", 1)
                        await asyncio.sleep(0)  # as a real engine: other tasks run between deltas
        finally:
            self.closed = True


def to_chunk(delta: StreamDelta) -> generation_pb2.GenerateChunk:
    return generation_pb2.GenerateChunk(index=delta.index, delta=delta.text, weight_version=delta.weight_version,
                                        finish_reason=delta.finish_reason if delta.finished else "")


async def collect(engine: Engine, judge: Judge) -> list[generation_pb2.GenerateChunk]:
    return [c async for c in judged_chunks(engine.deltas(), to_chunk, judge)]


def verdicts_of(chunks: Sequence[generation_pb2.GenerateChunk], index: int) -> list[factuality_pb2.ScoredSentence]:
    return [v for c in chunks if c.index == index for v in c.verdicts]


async def test_verdicts_equal_score_on_the_finished_text_and_index_the_streamed_text() -> None:
    judge = Judge()
    chunks = await collect(Engine(TEXT), judge)
    assert "".join(c.delta for c in chunks) == TEXT
    streamed = verdicts_of(chunks, 0)
    expected, identity = judge.score(TEXT)
    assert streamed == list(expected.sentences)
    assert [TEXT[v.start : v.end] for v in streamed] == [v.text for v in streamed]
    assert [common_pb2.SentenceLabel.Name(v.label) for v in streamed] == [
        "SENTENCE_LABEL_OK", "SENTENCE_LABEL_CONTRADICTORY", "SENTENCE_LABEL_UNVERIFIABLE",
        "SENTENCE_LABEL_CONTRADICTORY", "SENTENCE_LABEL_OK"]
    last = chunks[-1]
    assert last.finish_reason == "stop" and last.metrics == expected.metrics and last.judge == identity
    assert [c.finish_reason for c in chunks[:-1]] == [""] * (len(chunks) - 1)


async def test_each_verdict_follows_the_delta_that_completes_its_sentence() -> None:
    chunks = await collect(Engine(TEXT), Judge())
    text = ""
    for chunk in chunks:
        text += chunk.delta
        for verdict in chunk.verdicts:
            later = [s for s in split_sentences(text) if s.start >= verdict.end]
            assert later or chunk.finish_reason, f"verdict of {verdict.text!r} before the next sentence began"
    first_verdict = next(i for i, c in enumerate(chunks) if c.verdicts)
    first_end = split_sentences(TEXT)[0].end
    streamed_before = "".join(c.delta for c in chunks[:first_verdict])
    assert len(streamed_before) <= first_end + 4 + 3  # the ". " and the next sentence's first piece, no more


async def test_the_judge_sees_the_text_so_far_and_each_completed_end_once() -> None:
    judge = Judge()
    await collect(Engine(TEXT), judge)
    ends = [s.end for s in split_sentences(TEXT)]
    assert judge.texts[-1] == TEXT
    assert [len(t) for t in judge.texts[:-1]] == ends[:-1]  # one call per completed sentence, in order
    assert all(TEXT.startswith(t) for t in judge.texts)


async def test_a_slow_judge_does_not_hold_back_the_text() -> None:
    judge = Judge()
    judge.open.clear()
    engine = Engine(TEXT)
    stream = judged_chunks(engine.deltas(), to_chunk, judge)
    text = ""
    while len(text) < len(TEXT):
        chunk = await anext(stream)
        assert not chunk.verdicts
        text += chunk.delta
    assert text == TEXT and judge.texts  # all the text came while the first judge call was still held
    judge.open.set()
    rest = [c async for c in stream]
    assert verdicts_of(rest, 0) == list(judge.score(TEXT)[0].sentences)  # held calls' sentences arrive too
    assert rest[-1].finish_reason == "stop"


async def test_samples_are_judged_separately() -> None:
    judge = Judge()
    chunks = await collect(Engine(TEXT, OTHER), judge)
    for index, text in enumerate((TEXT, OTHER)):
        assert "".join(c.delta for c in chunks if c.index == index) == text
        assert verdicts_of(chunks, index) == list(judge.score(text)[0].sentences)
        finals = [c for c in chunks if c.index == index and c.HasField("metrics")]
        assert len(finals) == 1 and finals[0].finish_reason == "stop"
    assert chunks[-1].HasField("metrics")


async def test_a_judge_failure_ends_the_stream_and_closes_the_engine_stream() -> None:
    engine = Engine(TEXT, size=1)
    with pytest.raises(Unavailable):
        await collect(engine, Judge(fail_on_call=1))
    assert engine.closed and engine.sent < len(TEXT)


async def test_leaving_early_closes_the_engine_stream() -> None:
    engine = Engine(TEXT)
    stream = judged_chunks(engine.deltas(), to_chunk, Judge())
    await anext(stream)
    await stream.aclose()
    assert engine.closed and engine.sent < len(pieces(TEXT))


async def test_an_empty_sample_gets_its_last_chunk_with_metrics() -> None:
    engine = Engine("")
    engine.parts = [[""]]
    chunks = await collect(engine, Judge())
    assert len(chunks) == 1 and chunks[0].finish_reason == "stop" and not chunks[0].verdicts
    assert chunks[0].metrics.counts.ok == 0 and chunks[0].HasField("judge")
