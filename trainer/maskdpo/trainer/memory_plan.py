"""The memory one training run needs on each device, planned before any work from the model's shape
(:class:`~maskdpo.trainer.model_shape.ModelShape`), the recipe and the devices.

    plan = plan_memory(shape, Recipe(precision=Precision.BF16, precompute_ref=True), Devices("gpu", 1, 80 * GB))
    plan.total_bytes, plan.fits, plan.verdict

Bytes per parameter, P parameters (all of them divided by the GPU count under FSDP):

| precision    | weights | gradients | optimizer                                             | reference (resident) |
| ------------ | ------- | --------- | ----------------------------------------------------- | -------------------- |
| `float32`    | 4       | 4         | 8: AdamW's two moments in float32                     | 4                    |
| `bf16`       | 2       | 2         | 4: AdamW's two moments in bf16 (``maskdpo train --bf16``) | 2                |
| `bf16_mixed` | 2       | 2         | 12: float32 master weights and moments (FSDP / ZeRO)  | 2                    |

A precomputed reference (``precompute_ref``) keeps only log-probs: no reference row. LoRA keeps the base
frozen in the precision's weight bytes and trains ``r x lora_width`` adapter parameters in float32 (PEFT's
default): 4 + 4 + 8 bytes each; its reference is the base with the adapter disabled: no memory.

Activations, for T = 2 x pairs per forward x max_length tokens per device (chosen and rejected rows, padded
to max_length), c = 2 bytes (16-bit compute) or 4 (float32):

- without gradient checkpointing: ``T x hidden x layers x F``
- with it (TRL's default): ``T x hidden x layers x c`` (each layer's input) ``+ T x hidden x F`` (the one
  layer recomputed in the backward pass)

F = 49 bytes in 16-bit compute, 90 in float32: what one Llama decoder layer (MLP 3.5 x hidden, 4:1
grouped-query attention, SDPA attention) saves for its backward pass per token and hidden unit, measured
with saved-tensor hooks (``tests/unit/trainer/test_memory_plan.py`` measures it again). Other layer shapes
save somewhat more or less.

Workspace: TRL's chunked LM-head log-probs keep no logits but accumulate their backward in float32:
``T x hidden x 6`` (the hidden states' gradient in float32, then cast), ``vocab x hidden x 4`` when the head
is trained, one logits tile ``min(T, 4096) x 32768 x c``; under FSDP also one gathered decoder layer and its
gradients (``2 x layer parameters x c``) and the gathered head (``vocab x hidden x c``).

The total is an upper bound: it adds transient buffers that never coexist (the head's backward runs before
the layers' recomputation) and the activations to the full gradients, which grow as activations are freed.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

from maskdpo.trainer.model_shape import ModelShape

GB = 10**9
GIB = 2**30
LAYER_FACTOR = {2: 49, 4: 90}
"""F: bytes a decoder layer saves for backward per token and hidden unit, by compute bytes (c)."""
HEAD_TOKENS, HEAD_VOCAB = 4096, 32768
"""TRL's logits tile (``trl.kernels.chunked_logprob``): tokens x vocabulary entries."""
LORA_BYTES = (4, 4, 8)
"""An adapter parameter's weight, gradient and AdamW moments: float32."""


class Precision(enum.StrEnum):
    """How the weights, gradients and optimizer state are stored."""

    FLOAT32 = "float32"
    BF16 = "bf16"
    BF16_MIXED = "bf16_mixed"

    @property
    def bytes(self) -> tuple[int, int, int, int]:
        """Weights, gradients, optimizer, reference: bytes per parameter."""
        return {"float32": (4, 4, 8, 4), "bf16": (2, 2, 4, 2), "bf16_mixed": (2, 2, 12, 2)}[self.value]

    @property
    def compute_bytes(self) -> int:
        return 4 if self is Precision.FLOAT32 else 2


@dataclass(frozen=True)
class Recipe:
    """How the run trains (names as in :class:`maskdpo.trainer.run.TrainOptions` where it has them)."""

    precision: Precision = Precision.FLOAT32
    lora: bool = False
    lora_r: int = 8
    precompute_ref: bool = False
    gradient_checkpointing: bool = True
    gpus: int = 1
    fsdp: bool = False
    pairs_per_step: int = 8
    """Pairs per optimizer step, over all devices and micro-batches."""
    grad_accum: int = 1
    max_length: int = 1024

    @property
    def pairs_per_forward(self) -> int:
        return math.ceil(self.pairs_per_step / (self.gpus * self.grad_accum))

    @property
    def tokens(self) -> int:
        """Tokens of one forward pass on one device: chosen and rejected rows of max_length."""
        return 2 * self.pairs_per_forward * self.max_length

    @property
    def shards(self) -> int:
        return self.gpus if self.fsdp else 1

    def describe(self) -> str:
        what = f"LoRA r={self.lora_r} on a {self.precision.value} base" if self.lora else f"full, {self.precision.value}"
        reference = "adapter disabled" if self.lora else "precomputed" if self.precompute_ref else "resident"
        spread = f"FSDP over {self.gpus} GPUs" if self.fsdp else f"{self.gpus} device" + ("s" if self.gpus > 1 else "")
        checkpointing = "gradient checkpointing" if self.gradient_checkpointing else "no gradient checkpointing"
        return (f"{what}; reference {reference}; {spread}; {checkpointing}; {self.pairs_per_forward} pair(s) x "
                f"{self.max_length} tokens per forward")


@dataclass(frozen=True)
class Devices:
    """What the run may use: ``kind`` "gpu" or "cpu", how many, and the memory of one (0 = unknown)."""

    kind: str
    count: int
    memory_bytes: int
    source: str = ""
    """Where the memory figure comes from, e.g. "accelerator_type:H100" or "trainer_gpu_memory_gib"."""

    @property
    def unit(self) -> str:
        return "GPU" if self.kind == "gpu" else "CPU node"


