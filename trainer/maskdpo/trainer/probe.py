"""The log-probs of a fixed text under the model just trained, kept beside the saved model.

A server verifies a deploy by comparing its engine's log-probs of a probe text with a reference; computed
here, where the trained model already is (its device, at the end of training), the reference saves the
server from loading the checkpoint again on its CPU. The file records the text, its token ids (no special
tokens added), the teacher-forced log-prob of every token after the first, and the dtype they were
computed in.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

PROBE_FILE = "probe_logprobs.json"


def write_probe(model: Any, tokenizer: Any, text: str, folder: Path) -> Path:
    """Score ``text`` with ``model`` (a transformers or peft model) and write :data:`PROBE_FILE` into
    ``folder`` atomically."""
    import torch

    ids = [int(t) for t in tokenizer(text, add_special_tokens=False)["input_ids"]]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            tensor = torch.tensor([ids], device=next(model.parameters()).device)
            # mixed precision (accelerate) runs forward under bfloat16 autocast; the saved weights are scored
            # in their own dtype by the engine, so the reference is the forward accelerate wrapped
            forward = getattr(model, "_original_forward", None) or model
            logits = forward(input_ids=tensor).logits[0, :-1].float()
            logprobs = torch.log_softmax(logits, dim=-1).gather(1, tensor[0, 1:, None])[:, 0]
    finally:
        model.train(was_training)
    dtype = str(next(model.parameters()).dtype).removeprefix("torch.")
    record = {"text": text, "token_ids": ids, "logprobs": [float(v) for v in logprobs.cpu()], "dtype": dtype}
    path = folder / PROBE_FILE
    staging = folder / f".{PROBE_FILE}.tmp"
    staging.write_text(json.dumps(record))
    os.replace(staging, path)
    return path


def read_probe(folder: Path) -> dict[str, Any] | None:
    """The probe record of a saved model, or None when it has none (or an unreadable one)."""
    try:
        record = json.loads((folder / PROBE_FILE).read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and {"token_ids", "logprobs", "dtype"} <= record.keys() else None
