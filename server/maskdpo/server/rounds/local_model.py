"""Generation with transformers on a model folder, in this process: what
:class:`~maskdpo.server.rounds.workers.LocalGenerator` decodes with when rounds run without engines (in
tests, in one process). A round controller on Ray decodes on engines and loads no model here. Models are
cached per folder.
"""

from __future__ import annotations

import functools
import json
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from maskdpo.server.generation.weights import ADAPTER_CONFIG, is_adapter

_LOCK = threading.Lock()


LOADS = [0]
"""How many models this process has loaded (a LoRA round must load none: every side runs on the engine)."""


@functools.lru_cache(maxsize=2)
def _load(path: str, stamp: float) -> tuple[Any, Any]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    del stamp  # part of the cache key: a rewritten folder is loaded again
    LOADS[0] += 1
    base = _base_of(Path(path))
    tokenizer = AutoTokenizer.from_pretrained(str(base))
    tokenizer.padding_side = "left"
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    model: Any = AutoModelForCausalLM.from_pretrained(str(base), dtype=torch.float32)
    if base != Path(path):
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, path)
    model.eval()
    return model, tokenizer


def _base_of(folder: Path) -> Path:
    """The folder of full weights: ``folder`` itself, or the base a LoRA adapter folder was trained on."""
    if not is_adapter(folder):
        return folder
    return Path(json.loads((folder / ADAPTER_CONFIG).read_text())["base_model_name_or_path"])


def load(path: Path) -> tuple[Any, Any]:
    """The model and tokenizer of a model folder, or of a LoRA adapter folder on its base."""
    marker = path / (ADAPTER_CONFIG if is_adapter(path) else "config.json")
    if not marker.is_file():
        raise FileNotFoundError(f"{path} is not a model folder (no config.json)")
    return _load(str(path), marker.stat().st_mtime)


def generate(
    path: Path,
    prompts: Sequence[str],
    *,
    n: int = 1,
    greedy: bool = True,
    temperature: float = 1.0,
    top_p: float = 1.0,
    top_k: int = 0,
    max_tokens: int = 96,
    seed: int = 0,
    batch_size: int = 16,
) -> list[list[str]]:
    """Per prompt (a user message; the chat template is applied): ``n`` answers (1 when ``greedy``)."""
    import torch

    with _LOCK:
        model, tokenizer = load(path)
        per_prompt = 1 if greedy else n
        texts = [
            tokenizer.apply_chat_template(
                [{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True
            )
            for p in prompts
        ]
        out: list[list[str]] = []
        for start in range(0, len(texts), batch_size):
            torch.manual_seed(seed + start)
            batch = tokenizer(
                texts[start : start + batch_size], return_tensors="pt", padding=True, add_special_tokens=False
            )
            kwargs: dict[str, Any] = (
                {"do_sample": False}
                if greedy
                else {"do_sample": True, "temperature": temperature, "top_p": top_p, "top_k": top_k or 0}
            )
            with torch.no_grad():
                ids = model.generate(
                    **batch,
                    num_return_sequences=per_prompt,
                    max_new_tokens=max_tokens,
                    eos_token_id=_stop_ids(tokenizer),
                    pad_token_id=tokenizer.pad_token_id,
                    **kwargs,
                )
            decoded = tokenizer.batch_decode(ids[:, batch["input_ids"].shape[1] :], skip_special_tokens=True)
            out.extend(
                [t.strip() for t in decoded[i : i + per_prompt]] for i in range(0, len(decoded), per_prompt)
            )
        return out


def _stop_ids(tokenizer: Any) -> list[int]:
    ids = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    end = tokenizer.convert_tokens_to_ids("<|im_end|>") if "<|im_end|>" in tokenizer.get_vocab() else None
    if end is not None and end not in ids:
        ids.append(end)
    return ids
