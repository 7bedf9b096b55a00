"""Prompts and answer parsing of the ``llm`` judge's three steps (ANAH-v2 style).

Every prompt starts with a block of reference passages and the response under review; the three steps of
one sentence share it (vLLM's prefix cache reuses it), and sentences that are shown the same passages
share it too; only the sentence and the question at the end differ. Answers are constrained to the listed choices; a reply
outside them is reported as unparseable by :func:`parse_choice` (the judge then labels the sentence
unverifiable and says so in the evidence, never ok).

Change :data:`PROMPT_VERSION` whenever a prompt or a choice changes: it is part of the judge identity.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from maskdpo.server.judge.types import Passage

PROMPT_VERSION = "anah3-2025.1"

SYSTEM = "You are a careful fact checker. Answer with exactly one of the allowed answers and nothing else."

FACT_CHOICES = ("yes", "no")
NONE_CHOICE = "none"
VERDICT_CHOICES = ("ok", "contradictory", "unverifiable")


@dataclass(frozen=True, slots=True)
class ChoicePrompt:
    """One constrained question: chat messages and the answers allowed."""

    messages: tuple[tuple[str, str], ...]
    choices: tuple[str, ...]


def clip(text: str, max_chars: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= max_chars else text[: max_chars - 3].rstrip() + "..."


def context_block(passages: Sequence[Passage], response: str, max_chars: int, response_chars: int = 0) -> str:
    """The prefix of a sentence's prompts: numbered reference passages (each clipped to ``max_chars``), then
    the response under review (clipped to ``response_chars``, default 4 x ``max_chars``)."""
    lines = ["Reference passages:"]
    if passages:
        for number, passage in enumerate(passages, start=1):
            title = f"{passage.title}: " if passage.title else ""
            lines.append(f"[{number}] {title}{clip(passage.text, max_chars)}")
    else:
        lines.append("(none)")
    lines += ["", "Response under review:", clip(response, response_chars or 4 * max_chars), ""]
    return "\n".join(lines)


def _prompt(context: str, sentence: str, question: str, choices: tuple[str, ...]) -> ChoicePrompt:
    allowed = " / ".join(choices)
    user = f"{context}\nSentence: {sentence}\n\n{question}\nAllowed answers: {allowed}"
    return ChoicePrompt((("system", SYSTEM), ("user", user)), choices)


def fact_prompt(context: str, sentence: str) -> ChoicePrompt:
    """Step 1: does the sentence state a checkable fact?"""
    question = (
        "Step 1. Does the sentence state at least one fact about the world that could be checked "
        "(a name, date, place, number, event or relation)? Greetings, opinions and filler are not facts."
    )
    return _prompt(context, sentence, question, FACT_CHOICES)


def evidence_prompt(context: str, sentence: str, passages: int) -> ChoicePrompt:
    """Step 2: which numbered passage is relevant to checking the sentence (or none)?"""
    choices = (*(str(i) for i in range(1, passages + 1)), NONE_CHOICE)
    question = (
        "Step 2. Which reference passage contains the information needed to check the sentence? "
        f"Answer with its number, or {NONE_CHOICE} if no passage covers it."
    )
    return _prompt(context, sentence, question, choices)


def verdict_prompt(context: str, sentence: str, passage_number: int) -> ChoicePrompt:
    """Step 3: given the picked passage, is the sentence supported, contradicted or not addressed?"""
    question = (
        f"Step 3. Using reference passage [{passage_number}], judge the sentence: ok if the passage supports "
        "every fact in it, contradictory if the passage contradicts any of them, unverifiable if the passage "
        "neither supports nor contradicts it."
    )
    return _prompt(context, sentence, question, VERDICT_CHOICES)


def parse_choice(answer: str, choices: Sequence[str]) -> str | None:
    """The allowed answer ``answer`` names (case, spaces, brackets and a final period ignored), else None."""
    cleaned = answer.strip().strip("[]().").strip().lower()
    for choice in choices:
        if cleaned == choice.lower():
            return choice
    return None
