"""A tiny, deterministic byte-level BPE tokenizer and Llama model for tests and benchmarks.

``build_tiny_model(path, seed=0)`` trains a byte-level BPE tokenizer on a small built-in corpus (English
biography-style sentences plus some multi-byte text), sets a ChatML-style chat template, builds a
randomly initialised ``LlamaForCausalLM`` (hidden 64, 2 heads of size 32, 2 layers) and saves both to
``path`` in Hugging Face layout (safetensors). The same seed gives the same files. The corpus contains
sentence ends glued to the next sentence (``."He``) so the tokenizer learns tokens that straddle sentences.

Run ``python -m tests.helpers.tiny_model OUT_DIR`` to build one by hand.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]

_NAMES = ["Ada Lovelace", "Alan Turing", "Marie Curie", "Émile Zola", "Jürgen Klopp", "Søren Kierkegaard"]
_PLACES = ["London", "Paris", "Zürich", "Kraków", "São Paulo", "東京", "Reykjavík"]
_JOBS = ["writer", "mathematician", "physicist", "coach", "philosopher", "painter"]
_YEARS = ["1815", "1912", "1867", "1840", "1967", "1813"]


def _corpus() -> list[str]:
    lines: list[str] = []
    for i, name in enumerate(_NAMES):
        for j, place in enumerate(_PLACES):
            job, year = _JOBS[(i + j) % len(_JOBS)], _YEARS[(i * 3 + j) % len(_YEARS)]
            lines.append(f"{name} was a {job} born in {place} in {year}. {name} lived in {place}.")
            lines.append(f'{name} said "hello."He moved to {place}.It was {year}!Then {name} wrote a book.')
            lines.append(f"Tell me a bio of {name}. I think {name} is great 😀. Some say {name} was a {job}.")
    return lines


def build_tokenizer(seed: int = 0):  # type: ignore[no-untyped-def]
    """Train the tiny byte-level BPE tokenizer and wrap it as a transformers fast tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    del seed  # BPE training is deterministic for a fixed corpus; the argument keeps the API uniform
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        min_frequency=2,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_corpus(), trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=None,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token=None,
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


def build_tiny_model(
    path: Path, seed: int = 0, *, hidden_size: int = 64, num_layers: int = 2, num_heads: int = 2
) -> Path:
    """Build the tiny tokenizer + Llama model into ``path`` (created if needed) and return ``path``.

    The defaults give the 2-layer, hidden-64 test model; benchmarks pass bigger sizes (head size stays
    ``hidden_size // num_heads``, keep it >= 32 for vLLM on CPU).
    """
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_heads,
        head_dim=hidden_size // num_heads,
        max_position_embeddings=512,
        tie_word_embeddings=False,
        bos_token_id=None,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(path, safe_serialization=True)
    tokenizer.save_pretrained(path)
    (path / "tiny_model_info.json").write_text(
        json.dumps({"seed": seed, "builder": "tests.helpers.tiny_model"})
    )
    return path


def build_tiny_adapter(base: Path, out: Path, seed: int = 0, rank: int = 8) -> Path:
    """A LoRA adapter of ``base`` as the trainer makes them (every linear layer of the decoder), with
    random non-zero weights (a fresh adapter is a no-op: its B matrices start at zero)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(base), dtype=torch.float32)
    config = LoraConfig(r=rank, lora_alpha=2 * rank, target_modules="all-linear", task_type="CAUSAL_LM")
    lora = get_peft_model(model, config)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, weight in lora.named_parameters():
            if "lora_B" in name:
                weight.copy_(torch.randn(weight.shape, generator=generator) * 0.01)
    lora.save_pretrained(str(out))
    return Path(out)


if __name__ == "__main__":
    print(build_tiny_model(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("tiny-model")))
