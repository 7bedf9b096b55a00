"""A sentence the judge reached no verdict for is neutral in every mask, and survives the pair files."""

from __future__ import annotations

import pytest

from maskdpo.trainer.labels import LabeledSentence, SentenceLabel, Span
from maskdpo.trainer.mask_rules import MaskRule, PairRole, sentence_mask
from maskdpo.trainer.pairs import sentences_from_rows, sentences_to_rows

TEXT = "She was born in Lyon. She won the prize."
SENTENCES = (
    LabeledSentence(Span(0, 21), SentenceLabel.OK, "She was born in Lyon."),
    LabeledSentence(Span(22, 40), SentenceLabel.UNVERIFIABLE, "She won the prize.", parsed=False),
)


@pytest.mark.parametrize(("role", "rule", "expected"), [
    (PairRole.CHOSEN, MaskRule.DEFAULT, [True, False]),
    (PairRole.REJECTED, MaskRule.DEFAULT, [False, False]),  # unverifiable, but without a verdict: neutral
    (PairRole.REJECTED, MaskRule.RELEASED, [False, False]),
    (PairRole.REJECTED, MaskRule.ALL, [True, True]),  # vanilla DPO keeps everything
])
def test_an_unparsed_sentence_is_neutral_except_in_vanilla_dpo(role: PairRole, rule: MaskRule,
                                                                 expected: list[bool]) -> None:
    assert sentence_mask(SENTENCES, role, rule) == expected


def test_rows_keep_the_missing_verdict() -> None:
    rows = sentences_to_rows(SENTENCES)
    assert rows[1]["parsed"] is False and "parsed" not in rows[0]
    assert sentences_from_rows(rows, TEXT) == SENTENCES


def test_rows_through_a_datasets_table_keep_every_verdict() -> None:
    """A datasets table fills keys a row lacks with null: a sentence without ``parsed`` stays parsed."""
    from datasets import Dataset

    table = Dataset.from_list([{"s": sentences_to_rows(SENTENCES)}, {"s": sentences_to_rows(SENTENCES[:1])}])
    assert table[1]["s"][0]["parsed"] is None  # what the table hands back
    assert sentences_from_rows(table[0]["s"], TEXT) == SENTENCES
    assert sentences_from_rows(table[1]["s"], TEXT) == SENTENCES[:1]
