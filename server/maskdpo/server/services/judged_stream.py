"""StreamGenerate with judging: the text streams on as the engine produces it, and each sentence's verdict
follows as soon as the sentence is complete.

Each sample has one worker. Whenever the sample's text has grown, it asks the shared splitter how far the
text is complete (:func:`~maskdpo.server.judge.growing_text.complete_end`: a sentence is complete once the
next one has begun); when that end has moved, it judges the text up to it -- the answer so far, so each
sentence is judged in the context of what came before it -- and sends the verdicts of the sentences it had
not sent. One judge call per sample runs at a time: sentences completed during a call are judged together
by the next. When the sample finishes, the whole text is judged once more, exactly as Score judges it, and
the sample's last chunk carries the remaining verdicts, the answer's metrics, the judge's identity and the
finish_reason (held back from the engine's last delta, whose text is sent at once).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Awaitable, Callable, Coroutine
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any

from maskdpo.server.generation.types import StreamDelta
from maskdpo.server.judge.growing_text import complete_end
from maskdpo.v1 import common_pb2, factuality_pb2, generation_pb2

JudgeText = Callable[[str], Awaitable[tuple[factuality_pb2.ScoredAnswer, common_pb2.JudgeIdentity]]]
"""Judges one text (a sample's text so far, or all of it) as Score would, and says who judged."""
ToChunk = Callable[[StreamDelta], generation_pb2.GenerateChunk]
Chunk = generation_pb2.GenerateChunk


@dataclass
class _Sample:
    index: int
    text: str = ""
    finished: bool = False
    finish_reason: str = ""
    weight_version: int = 0
    sent: int = 0
    """End offset of the sentences whose verdicts have been sent."""
    grown: asyncio.Event = field(default_factory=asyncio.Event)


def _after(answer: factuality_pb2.ScoredAnswer, offset: int) -> list[factuality_pb2.ScoredSentence]:
    return [s for s in answer.sentences if s.start >= offset]


async def _verdicts(sample: _Sample, judge: JudgeText, out: asyncio.Queue[Any]) -> None:
    while True:
        await sample.grown.wait()
        sample.grown.clear()
        text = sample.text
        if sample.finished:
            answer, identity = await judge(text)
            out.put_nowait(Chunk(index=sample.index, finish_reason=sample.finish_reason,
                                 weight_version=sample.weight_version, verdicts=_after(answer, sample.sent),
                                 metrics=answer.metrics, judge=identity))
            return
        end = sample.sent + complete_end(text[sample.sent :], finished=False)
        if end > sample.sent:
            answer, _ = await judge(text[:end])
            new = _after(answer, sample.sent)
            sample.sent = end
            if new:
                out.put_nowait(Chunk(index=sample.index, weight_version=sample.weight_version, verdicts=new))


async def judged_chunks(deltas: AsyncGenerator[StreamDelta, None], to_chunk: ToChunk,
                        judge: JudgeText) -> AsyncGenerator[Chunk, None]:
    """The chunks of ``deltas`` (through ``to_chunk``) with the verdicts of every sample's sentences
    interleaved as they are judged. Leaving early (or a failure) cancels the judging and closes ``deltas``,
    which aborts the request in the engine."""
    out: asyncio.Queue[Chunk | BaseException | None] = asyncio.Queue()
    samples: dict[int, _Sample] = {}
    tasks: list[asyncio.Task[None]] = []

    def start(work: Coroutine[Any, Any, None]) -> None:
        async def guarded() -> None:
            try:
                await work
            except Exception as exc:  # handed to the consumer, which raises it
                out.put_nowait(exc)

        tasks.append(asyncio.create_task(guarded()))

    async def pump() -> None:
        async with aclosing(deltas):
            async for delta in deltas:
                sample = samples.get(delta.index)
                if sample is None:
                    sample = samples[delta.index] = _Sample(delta.index)
                    start(_verdicts(sample, judge, out))
                sample.text += delta.text
                sample.weight_version = delta.weight_version
                chunk = to_chunk(delta)
                if delta.finished:
                    sample.finished, sample.finish_reason = True, chunk.finish_reason
                    chunk.finish_reason = ""  # the sample's last chunk comes with its last verdicts
                if not delta.finished or chunk.delta or chunk.tokens:
                    out.put_nowait(chunk)
                sample.grown.set()
        for sample in samples.values():  # an engine stream that ended without finishing a sample
            sample.finished = True
            sample.grown.set()
        out.put_nowait(None)

    start(pump())
    pumped, finals = False, 0
    try:
        while not (pumped and finals == len(samples)):
            item = await out.get()
            if item is None:
                pumped = True
                continue
            if isinstance(item, BaseException):
                raise item
            finals += item.HasField("metrics")
            yield item
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
