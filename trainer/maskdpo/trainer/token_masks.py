"""Sentence labels -> per-token masks over a completion, by character offsets.

Mask-DPO sums a response's log-ratio only over the tokens of its "trusted" sentences. This module turns a
response's labelled sentence spans into a 0/1 mask aligned with the completion token ids, using the offset
mapping of the JOINT prompt+response tokenization (sentences are never tokenized alone, so boundaries never
drift). It is tokenizer-agnostic: callers pass the offsets; :mod:`maskdpo.trainer.joint` produces them.

Rules, all named in :class:`MaskConfig`:

- **Mask rule** (which sentences count): ``default`` -- the chosen response keeps ``ok`` sentences, the
  rejected one keeps ``contradictory`` + ``unverifiable``, ``nofact`` is neutral in both; ``released`` -- as
  the released Mask-DPO code, ``nofact`` is kept in both; ``all`` -- every completion token is kept (vanilla
  DPO, bit for bit).
- **Token ownership (straddling tokens)**: a token belongs to the sentence that contains its *anchor*, the
  first non-whitespace character of the token's character span (the first character if the token is all
  whitespace). So ``" Paris"`` belongs to the sentence holding ``P``, and a token ``."`` glued across the end
  of one sentence and the start of the next belongs to the sentence where it starts (the first one).
  Tokens whose anchor lies in no sentence (whitespace between sentences, text the judge did not cover, a
  token that starts in the prompt) are neutral under ``default`` and ``released``.
- **End of turn**: tokens whose anchor lies at or after the end of the response text (EOS, ``<|im_end|>``
  and what the chat template adds after the answer) are ``keep`` (the released code's behaviour) or ``drop``.
- **Unit** (how much of a kept rejected sentence counts): ``sentence`` -- all of it; ``claim`` -- where the
  judge gave the character spans of the values it found wrong (``LabeledSentence.wrong_spans``), only the
  tokens whose anchor lies in one of them, so "born in Kraisport in 1910" with a wrong year pushes down
  the year, not the birthplace or the sentence's opening. A sentence without spans counts whole. The
  chosen side keeps its ``ok`` sentences (all their claims supported) in both units.

Truncation: given ``max_length`` and the truncation side, kept tokens that fall outside the window are
counted and reported in :class:`TokenMaskResult` -- a pair whose kept tokens are all cut off carries no
signal and says so; it never silently becomes vanilla DPO.
"""

from __future__ import annotations

import bisect
import enum
from collections.abc import Sequence
from dataclasses import dataclass, field

from maskdpo.trainer.labels import LabeledSentence, SentenceLabel


class MaskRule(enum.StrEnum):
    DEFAULT = "default"
    RELEASED = "released"
    ALL = "all"


class EndOfTurn(enum.StrEnum):
    KEEP = "keep"
    DROP = "drop"


class MaskUnit(enum.StrEnum):
    SENTENCE = "sentence"
    CLAIM = "claim"


class Role(enum.StrEnum):
    CHOSEN = "chosen"
    REJECTED = "rejected"


# Values of TokenMaskResult.owner for tokens that belong to no sentence.
GAP = -1
"""Whitespace between sentences, uncovered text, or a token that starts in the prompt."""
END_OF_TURN = -2
"""A token at or after the end of the response text."""


@dataclass(frozen=True, slots=True)
class MaskConfig:
    """How sentence labels become token masks (see the module docstring)."""

    rule: MaskRule = MaskRule.DEFAULT
    end_of_turn: EndOfTurn = EndOfTurn.KEEP
    unit: MaskUnit = MaskUnit.SENTENCE

    def __post_init__(self) -> None:
        object.__setattr__(self, "rule", MaskRule(self.rule))
        object.__setattr__(self, "end_of_turn", EndOfTurn(self.end_of_turn))
        object.__setattr__(self, "unit", MaskUnit(self.unit))

    @property
    def identity(self) -> str:
        """A stable name for results and checkpoints, e.g. ``mask=default,eot=keep,owner=anchor``
        (``,unit=claim`` added for claim-level masks)."""
        unit = "" if self.unit is MaskUnit.SENTENCE else f",unit={self.unit.value}"
        return f"mask={self.rule.value},eot={self.end_of_turn.value},owner=anchor{unit}"

    @property
    def is_vanilla(self) -> bool:
        return self.rule is MaskRule.ALL


def sentence_is_kept(label: SentenceLabel, role: Role, rule: MaskRule, parsed: bool = True) -> bool:
    """Whether a sentence with ``label`` counts in the loss of a response in ``role`` under ``rule``: the
    one mask rule of the project (the judge's masks, the token masks and the pair builder all call it).
    A sentence without a verdict (``parsed`` false) is neutral, except under ``all`` (vanilla DPO)."""
    if rule is MaskRule.ALL:
        return True
    if not parsed:
        return False
    if label is SentenceLabel.NOFACT:
        return rule is MaskRule.RELEASED
    if Role(role) is Role.CHOSEN:
        return label is SentenceLabel.OK
    return label.is_incorrect


def position_is_kept(sentence: LabeledSentence, position: int, role: Role, unit: MaskUnit) -> bool:
    """Within a kept sentence, whether the character at ``position`` (relative to the response) counts:
    always at the sentence unit and on the chosen side; at the claim unit, on the rejected side, only inside
    the spans of the sentence's wrong values when the judge gave them."""
    if unit is MaskUnit.SENTENCE or role is Role.CHOSEN or not sentence.wrong_spans:
        return True
    return any(span.start <= position < span.end for span in sentence.wrong_spans)


