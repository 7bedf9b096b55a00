"""Sentence masks in TRL's preference batches: mask rows made once per example, folded in per batch.

At dataset-map time every example gets, per side, a *mask row* (``chosen_mask_row`` / ``rejected_mask_row``):
one byte per prompt+completion token, 0 over the prompt and the sentence token mask over the completion, so
it lines up with the sequence TRL's collator builds. Per batch, :class:`DataCollatorForMaskedPreference`
cuts the rows exactly as TRL truncates its sequences, pads them with zero bytes to the batch width, turns
the whole batch into one tensor from one buffer and multiplies ``completion_mask`` by it: no per-token
Python work per step.

It also adds :data:`TOKEN_COUNTS_KEY`, each row's completion tokens before and after masking, counted on
the host while the batch is still there, so the trainer logs kept-token fractions without reading device
memory during a step.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from trl.trainer.dpo_trainer import DataCollatorForPreference

from maskdpo.trainer.token_masks import Role

MASK_ROW_COLUMNS = {Role.CHOSEN: "chosen_mask_row", Role.REJECTED: "rejected_mask_row"}
TOKEN_COUNTS_KEY = "maskdpo_token_counts"
"""Batch key: ``(2 * pairs, 2)`` int64, per row (chosen rows, then rejected rows) the completion tokens
before masking and the kept ones. Removed before the model sees the batch."""


def mask_row(prompt_len: int, completion_mask: Sequence[int], completion_len: int) -> bytes:
    """The byte row for one side of an example: ``prompt_len`` zeros, then the 0/1 completion mask."""
    if len(completion_mask) != completion_len:
        raise ValueError(f"token mask has {len(completion_mask)} entries for {completion_len} completion ids")
    if not set(completion_mask) <= {0, 1}:
        raise ValueError(f"token mask holds values other than 0 and 1: {sorted(set(completion_mask))}")
    return bytes(prompt_len) + bytes(completion_mask)


@dataclass
class DataCollatorForMaskedPreference(DataCollatorForPreference):
    """TRL's preference collator, with each row's completion mask multiplied by its sentence mask row."""

    def torch_call(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        out = super().torch_call(examples)
        if MASK_ROW_COLUMNS[Role.CHOSEN] not in examples[0]:
            return out
        completion = out["completion_mask"]
        rows, width = completion.shape
        window = self._truncation_window()
        buffer = bytearray()
        for column in MASK_ROW_COLUMNS.values():  # chosen rows first, then rejected: TRL's row order
            for example in examples:
                row = example[column][window]
                buffer += row
                buffer += bytes(max(0, width - len(row)))
        if len(buffer) != rows * width:
            raise ValueError("mask rows do not line up with the batch's prompt+completion ids")
        sentence_mask = torch.frombuffer(buffer, dtype=torch.uint8).view(rows, width)
        kept = completion * sentence_mask
        out[TOKEN_COUNTS_KEY] = torch.stack((completion.sum(dim=1), kept.sum(dim=1)), dim=1)
        out["completion_mask"] = kept
        return out

    def _truncation_window(self) -> slice:
        if self.max_length is None:
            return slice(None)
        if self.truncation_mode == "keep_start":
            return slice(None, self.max_length)
        return slice(-self.max_length, None)
