"""Sentence spans -> token masks, checked by decoding the kept tokens back to sentence text."""

from __future__ import annotations

from typing import Any

import pytest

from maskdpo.trainer.joint import completion_mask
from maskdpo.trainer.labels import LabeledSentence, SentenceLabel, Span
from maskdpo.trainer.sentences import split_sentences
from maskdpo.trainer.token_masks import END_OF_TURN, GAP, EndOfTurn, MaskConfig, MaskRule, Role, token_mask

RESPONSE = (
    "Émile Zola was a writer born in Paris in 1840. He lived in Zürich and visited 東京 twice. "
    "I think he is great 😀! Søren Kierkegaard was a philosopher from Kraków.\n\nHe died in São Paulo."
)
LABELS = [
    SentenceLabel.OK,
    SentenceLabel.CONTRADICTORY,
    SentenceLabel.NOFACT,
    SentenceLabel.UNVERIFIABLE,
    SentenceLabel.OK,
]
CHAT_PROMPT = [{"role": "user", "content": "Tell me a bio of Émile Zola."}]
TEXT_PROMPT = "Question: Tell me a bio of Émile Zola.\nAnswer: "


def _sentences(text: str, labels: list[SentenceLabel]) -> list[LabeledSentence]:
    spans = split_sentences(text)
    assert len(spans) == len(labels), [s.text_of(text) for s in spans]
    return [LabeledSentence(s, lab, s.text_of(text)) for s, lab in zip(spans, labels, strict=True)]


def _mask(tok: Any, prompt: Any, role: Role, config: MaskConfig, **kw: Any) -> tuple[list[int], Any]:
    sentences = kw.pop("sentences", None) or _sentences(RESPONSE, LABELS)
    response = kw.pop("response", RESPONSE)
    completion_text = None if isinstance(prompt, list) else response + tok.eos_token
    joint, result = completion_mask(
        tok, prompt, response, sentences, role, config, completion_text=completion_text, **kw
    )
    return joint.ids[joint.prompt_len :], result


@pytest.fixture(params=["tiny", "smollm2"])
def tokenizer(request: pytest.FixtureRequest) -> Any:
    return request.getfixturevalue("tiny_tokenizer" if request.param == "tiny" else "smol_tokenizer")


@pytest.mark.parametrize("prompt", [CHAT_PROMPT, TEXT_PROMPT], ids=["chat", "text"])
@pytest.mark.parametrize("role", [Role.CHOSEN, Role.REJECTED])
def test_kept_tokens_decode_to_their_sentence(tokenizer: Any, prompt: Any, role: Role) -> None:
    sentences = _sentences(RESPONSE, LABELS)
    ids, result = _mask(tokenizer, prompt, role, MaskConfig())
    assert len(result.mask) == len(ids) == len(result.owner)
    expected_kept = [i for i, lab in enumerate(LABELS) if (lab is SentenceLabel.OK) == (role is Role.CHOSEN)]
    expected_kept = [i for i in expected_kept if LABELS[i] is not SentenceLabel.NOFACT]
    for i, sentence in enumerate(sentences):
        own = [t for t, o in zip(ids, result.owner, strict=True) if o == i]
        kept = [t for t, o, m in zip(ids, result.owner, result.mask, strict=True) if o == i and m]
        # every sentence (kept or not) owns exactly its own text, multi-byte characters included
        assert tokenizer.decode(own).strip() == sentence.text
        if i in expected_kept:
            assert tokenizer.decode(kept).strip() == sentence.text
        else:
            assert kept == []
    # nothing outside the kept sentences is kept except the end-of-turn tokens (policy: keep)
    for o, m in zip(result.owner, result.mask, strict=True):
        if o not in expected_kept:
            assert m == (o == END_OF_TURN)
    eot = [t for t, o in zip(ids, result.owner, strict=True) if o == END_OF_TURN]
    assert tokenizer.eos_token in tokenizer.decode(eot)
    assert result.warnings == []


def test_gap_and_end_of_turn_policies(tiny_tokenizer: Any) -> None:
    ids, keep = _mask(tiny_tokenizer, CHAT_PROMPT, Role.CHOSEN, MaskConfig(end_of_turn=EndOfTurn.KEEP))
    _, drop = _mask(tiny_tokenizer, CHAT_PROMPT, Role.CHOSEN, MaskConfig(end_of_turn=EndOfTurn.DROP))
    eot = [k for k, o in enumerate(keep.owner) if o == END_OF_TURN]
    assert eot and all(keep.mask[k] == 1 and drop.mask[k] == 0 for k in eot)
    # the "\n\n" between two sentences belongs to no sentence and is never kept
    gaps = [t for t, o in zip(ids, keep.owner, strict=True) if o == GAP]
    assert tiny_tokenizer.decode(gaps).strip() == ""
    assert all(m == 0 for o, m in zip(keep.owner, keep.mask, strict=True) if o == GAP)


