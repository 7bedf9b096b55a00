"""The memory plan's arithmetic on Llama-3.1-8B's config (figures checked against a hand calculation),
its parameter counts from the config alone, and the activation factor measured again on a real model."""

from __future__ import annotations

import pytest
import torch

from maskdpo.trainer.memory_plan import GB, LAYER_FACTOR, Devices, Precision, Recipe, plan_memory
from maskdpo.trainer.model_shape import ModelShape
from tests.conftest import LLAMA_8B

H100S = Devices("gpu", 8, 80 * GB, "accelerator_type:H100")

# Llama-3.1-8B by hand: hidden 4096, 32 layers, 32 heads of 128, 8 KV heads, MLP 14336, vocab 128256, untied.
EMBED = 128256 * 4096                                  # 525,336,576 (input embeddings; the head is the same size)
ATTENTION = 2 * 4096 * 4096 + 2 * 4096 * 1024          # q, o + k, v = 41,943,040
MLP = 3 * 4096 * 14336                                 # gate, up, down = 176,160,768
LAYER = ATTENTION + MLP + 2 * 4096                     # + two RMSNorms = 218,112,000
P = 2 * EMBED + 32 * LAYER + 4096                      # + final norm = 8,030,261,248
LORA_WIDTH = 32 * ((4096 + 4096) * 2 + (4096 + 1024) * 2 + 3 * (4096 + 14336))  # in + out of every linear
T8 = 2 * 8 * 1024                                      # 8 pairs, chosen + rejected rows of 1024 tokens
TILE = 4096 * 32768                                    # TRL's logits tile, elements
HEAD = 128256 * 4096                                   # output head, elements


@pytest.fixture(scope="module")
def llama() -> ModelShape:
    return ModelShape.from_folder(LLAMA_8B)


def test_parameters_are_counted_from_the_config_alone(llama: ModelShape) -> None:
    assert P == 8_030_261_248
    assert (llama.parameters, llama.layer_parameters, llama.head_parameters) == (P, LAYER, EMBED)
    assert (llama.hidden_size, llama.layers, llama.vocab_size) == (4096, 32, 128256)
    assert llama.lora_width == LORA_WIDTH and llama.lora_parameters(8) == 20_971_520


def test_full_float32_is_refused_on_80_gb_gpus(llama: ModelShape) -> None:
    plan = plan_memory(llama, Recipe(precision=Precision.FLOAT32), H100S)
    states = 4 * P + 4 * P + 8 * P + 4 * P             # weights, gradients, AdamW m + v, resident reference
    activations = T8 * 4096 * (32 * 4 + 90)            # checkpointed layer inputs (fp32) + one layer recomputed
    workspace = T8 * 4096 * 6 + TILE * 4 + HEAD * 4   # hidden-state gradient, logits tile, fp32 head gradient
    assert (states, activations, workspace) == (160_605_224_960, 14_629_732_352, 3_040_870_400)
    assert plan.total_bytes == states + activations + workspace == 178_275_827_712  # 166.0 GiB
    assert plan.usable_bytes == 76 * GB                # 80 GB less 5 % headroom = 70.8 GiB
    assert not plan.fits
    assert plan.verdict == (
        "does not fit: needs 166.0 GiB per GPU, more than the 70.8 GiB usable of 74.5 GiB (5% headroom); "
        "weights, gradients, optimizer and reference alone take 149.6 GiB")


def test_lora_on_a_bf16_base_fits_one_80_gb_gpu(llama: ModelShape) -> None:
    plan = plan_memory(llama, Recipe(precision=Precision.BF16, lora=True, lora_r=8), H100S)
    adapter = 8 * LORA_WIDTH                           # 20,971,520 float32 parameters
    expected = {
        "weights": 2 * P + 4 * adapter,                # frozen bf16 base + float32 adapter
        "gradients": 4 * adapter,
        "optimizer": 8 * adapter,
        "reference": 0,                                # the base with the adapter disabled
        "activations": T8 * 4096 * (32 * 2 + 49),
        "workspace": T8 * 4096 * 6 + TILE * 2,         # the head is frozen: no head gradient
    }
    assert {c.name: c.bytes for c in plan.components} == expected
    assert plan.total_bytes == 24_650_457_088 and plan.fits      # 23.0 GiB of 70.8
    assert plan.trainable_parameters == adapter


