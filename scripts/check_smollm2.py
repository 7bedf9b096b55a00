"""Check that the built SmolLM2-135M-Instruct folder generates text with transformers and loads in vLLM.

Run: ``python scripts/check_smollm2.py [--engine transformers|vllm|both]``. Builds the folder first when
missing. vLLM on CPU needs ``VLLM_CPU_KVCACHE_SPACE`` (set to 1 GiB here when unset).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

PROMPT = "What is the capital of France? Answer in one sentence."


def check_transformers(path: str) -> str:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": PROMPT}], tokenize=False, add_generation_prompt=True
    )
    inputs = tokenizer(text, return_tensors="pt", add_special_tokens=False)
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=30, do_sample=False)
    return str(tokenizer.decode(out[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True))


def check_vllm(path: str) -> str:
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    from vllm import LLM, SamplingParams

    started = time.perf_counter()
    llm = LLM(model=path, dtype="float32", max_model_len=512)
    print(f"vllm: engine loaded in {time.perf_counter() - started:.1f} s")
    outputs = llm.chat([{"role": "user", "content": PROMPT}], SamplingParams(temperature=0.0, max_tokens=30))
    return str(outputs[0].outputs[0].text)


def main() -> int:
    from maskdpo.server.generation.builtin_models import smollm2_path

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", choices=["transformers", "vllm", "both"], default="both")
    args = parser.parse_args()
    path = str(smollm2_path(build=True))
    if args.engine in ("transformers", "both"):
        started = time.perf_counter()
        answer = check_transformers(path)
        print(f"transformers ({time.perf_counter() - started:.1f} s): {answer!r}")
    if args.engine in ("vllm", "both"):
        started = time.perf_counter()
        answer = check_vllm(path)
        print(f"vllm ({time.perf_counter() - started:.1f} s total): {answer!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