def test_rules_released_and_vanilla(tiny_tokenizer: Any) -> None:
    ids, default = _mask(tiny_tokenizer, CHAT_PROMPT, Role.REJECTED, MaskConfig())
    _, released = _mask(tiny_tokenizer, CHAT_PROMPT, Role.REJECTED, MaskConfig(rule=MaskRule.RELEASED))
    _, vanilla = _mask(tiny_tokenizer, CHAT_PROMPT, Role.REJECTED, MaskConfig(rule=MaskRule.ALL))
    assert vanilla.mask == [1] * len(ids)
    nofact = [k for k, o in enumerate(default.owner) if o == 2]
    incorrect = [k for k, o in enumerate(default.owner) if o in (1, 3)]
    correct = [k for k, o in enumerate(default.owner) if o in (0, 4)]
    assert nofact and all(default.mask[k] == 0 and released.mask[k] == 1 for k in nofact)
    assert all(default.mask[k] == 1 and released.mask[k] == 1 for k in incorrect)
    assert all(default.mask[k] == 0 and released.mask[k] == 0 for k in correct)


@pytest.mark.parametrize("prompt", [CHAT_PROMPT, TEXT_PROMPT], ids=["chat", "text"])
def test_straddling_token_belongs_to_the_sentence_where_it_starts(tokenizer: Any, prompt: Any) -> None:
    response = 'He left Paris."Why?" she asked.'
    boundary = response.index('"')  # sentence 0 = 'He left Paris.', sentence 1 = '"Why?" she asked.'
    sentences = [
        LabeledSentence(Span(0, boundary), SentenceLabel.NOFACT),
        LabeledSentence(Span(boundary, len(response)), SentenceLabel.OK),
    ]
    ids, result = _mask(tokenizer, prompt, Role.CHOSEN, MaskConfig(), sentences=sentences, response=response)
    decoded = [tokenizer.decode([t]) for t in ids]
    straddlers = [k for k, piece in enumerate(decoded) if piece == '."']
    assert straddlers, f"expected a '.\"' token in {decoded}"
    for k in straddlers:
        assert result.owner[k] == 0 and result.mask[k] == 0  # starts in the neutral sentence: neutral
    kept = tokenizer.decode(
        [t for t, o, m in zip(ids, result.owner, result.mask, strict=True) if m and o == 1]
    )
    assert kept == 'Why?" she asked.'  # sentence 1 minus the quote its first token took into sentence 0


def test_truncation_into_a_kept_span_is_reported(tiny_tokenizer: Any) -> None:
    _, full = _mask(tiny_tokenizer, CHAT_PROMPT, Role.CHOSEN, MaskConfig())
    joint_len = len(_mask(tiny_tokenizer, CHAT_PROMPT, Role.CHOSEN, MaskConfig(rule=MaskRule.ALL))[0])
    _, cut = _mask(tiny_tokenizer, CHAT_PROMPT, Role.CHOSEN, MaskConfig(), max_length=40)
    assert joint_len > 40 and cut.truncated_kept_tokens > 0
    assert cut.kept_tokens == sum(full.mask) - cut.truncated_kept_tokens
    assert any("truncation to max_length=40" in w for w in cut.warnings)
    _, gone = _mask(tiny_tokenizer, CHAT_PROMPT, Role.CHOSEN, MaskConfig(), max_length=5)
    assert gone.is_empty and any("no kept token survives" in w for w in gone.warnings)


def test_bad_spans_are_rejected() -> None:
    offsets = [(0, 2), (2, 4), (4, 6)]
    overlapping = [
        LabeledSentence(Span(0, 4), SentenceLabel.OK),
        LabeledSentence(Span(3, 6), SentenceLabel.OK),
    ]
    with pytest.raises(ValueError, match="overlaps"):
        token_mask(offsets, 0, 0, 6, overlapping, Role.CHOSEN, MaskConfig())
    with pytest.raises(ValueError, match="runs past"):
        token_mask(
            offsets, 0, 0, 5, [LabeledSentence(Span(0, 6), SentenceLabel.OK)], Role.CHOSEN, MaskConfig()
        )