def test_full_bf16_precomputed_reference_sharded_over_8_gpus_fits(llama: ModelShape) -> None:
    recipe = Recipe(precision=Precision.BF16_MIXED, precompute_ref=True, gpus=8, fsdp=True)
    plan = plan_memory(llama, recipe, H100S)
    t = 2 * 1 * 1024                                   # 8 pairs per step over 8 GPUs: 1 pair per forward
    expected = {
        "weights": 2 * P // 8,
        "gradients": 2 * P // 8,
        "optimizer": 12 * P // 8,                      # float32 master weights + AdamW m + v, sharded
        "reference": 0,                                # precomputed log-probs
        "activations": t * 4096 * (32 * 2 + 49),
        "workspace": t * 4096 * 6 + t * 32768 * 2 + HEAD * 4 + 2 * LAYER * 2 + HEAD * 2,  # + FSDP gathers
    }
    assert {c.name: c.bytes for c in plan.components} == expected
    assert plan.total_bytes == 21_217_452_032 and plan.fits      # 19.8 GiB
    assert plan.recipe.tokens == t


def test_more_gpus_than_offered_and_unknown_memory() -> None:
    shape = ModelShape(1000, 64, 2, 100, 6400, 400, 900)
    short = plan_memory(shape, Recipe(gpus=16, fsdp=True), H100S)
    assert not short.fits and "needs 16 GPUs; the trainer's nodes have 8" in short.verdict
    on_cpu = plan_memory(shape, Recipe(gpus=2), Devices("cpu", 1, 10 * GB))
    assert not on_cpu.fits and "needs 2 GPUs; the trainer's nodes have 0" in on_cpu.verdict
    unknown = plan_memory(shape, Recipe(), Devices("gpu", 1, 0, "accelerator type X: set trainer_gpu_memory_gib"))
    assert unknown.fits and unknown.verdict.startswith("not checked")


def _saved_bytes_per_token_hidden_layer(dtype: torch.dtype, checkpointing: bool) -> float:
    """Bytes a decoder layer of a Llama-3-shaped model saves for backward, per token and hidden unit: the
    difference between a 2-layer and a 1-layer model, counted by saved-tensor hooks (parameters excluded)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    tokens, hidden = 2 * 128, 256

    def saved(layers: int) -> int:
        config = LlamaConfig(vocab_size=512, hidden_size=hidden, intermediate_size=7 * hidden // 2,
                             num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=1,
                             head_dim=hidden // 4, tie_word_embeddings=False, attn_implementation="sdpa")
        torch.manual_seed(0)
        model = LlamaForCausalLM(config).to(dtype).train()
        if checkpointing:
            model.gradient_checkpointing_enable()
        params = {p.untyped_storage().data_ptr() for p in model.parameters()}
        storages: dict[int, int] = {}

        def pack(t: torch.Tensor) -> torch.Tensor:
            if t.untyped_storage().data_ptr() not in params:
                storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            model.model(input_ids=torch.randint(0, 512, (2, tokens // 2)), use_cache=False)
        return sum(storages.values())

    return (saved(2) - saved(1)) / (tokens * hidden)


@pytest.mark.parametrize(("dtype", "c"), [(torch.bfloat16, 2), (torch.float32, 4)])
def test_the_activation_factor_is_what_a_llama_layer_saves(dtype: torch.dtype, c: int) -> None:
    assert _saved_bytes_per_token_hidden_layer(dtype, False) == pytest.approx(LAYER_FACTOR[c], rel=0.02)
    assert _saved_bytes_per_token_hidden_layer(dtype, True) == pytest.approx(c, rel=0.02)
