"""Which sentences of a preference pair count in the Mask-DPO loss (the sentence-level mask rule).

Mask-DPO sums a response's policy/reference log-ratio only over its "trusted" sentences:

- in the CHOSEN response, sentences labelled ``ok`` (factually correct);
- in the REJECTED response, sentences labelled ``contradictory`` or ``unverifiable`` (incorrect).

Every other sentence is neutral (its tokens stay in the input, but their log-probs are left out of both the
policy and the reference sums). The rule for ``nofact`` sentences is a named option:

- :attr:`MaskRule.DEFAULT`: ``nofact`` is neutral in both roles (the method description's reading);
- :attr:`MaskRule.RELEASED`: ``nofact`` is kept in both roles (what the released training code does: any
  sentence type other than hallucination / no-hallucination is kept on both sides).

This module decides per sentence only; mapping sentences to tokens lives with the token-mask code.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable

from maskdpo.trainer.labels import SentenceLabel


class MaskRule(enum.StrEnum):
    """How ``nofact`` sentences are treated by the mask."""

    DEFAULT = "default"
    """``nofact`` neutral in both chosen and rejected responses."""
    RELEASED = "released"
    """``nofact`` kept in both chosen and rejected responses (the released code's behaviour)."""

    @classmethod
    def parse(cls, value: str) -> MaskRule:
        try:
            return cls(value.strip().lower())
        except ValueError:
            allowed = ", ".join(rule.value for rule in cls)
            raise ValueError(f"unknown mask rule {value!r}; expected one of: {allowed}") from None


class PairRole(enum.StrEnum):
    """Which side of a preference pair a response is on."""

    CHOSEN = "chosen"
    REJECTED = "rejected"

    @classmethod
    def parse(cls, value: str) -> PairRole:
        try:
            return cls(value.strip().lower())
        except ValueError:
            allowed = ", ".join(role.value for role in cls)
            raise ValueError(f"unknown pair role {value!r}; expected one of: {allowed}") from None


def keeps(label: SentenceLabel, role: PairRole | str, rule: MaskRule | str = MaskRule.DEFAULT) -> bool:
    """True when a sentence with ``label`` counts in the loss for a response in ``role`` under ``rule``."""
    role = role if isinstance(role, PairRole) else PairRole.parse(role)
    rule = rule if isinstance(rule, MaskRule) else MaskRule.parse(rule)
    if label is SentenceLabel.NOFACT:
        return rule is MaskRule.RELEASED
    if role is PairRole.CHOSEN:
        return label is SentenceLabel.OK
    return label.is_incorrect


def sentence_mask(
    labels: Iterable[SentenceLabel], role: PairRole | str, rule: MaskRule | str = MaskRule.DEFAULT
) -> list[bool]:
    """One boolean per sentence: True = its tokens count in the loss (see the module docstring)."""
    return [keeps(label, role, rule) for label in labels]
