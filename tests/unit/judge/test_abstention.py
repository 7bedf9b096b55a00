"""Explicit-refusal detection."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from maskdpo.server.judge.abstention import is_refusal, matching_pattern

REFUSALS = [
    "",
    "   ",
    "I'm sorry, but I could not find any information about Jan Kowal.",
    "I apologize, but I cannot find any well-known person named Luis Rivera.",
    "I don't have any information about a person named Lily Brand.",
    "There is no information available about this person.",
    "Hmm. I am unable to provide a biography of Zed Ox without more details.",
    "I'm not aware of anyone named Quin Blue.",
]
ANSWERS = [
    "Jan Kowal is a Polish footballer. There is no information about his later life.",
    "Ada Rell was a painter. She could not find a publisher for her memoirs. I'm sorry to say she died young.",
    "Sorry Seems to Be the Hardest Word is a song by Elton John.",
]


@pytest.mark.parametrize("text", REFUSALS)
def test_refusals_are_detected(text: str) -> None:
    assert is_refusal(text)
    assert matching_pattern(text) is not None


@pytest.mark.parametrize("text", ANSWERS)
def test_answers_are_not_refusals(text: str) -> None:
    assert not is_refusal(text)
    assert matching_pattern(text) is None


def test_agrees_with_the_human_abstention_marks(factscore_dir: Path) -> None:
    """FActScore's annotators left refusals unannotated: the detector must agree on every row."""
    disagreements = []
    for name in ("InstructGPT.jsonl", "ChatGPT.jsonl"):
        for line in (factscore_dir / name).read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            if is_refusal(row["output"]) != (row["annotations"] is None):
                disagreements.append((name, row["topic"]))
    assert disagreements == []