@dataclass(frozen=True)
class Component:
    name: str
    bytes: int
    formula: str


@dataclass(frozen=True)
class MemoryPlan:
    """Bytes per device for each component, and whether their sum fits."""

    shape: ModelShape
    recipe: Recipe
    devices: Devices
    headroom: float
    """Share of a device's memory left free (CUDA context, allocator fragmentation)."""
    components: tuple[Component, ...]

    @property
    def total_bytes(self) -> int:
        return sum(c.bytes for c in self.components)

    @property
    def usable_bytes(self) -> int:
        return int(self.devices.memory_bytes * (1 - self.headroom))

    @property
    def trainable_parameters(self) -> int:
        return self.shape.lora_parameters(self.recipe.lora_r) if self.recipe.lora else self.shape.parameters

    def component(self, name: str) -> int:
        return next(c.bytes for c in self.components if c.name == name)

    @property
    def problems(self) -> list[str]:
        """Why the plan does not fit, with the figures (empty when it fits or cannot be checked)."""
        out = []
        wanted, have, kind = self.recipe.gpus, self.devices.count, self.devices.kind
        if wanted > 1 and (kind != "gpu" or wanted > have):
            out.append(f"needs {wanted} GPUs; the trainer's nodes have {have if kind == 'gpu' else 0}")
        if self.devices.memory_bytes and self.total_bytes > self.usable_bytes:
            states = sum(c.bytes for c in self.components if c.name not in ("activations", "workspace"))
            out.append(
                f"needs {gib(self.total_bytes)} per {self.devices.unit}, more than the {gib(self.usable_bytes)} usable "
                f"of {gib(self.devices.memory_bytes)} ({self.headroom:.0%} headroom); weights, gradients, "
                f"optimizer and reference alone take {gib(states)}"
            )
        return out

    @property
    def fits(self) -> bool:
        return not self.problems

    @property
    def verdict(self) -> str:
        if self.problems:
            return "does not fit: " + "; ".join(self.problems)
        if not self.devices.memory_bytes:
            return f"not checked: the memory of one {self.devices.unit} is unknown ({self.devices.source})"
        return (f"fits: {gib(self.total_bytes)} of the {gib(self.usable_bytes)} usable per "
                f"{self.devices.unit} ({gib(self.devices.memory_bytes)}, {self.headroom:.0%} headroom)")


def gib(n: int) -> str:
    return f"{n / GIB:.1f} GiB"


def plan_memory(shape: ModelShape, recipe: Recipe, devices: Devices, headroom: float = 0.05) -> MemoryPlan:
    """The plan for training ``shape`` with ``recipe`` on ``devices`` (see the module docstring)."""
    p, n = shape.parameters, recipe.shards
    w, g, o, r = recipe.precision.bytes
    each = f"/ {n} GPUs" if n > 1 else ""
    if recipe.lora:
        adapter = shape.lora_parameters(recipe.lora_r)
        lw, lg, lo = LORA_BYTES
        rows = [
            Component("weights", (p * w + adapter * lw) // n,
                      f"{p:,} base x {w} B + {adapter:,} adapter x {lw} B {each}"),
            Component("gradients", adapter * lg // n, f"{adapter:,} adapter x {lg} B {each}"),
            Component("optimizer", adapter * lo // n, f"{adapter:,} adapter x {lo} B {each}"),
            Component("reference", 0, "the base with the adapter disabled"),
        ]
    else:
        rows = [
            Component("weights", p * w // n, f"{p:,} x {w} B {each}"),
            Component("gradients", p * g // n, f"{p:,} x {g} B {each}"),
            Component("optimizer", p * o // n, f"{p:,} x {o} B {each}"),
            Component("reference", 0, "precomputed log-probs") if recipe.precompute_ref
            else Component("reference", p * r // n, f"{p:,} x {r} B {each}"),
        ]
    rows += [_activations(shape, recipe), _workspace(shape, recipe)]
    return MemoryPlan(shape, recipe, devices, headroom, tuple(Component(c.name, c.bytes, c.formula.strip())
                                                           for c in rows))


def _activations(shape: ModelShape, recipe: Recipe) -> Component:
    t, h, layers, c = recipe.tokens, shape.hidden_size, shape.layers, recipe.precision.compute_bytes
    f = LAYER_FACTOR[c]
    if recipe.gradient_checkpointing:
        return Component("activations", t * h * (layers * c + f),
                         f"{t:,} tokens x {h} hidden x ({layers} layers x {c} B + {f} B)")
    return Component("activations", t * h * layers * f, f"{t:,} tokens x {h} hidden x {layers} layers x {f} B")


def _workspace(shape: ModelShape, recipe: Recipe) -> Component:
    t, h, v, c = recipe.tokens, shape.hidden_size, shape.vocab_size, recipe.precision.compute_bytes
    tile = min(t, HEAD_TOKENS)
    total = t * h * 6 + tile * HEAD_VOCAB * c
    parts = [f"{t:,} x {h} x 6 B", f"logits tile {tile:,} x {HEAD_VOCAB} x {c} B"]
    if not recipe.lora:
        total += v * h * 4
        parts.append(f"head gradient {v:,} x {h} x 4 B")
    if recipe.fsdp:
        total += 2 * shape.layer_parameters * c + v * h * c
        parts.append(f"FSDP gathers 2 x {shape.layer_parameters:,} x {c} B + {v:,} x {h} x {c} B")
    return Component("workspace", total, " + ".join(parts))
