"""Per-sentence mask decisions for whole responses, on the trainer's mask vocabulary.

The rule itself (which labels count for the chosen / rejected role under ``default``, ``released`` or
``all``) lives in :func:`maskdpo.trainer.token_masks.sentence_is_kept`; this module re-exports that
vocabulary under the names the scoring code uses and applies it to a list of sentence labels, with
string parsing that names the allowed values. ``PairRole`` is :class:`maskdpo.trainer.token_masks.Role`.
"""

from __future__ import annotations

from collections.abc import Iterable

from maskdpo.trainer.labels import LabeledSentence, SentenceLabel
from maskdpo.trainer.token_masks import MaskRule, sentence_is_kept
from maskdpo.trainer.token_masks import Role as PairRole

__all__ = ["MaskRule", "PairRole", "keeps", "parse_role", "parse_rule", "sentence_mask"]


def parse_rule(value: MaskRule | str) -> MaskRule:
    """A mask rule from its name, case-insensitively; ValueError naming the allowed values."""
    if isinstance(value, MaskRule):
        return value
    try:
        return MaskRule(value.strip().lower())
    except ValueError:
        allowed = ", ".join(rule.value for rule in MaskRule)
        raise ValueError(f"unknown mask rule {value!r}; expected one of: {allowed}") from None


def parse_role(value: PairRole | str) -> PairRole:
    """A pair role from its name, case-insensitively; ValueError naming the allowed values."""
    if isinstance(value, PairRole):
        return value
    try:
        return PairRole(value.strip().lower())
    except ValueError:
        allowed = ", ".join(role.value for role in PairRole)
        raise ValueError(f"unknown pair role {value!r}; expected one of: {allowed}") from None


def keeps(label: SentenceLabel, role: PairRole | str, rule: MaskRule | str = MaskRule.DEFAULT,
          parsed: bool = True) -> bool:
    """True when a sentence with ``label`` counts in the loss for a response in ``role`` under ``rule``."""
    return sentence_is_kept(label, parse_role(role), parse_rule(rule), parsed)


def sentence_mask(
    sentences: Iterable[LabeledSentence], role: PairRole | str, rule: MaskRule | str = MaskRule.DEFAULT
) -> list[bool]:
    """One boolean per sentence: True = its tokens count in the loss."""
    rule, role = parse_rule(rule), parse_role(role)
    return [sentence_is_kept(s.label, role, rule, s.parsed) for s in sentences]