@dataclass(slots=True)
class TokenMaskResult:
    """The mask of one completion, and what happened while building it."""

    mask: list[int]
    """0/1 per completion token, aligned with the completion ids."""
    owner: list[int]
    """Per completion token: the index of its sentence, or :data:`GAP` / :data:`END_OF_TURN`."""
    kept_sentences: int
    truncated_kept_tokens: int = 0
    """Kept tokens that fall outside the ``max_length`` window (they get no gradient)."""
    warnings: list[str] = field(default_factory=list)

    @property
    def kept_tokens(self) -> int:
        return sum(self.mask) - self.truncated_kept_tokens

    @property
    def kept_fraction(self) -> float:
        return self.kept_tokens / len(self.mask) if self.mask else 0.0

    @property
    def is_empty(self) -> bool:
        """No kept token survives (no sentence kept, or all of them truncated away)."""
        return self.kept_tokens == 0


def _anchor(text: str | None, start: int, end: int) -> int:
    if text is not None:
        for i in range(start, end):
            if not text[i].isspace():
                return i
    return start


def _check_sentences(sentences: Sequence[LabeledSentence], response_len: int) -> None:
    previous_end = 0
    for i, sentence in enumerate(sentences):
        span = sentence.span
        if span.end > response_len:
            raise ValueError(
                f"sentence {i} span [{span.start}, {span.end}) runs past the response ({response_len} chars)"
            )
        if span.start < previous_end:
            raise ValueError(
                f"sentence {i} span [{span.start}, {span.end}) overlaps or precedes sentence {i - 1}"
            )
        for wrong in sentence.wrong_spans:
            if wrong.start < span.start or wrong.end > span.end:
                raise ValueError(
                    f"sentence {i}: wrong-value span [{wrong.start}, {wrong.end}) lies outside the sentence "
                    f"[{span.start}, {span.end})"
                )
        previous_end = span.end


def token_mask(
    offsets: Sequence[tuple[int, int]],
    completion_start: int,
    response_start: int,
    response_len: int,
    sentences: Sequence[LabeledSentence],
    role: Role,
    config: MaskConfig,
    *,
    text: str | None = None,
    max_length: int | None = None,
    truncation_mode: str = "keep_start",
) -> TokenMaskResult:
    """Build the mask of the completion tokens ``offsets[completion_start:]``.

    ``offsets`` are the (start, end) character offsets of every token of the joint encoding, into ``text``
    (the joint rendered text; without it, anchors are token starts). The response occupies
    ``text[response_start : response_start + response_len]``; sentence spans are relative to the response.
    ``max_length`` / ``truncation_mode`` describe the collator's truncation of the joint sequence.
    """
    role = Role(role)
    _check_sentences(sentences, response_len)
    completion = offsets[completion_start:]
    response_end = response_start + response_len
    starts = [s.span.start for s in sentences]
    owner: list[int] = []
    positions: list[int] = []
    for start, end in completion:
        anchor = _anchor(text, start, end)
        rel = anchor - response_start
        positions.append(rel)
        if anchor >= response_end or (start == end == 0 and response_end > 0):
            # after the answer, or a special token a post-processor added without any text position
            owner.append(END_OF_TURN)
            continue
        i = bisect.bisect_right(starts, rel) - 1
        owner.append(i if rel >= 0 and i >= 0 and rel < sentences[i].span.end else GAP)

    keep_sentence = [sentence_is_kept(s.label, role, config.rule, s.parsed) for s in sentences]
    if config.is_vanilla:
        mask = [1] * len(completion)
    else:
        keep_eot = config.end_of_turn is EndOfTurn.KEEP
        mask = [
            int(
                keep_eot
                if o == END_OF_TURN
                else o >= 0 and keep_sentence[o] and position_is_kept(sentences[o], rel, role, config.unit)
            )
            for o, rel in zip(owner, positions, strict=True)
        ]
    result = TokenMaskResult(mask=mask, owner=owner, kept_sentences=sum(keep_sentence))

    owned = set(owner)
    for i, kept in enumerate(keep_sentence):
        if kept and i not in owned and sentences[i].span.end > sentences[i].span.start:
            result.warnings.append(
                f"{role.value}: kept sentence {i} owns no token (its tokens start elsewhere)"
            )

    if max_length is not None:
        total = completion_start + len(completion)
        if total > max_length:
            if truncation_mode == "keep_start":
                first_cut = max(0, max_length - completion_start)
                cut = range(first_cut, len(completion))
            elif truncation_mode == "keep_end":
                cut = range(0, max(0, min(len(completion), total - max_length - completion_start)))
            else:
                raise ValueError(f"unsupported truncation_mode {truncation_mode!r}")
            lost = [k for k in cut if mask[k]]
            result.truncated_kept_tokens = len(lost)
            if lost:
                hit = sorted({owner[k] for k in lost if owner[k] >= 0})
                where = f"sentences {hit}" if hit else "end-of-turn tokens"
                result.warnings.append(
                    f"{role.value}: truncation to max_length={max_length} cuts {len(lost)} kept token(s) of {where}"
                    + ("; no kept token survives, the pair carries no signal" if result.is_empty else "")
                )
    return result
