"""Claim-level masks: a rejected sentence counts only with the tokens of its wrong values (real tokenizers)."""

from __future__ import annotations

from typing import Any

import pytest

from maskdpo.trainer.joint import completion_mask
from maskdpo.trainer.labels import LabeledSentence, SentenceLabel, Span
from maskdpo.trainer.pairs import sentences_from_rows, sentences_to_rows
from maskdpo.trainer.token_masks import MaskConfig, MaskUnit, Role

RESPONSE = "Ada Lind was born in Kraisport in 1910. She is a lawyer at Hollow Works. She likes tea."
PROMPT = [{"role": "user", "content": "Tell me a bio of Ada Lind."}]
WRONG = ("1910", "lawyer", "Hollow Works")


def _span(text: str) -> Span:
    start = RESPONSE.index(text)
    return Span(start, start + len(text))


def _sentence(text: str, label: SentenceLabel, *wrong: str) -> LabeledSentence:
    return LabeledSentence(_span(text), label, text, wrong_spans=tuple(_span(w) for w in wrong))


SENTENCES = (
    _sentence("Ada Lind was born in Kraisport in 1910.", SentenceLabel.CONTRADICTORY, "1910"),
    _sentence("She is a lawyer at Hollow Works.", SentenceLabel.UNVERIFIABLE, "lawyer", "Hollow Works"),
    _sentence("She likes tea.", SentenceLabel.NOFACT),
)


@pytest.fixture(params=["tiny", "smollm2"])
def tokenizer(request: pytest.FixtureRequest) -> Any:
    return request.getfixturevalue("tiny_tokenizer" if request.param == "tiny" else "smol_tokenizer")


def _mask(tok: Any, sentences: Any, role: Role, unit: MaskUnit) -> tuple[Any, list[int]]:
    joint, result = completion_mask(tok, PROMPT, RESPONSE, sentences, role, MaskConfig(end_of_turn="drop", unit=unit))
    return joint, result.mask


def _anchor_in_response(joint: Any, k: int) -> int:
    start, end = joint.offsets[joint.prompt_len + k]
    text = joint.text
    anchor = next((i for i in range(start, end) if not text[i].isspace()), start)
    return anchor - joint.response_start


def test_claim_masks_keep_exactly_the_wrong_value_tokens(tokenizer: Any) -> None:
    joint, mask = _mask(tokenizer, SENTENCES, Role.REJECTED, MaskUnit.CLAIM)
    completion = joint.ids[joint.prompt_len :]
    kept = [k for k, m in enumerate(mask) if m]
    in_values = [
        k for k in range(len(completion))
        if any(s.start <= _anchor_in_response(joint, k) < s.end for s in map(_span, WRONG))
    ]
    assert kept == in_values and kept
    pieces = []
    for value in WRONG:
        span = _span(value)
        ids = [completion[k] for k in kept if span.start <= _anchor_in_response(joint, k) < span.end]
        pieces.append(tokenizer.decode(ids).strip())
    assert pieces == list(WRONG)  # every value, and nothing of "born in Kraisport", "She is a", "at"


def test_sentence_masks_keep_the_whole_wrong_sentences(tokenizer: Any) -> None:
    joint, mask = _mask(tokenizer, SENTENCES, Role.REJECTED, MaskUnit.SENTENCE)
    completion = joint.ids[joint.prompt_len :]
    text = tokenizer.decode([t for t, m in zip(completion, mask, strict=True) if m])
    assert "born in Kraisport" in text and "Hollow Works" in text and "tea" not in text


def test_without_spans_and_on_the_chosen_side_claim_masks_are_sentence_masks(tokenizer: Any) -> None:
    plain = tuple(LabeledSentence(s.span, s.label, s.text) for s in SENTENCES)
    for role in Role:
        assert _mask(tokenizer, plain, role, MaskUnit.CLAIM)[1] == _mask(tokenizer, plain, role, MaskUnit.SENTENCE)[1]
    ok = tuple(LabeledSentence(s.span, SentenceLabel.OK, s.text, wrong_spans=s.wrong_spans) for s in SENTENCES)
    assert _mask(tokenizer, ok, Role.CHOSEN, MaskUnit.CLAIM)[1] == _mask(tokenizer, ok, Role.CHOSEN, MaskUnit.SENTENCE)[1]


def test_wrong_spans_survive_the_pair_rows_and_must_lie_in_their_sentence(tokenizer: Any) -> None:
    rows = sentences_to_rows(SENTENCES)
    assert rows[0]["wrong"] == [[_span("1910").start, _span("1910").end]] and "wrong" not in rows[2]
    assert sentences_from_rows(rows, RESPONSE) == SENTENCES
    bad = (LabeledSentence(SENTENCES[0].span, SentenceLabel.CONTRADICTORY, wrong_spans=(_span("Hollow Works"),)),)
    with pytest.raises(ValueError, match="outside the sentence"):
        _mask(tokenizer, bad, Role.REJECTED, MaskUnit.CLAIM)
