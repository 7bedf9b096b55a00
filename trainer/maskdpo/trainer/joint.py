"""The joint prompt+response encoding with character offsets, exactly as TRL tokenizes it.

TRL's ``DPOTrainer`` tokenizes the prompt alone and the prompt+completion as one string (through the chat
template for conversational data) and takes the completion ids after their common prefix. Masks must line
up with those ids, so :func:`encode_joint` renders the same joint text, tokenizes it once with the
tokenizer's offset mapping, finds where the response text sits in it, and :func:`completion_mask` turns the
sentence spans into the completion's token mask. If our ids ever differ from TRL's, the caller gets an
error, never a shifted mask.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from maskdpo.trainer.labels import LabeledSentence
from maskdpo.trainer.token_masks import MaskConfig, Role, TokenMaskResult, token_mask

Prompt = str | list[dict[str, Any]]


@dataclass(frozen=True, slots=True)
class JointEncoding:
    text: str
    """The rendered prompt+response text the ids were produced from."""
    ids: list[int]
    offsets: list[tuple[int, int]]
    response_start: int
    """Where the response's first character sits in :attr:`text`."""
    prompt_len: int
    """How many leading ids belong to the prompt (the common prefix with the prompt alone)."""


def is_conversational(prompt: Prompt) -> bool:
    return isinstance(prompt, list)


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def _encode(tokenizer: Any, text: str, add_special_tokens: bool) -> tuple[list[int], list[tuple[int, int]]]:
    enc = tokenizer(text, add_special_tokens=add_special_tokens, return_offsets_mapping=True)
    return list(enc["input_ids"]), [tuple(o) for o in enc["offset_mapping"]]


def encode_joint(
    tokenizer: Any,
    prompt: Prompt,
    response: str,
    *,
    completion_text: str | None = None,
    template_kwargs: dict[str, Any] | None = None,
) -> JointEncoding:
    """Encode prompt+response the way TRL does and locate the response text in it.

    For a text prompt the joint text is ``prompt + completion_text`` (``completion_text`` defaults to the
    response; TRL appends the EOS token to it). For a chat prompt it is the chat template applied to the
    prompt messages plus one assistant message whose content is ``response``.
    """
    kwargs = dict(template_kwargs or {})
    if is_conversational(prompt):
        assert isinstance(prompt, list)
        messages = [*prompt, {"role": "assistant", "content": response}]
        text = tokenizer.apply_chat_template(messages, tokenize=False, **kwargs)
        prompt_text = tokenizer.apply_chat_template(
            prompt, tokenize=False, add_generation_prompt=True, **kwargs
        )
        ids, offsets = _encode(tokenizer, text, add_special_tokens=False)
        prompt_ids, _ = _encode(tokenizer, prompt_text, add_special_tokens=False)
        response_start = _locate(text, response, len(prompt_text) if text.startswith(prompt_text) else 0)
    else:
        assert isinstance(prompt, str)
        text = prompt + (response if completion_text is None else completion_text)
        if not text.startswith(prompt + response):
            raise ValueError("completion_text must start with the response")
        ids, offsets = _encode(tokenizer, text, add_special_tokens=True)
        prompt_ids, _ = _encode(tokenizer, prompt, add_special_tokens=True)
        response_start = len(prompt)
    return JointEncoding(text, ids, offsets, response_start, _common_prefix(prompt_ids, ids))


def _locate(text: str, response: str, search_from: int) -> int:
    """Find the response in the rendered text; chat templates may trim the message content."""
    at = text.find(response, search_from)
    if at >= 0:
        return at
    stripped = response.strip()
    at = text.find(stripped, search_from) if stripped else -1
    if at < 0:
        raise ValueError(
            "the chat template does not render the response text verbatim; cannot place its sentences"
        )
    return at - (len(response) - len(response.lstrip()))


def completion_mask(
    tokenizer: Any,
    prompt: Prompt,
    response: str,
    sentences: Sequence[LabeledSentence],
    role: Role,
    config: MaskConfig,
    *,
    completion_text: str | None = None,
    expected_ids: Sequence[int] | None = None,
    prompt_len: int | None = None,
    max_length: int | None = None,
    truncation_mode: str = "keep_start",
    template_kwargs: dict[str, Any] | None = None,
) -> tuple[JointEncoding, TokenMaskResult]:
    """The token mask of ``response`` (after ``prompt``) for its role, aligned with the completion ids.

    ``expected_ids`` (TRL's prompt_ids + completion ids) and ``prompt_len`` (TRL's prompt length) make it
    check that the encoding is the one the trainer will train on; a mismatch raises ValueError.
    """
    joint = encode_joint(
        tokenizer, prompt, response, completion_text=completion_text, template_kwargs=template_kwargs
    )
    start = joint.prompt_len if prompt_len is None else prompt_len
    if expected_ids is not None and list(expected_ids) != joint.ids:
        raise ValueError(
            f"the joint encoding ({len(joint.ids)} ids) differs from the trainer's ({len(expected_ids)} ids)"
        )
    result = token_mask(
        joint.offsets,
        start,
        joint.response_start,
        len(response),
        sentences,
        role,
        config,
        text=joint.text,
        max_length=max_length,
        truncation_mode=truncation_mode,
    )
    return joint, result
