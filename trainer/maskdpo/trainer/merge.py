"""A LoRA adapter merged into its base weights: a plain model folder (safetensors, config, tokenizer).

For users who want full weights (a full-parameter round that starts from an adapter, or serving without
adapters): ``merge_adapter(base, adapter, out)``; the folder is written beside ``out`` and renamed into
place, so a crash never leaves half a model. Weights are saved in the dtype the base declares.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from maskdpo.trainer.durable import flush_tree


def merge_adapter(base: Path, adapter: Path, out: Path) -> Path:
    """Write ``base`` + ``adapter`` (merged) to ``out`` and return it; an existing ``out`` is left alone."""
    if (out / "config.json").is_file():
        return out
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(str(base), dtype=torch.float32)
    declared = model.config.dtype
    merged = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
    staging = out.parent / f".{out.name}.merging"
    shutil.rmtree(staging, ignore_errors=True)
    merged.to(declared if isinstance(declared, torch.dtype) else torch.float32).save_pretrained(str(staging))
    AutoTokenizer.from_pretrained(str(base)).save_pretrained(str(staging))
    for extra in ("chat_template.jinja", "generation_config.json"):
        if (base / extra).is_file() and not (staging / extra).is_file():
            shutil.copy2(base / extra, staging / extra)
    flush_tree(staging)
    staging.rename(out)
    return out
