"""The llm judge's three-step logic with a scripted judge model (no engine): labels, batching, flags."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pytest

from maskdpo.server.judge import llm_prompts as prompts
from maskdpo.server.judge.llm import LlmJudge
from maskdpo.server.judge.llm_prompts import ChoicePrompt
from maskdpo.server.judge.metrics import compute_metrics
from maskdpo.server.judge.records import from_judgment
from maskdpo.server.judge.registry import build_backend
from maskdpo.server.judge.scoring import sentence_masks
from maskdpo.server.judge.types import JudgeRequest, Passage
from maskdpo.server.services.factuality_convert import scored_answer
from maskdpo.trainer.labels import SentenceLabel
from maskdpo.trainer.mask_rules import MaskRule

PASSAGES = (
    Passage("Marie Curie was born in Warsaw in 1867.", "Marie Curie"),
    Passage("Pierre Curie was a French physicist.", "Pierre Curie"),
)


class Scripted:
    """Answers by rules on the prompt text; records every batch it is asked. A token is a word here."""

    model_name = "scripted"

    def __init__(self, rule: Callable[[str, ChoicePrompt], str], max_prompt_tokens: int = 100_000) -> None:
        self.rule = rule
        self.max_prompt_tokens = max_prompt_tokens
        self.batches: list[list[ChoicePrompt]] = []

    def prompt_tokens(self, prompt: ChoicePrompt) -> int:
        return sum(len(content.split()) for _, content in prompt.messages)

    def choose(self, batch: Sequence[ChoicePrompt]) -> list[str]:
        self.batches.append(list(batch))
        return [self.rule(p.messages[-1][1], p) for p in batch]


def step(prompt: ChoicePrompt) -> int:
    return int(prompt.messages[-1][1].split("\nStep ")[1][0])


def sentence(text: str) -> str:
    return text.split("\nSentence: ")[1].split("\n")[0]


def sensible(text: str, prompt: ChoicePrompt) -> str:
    s = sentence(text)
    if step(prompt) == 1:
        return "no" if s.startswith("Hello") else "yes"
    if step(prompt) == 2:
        return "none" if "Nobel" in s else "1"
    return "ok" if "Warsaw" in s else "contradictory"


RESPONSE = "Hello there. Marie Curie was born in Warsaw. She was born in 1901. She won a Nobel Prize."


def test_three_steps_label_every_sentence() -> None:
    chooser = Scripted(sensible)
    judge = LlmJudge(chooser=chooser)
    [judgment] = judge.judge_batch([JudgeRequest(response=RESPONSE, passages=PASSAGES)])
    labels = [v.sentence.label for v in judgment.verdicts]
    assert labels == [
        SentenceLabel.NOFACT,
        SentenceLabel.OK,
        SentenceLabel.CONTRADICTORY,
        SentenceLabel.UNVERIFIABLE,
    ]
    assert [v.sentence.text for v in judgment.verdicts][1] == "Marie Curie was born in Warsaw."
    assert "[1] Marie Curie" in judgment.verdicts[1].evidence
    assert [(v.facts, v.supported) for v in judgment.verdicts] == [(0, 0), (1, 1), (1, 0), (1, 0)]
    assert judgment.identity.backend == "llm" and judgment.identity.model == "scripted"
    assert judgment.identity.prompt_version == prompts.PROMPT_VERSION
    assert not judgment.identity.heuristic


def test_each_step_is_one_batch_across_requests_with_reference_first() -> None:
    chooser = Scripted(sensible)
    requests = [
        JudgeRequest(response=RESPONSE, passages=PASSAGES),
        JudgeRequest(response="Hello. It is 1867.", passages=PASSAGES),
    ]
    LlmJudge(chooser=chooser).judge_batch(requests)
    assert [len(b) for b in chooser.batches] == [6, 4, 3]  # 6 sentences; 4 facts; 3 with a passage
    user = chooser.batches[0][0].messages[-1][1]
    assert user.startswith("Reference passages:\n[1] Marie Curie: Marie Curie was born in Warsaw")
    assert user.index("Response under review:") < user.index("Sentence:")
    assert chooser.batches[1][0].choices == ("1", "2", "none")


@pytest.mark.parametrize("bad_step", [1, 2, 3])
def test_unparseable_answer_is_reported_as_unparsed_never_ok(bad_step: int) -> None:
    def rule(text: str, prompt: ChoicePrompt) -> str:
        return "I think so!" if step(prompt) == bad_step else {1: "yes", 2: "1", 3: "ok"}[step(prompt)]

    judge = LlmJudge(chooser=Scripted(rule))
    [judgment] = judge.judge_batch(
        [JudgeRequest(response="Marie Curie was born in Warsaw.", passages=PASSAGES)]
    )
    [verdict] = judgment.verdicts
    assert verdict.sentence.label is SentenceLabel.UNVERIFIABLE and not verdict.parsed
    assert verdict.evidence.startswith(f"no verdict: step {bad_step} answer 'I think so!' could not be read")
    assert sentence_masks(judgment, "chosen") == sentence_masks(judgment, "rejected") == [False]
    scored = scored_answer(judgment, MaskRule.DEFAULT, compute_metrics([from_judgment(judgment)], resamples=0))
    assert scored.sentences[0].unparsed and not scored.sentences[0].rejected_mask
    assert scored.metrics.coverage.unparsed == 1 and scored.metrics.coverage.sentences == 1


def test_no_passages_is_unverifiable_without_asking_step_2() -> None:
    chooser = Scripted(lambda text, prompt: "yes")
    [judgment] = LlmJudge(chooser=chooser).judge_batch([JudgeRequest(response="She was born in 1867.")])
    assert judgment.verdicts[0].sentence.label is SentenceLabel.UNVERIFIABLE
    assert "no reference passages" in judgment.verdicts[0].evidence
    assert len(chooser.batches) == 1


def test_too_many_passages_keeps_the_most_overlapping_and_says_so() -> None:
    many = tuple(Passage(f"Unrelated text number {i}.", f"P{i}") for i in range(5)) + PASSAGES
    chooser = Scripted(sensible)
    judge = LlmJudge(chooser=chooser, max_passages=2)
    [judgment] = judge.judge_batch([JudgeRequest(response="Marie Curie was born in Warsaw.", passages=many)])
    assert "2 of 7 passages shown" in judgment.verdicts[0].evidence
    assert chooser.batches[0][0].messages[-1][1].startswith("Reference passages:\n[1] Marie Curie")


def test_parse_choice_tolerates_case_and_punctuation_only() -> None:
    assert prompts.parse_choice(" OK.", prompts.VERDICT_CHOICES) == "ok"
    assert prompts.parse_choice("[2]", ("1", "2", "none")) == "2"
    assert prompts.parse_choice("ok, mostly", prompts.VERDICT_CHOICES) is None
    assert prompts.parse_choice("", prompts.FACT_CHOICES) is None


def test_registry_builds_the_llm_backend() -> None:
    judge = build_backend("llm", chooser=Scripted(sensible))
    assert isinstance(judge, LlmJudge)


FILLER = [Passage(" ".join(f"filler{i}x{j}" for j in range(300)), title=f"page {i}") for i in range(10)]
LONG_PAGE = (*FILLER, Passage("Marie Curie was born in Warsaw in 1867.", title="Curie"))


def test_every_prompt_fits_the_model_on_long_passages_and_keeps_the_relevant_one() -> None:
    chooser = Scripted(lambda text, prompt: {1: "yes", 2: "1", 3: "ok"}[step(prompt)], max_prompt_tokens=900)
    [judgment] = LlmJudge(chooser=chooser).judge_batch(
        [JudgeRequest(response="Marie Curie was born in Warsaw.", topic="Marie Curie", passages=LONG_PAGE)]
    )
    asked = [p for batch in chooser.batches for p in batch]
    assert asked and all(chooser.prompt_tokens(p) <= 900 for p in asked)
    assert all("Warsaw in 1867" in p.messages[-1][1] for p in asked)  # the passage that matters survives
    [verdict] = judgment.verdicts
    assert verdict.parsed and verdict.sentence.label is SentenceLabel.OK
    assert "passages shown (most words shared with the sentence)" in verdict.evidence


def test_a_prompt_that_cannot_fit_is_an_error_in_the_result_not_a_label() -> None:
    chooser = Scripted(lambda text, prompt: "yes", max_prompt_tokens=20)
    [judgment] = LlmJudge(chooser=chooser).judge_batch(
        [JudgeRequest(response="Marie Curie was born in Warsaw in the year 1867 to a family of teachers.",
                      passages=PASSAGES)]
    )
    [verdict] = judgment.verdicts
    assert not verdict.parsed and verdict.evidence.startswith("no verdict: the shortest prompt")
    assert chooser.batches == []  # nothing was asked of the model
