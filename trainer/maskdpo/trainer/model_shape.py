"""A causal LM's shape as memory planning needs it, read from its ``config.json`` alone (no weights).

    shape = ModelShape.from_folder(Path("models/Llama-3.1-8B"))
    shape.parameters            # 8,030,261,248
    shape.lora_parameters(16)   # trainable parameters of a rank-16 adapter on every linear layer but the head

The model is built by transformers on torch's ``meta`` device, which allocates no memory, so the counts are
exact for any architecture transformers knows (tied embeddings counted once) and take about a second for 8 B
parameters. :func:`cached_shape` keeps one shape per folder and ``config.json`` modification time.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class ModelShape:
    """Parameter counts and the sizes activations scale with."""

    parameters: int
    """All parameters (shared ones once)."""
    hidden_size: int
    layers: int
    """Decoder layers."""
    vocab_size: int
    """Rows of the output head."""
    head_parameters: int
    """Parameters of the output head (0 when it is tied to the input embeddings)."""
    layer_parameters: int
    """Parameters of the largest decoder layer."""
    lora_width: int
    """Sum of ``in + out`` features over the linear layers a LoRA adapter targets (all but the output head,
    as PEFT's ``target_modules="all-linear"``): a rank-r adapter has ``r x lora_width`` parameters."""
    architecture: str = ""

    def lora_parameters(self, rank: int) -> int:
        return rank * self.lora_width

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> ModelShape:
        """The shape of the model a ``config.json`` (as a dict) describes."""
        import torch
        from transformers import AutoConfig, AutoModelForCausalLM

        values = dict(config)
        model_type = values.pop("model_type", None)
        if not model_type:
            raise ValueError("config.json has no model_type")
        hf_config = AutoConfig.for_model(model_type, **values)
        with torch.device("meta"):
            model = AutoModelForCausalLM.from_config(hf_config)  # type: ignore[no-untyped-call]
        text = hf_config.get_text_config()
        head = model.get_output_embeddings()
        embeddings = model.get_input_embeddings()
        tied = head is not None and head.weight is embeddings.weight
        layers = max((m for m in model.modules() if isinstance(m, torch.nn.ModuleList)), key=len, default=None)
        linear = [
            m for m in model.modules() if isinstance(m, torch.nn.Linear) and m is not head
        ]
        return cls(
            parameters=sum(p.numel() for p in model.parameters()),
            hidden_size=int(text.hidden_size),
            layers=int(text.num_hidden_layers),
            vocab_size=int(head.weight.shape[0] if head is not None else text.vocab_size),
            head_parameters=0 if head is None or tied else sum(p.numel() for p in head.parameters()),
            layer_parameters=max((sum(p.numel() for p in layer.parameters()) for layer in layers or ()), default=0),
            lora_width=sum(m.in_features + m.out_features for m in linear),
            architecture=type(model).__name__,
        )

    @classmethod
    def from_folder(cls, folder: Path) -> ModelShape:
        """The shape of the model in ``folder`` (its ``config.json``); ValueError when there is none."""
        path = Path(folder) / "config.json"
        if not path.is_file():
            raise ValueError(f"{folder} has no config.json")
        return cached_shape(str(path.resolve()), path.stat().st_mtime_ns)


@functools.lru_cache(maxsize=16)
def cached_shape(config_path: str, mtime_ns: int) -> ModelShape:
    """One :class:`ModelShape` per ``config.json`` and modification time (``mtime_ns`` is the cache key)."""
    del mtime_ns
    return ModelShape.from_config(json.loads(Path(config_path).read_text()))
