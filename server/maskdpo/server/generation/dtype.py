"""Which dtype an engine computes in when its settings say ``auto``.

``auto`` follows the checkpoint: the dtype its ``config.json`` declares (``dtype``, or the older
``torch_dtype``), as transformers' ``dtype="auto"`` does, but only where the hardware computes that dtype
natively; otherwise float32. So a bfloat16 checkpoint (SmolLM2, Llama) runs in bfloat16 on GPUs that have
it and on CPUs with AVX512-BF16 or AMX (2-3x faster than float32 there, measured), and in float32 on
other CPUs; a float32 checkpoint (the toy-world model) stays float32 everywhere. Unlike vLLM's own
``auto``, a float32 checkpoint is never narrowed: its author asked for full precision, and alignment's
small weight updates can vanish below 16-bit rounding.

A named dtype (``float32``, ``bfloat16``, ``float16``) is used as given. The resolution runs where the
engine runs (inside the Generator actor), because that node's hardware is what counts.
"""

from __future__ import annotations

import json
from pathlib import Path

AUTO = "auto"
NAMED = ("float32", "bfloat16", "float16")
_ALIASES = {"float": "float32", "fp32": "float32", "bf16": "bfloat16", "half": "float16", "fp16": "float16"}


def normalise(dtype: str) -> str:
    """The canonical name of ``dtype`` (``auto`` or one of :data:`NAMED`); ValueError for anything else."""
    name = _ALIASES.get(dtype.strip().lower(), dtype.strip().lower())
    if name != AUTO and name not in NAMED:
        raise ValueError(f"dtype {dtype!r} is not one of auto, {', '.join(NAMED)}")
    return name


def declared_dtype(model: Path) -> str:
    """The dtype ``model/config.json`` declares (float32 when it declares none or one we do not serve)."""
    try:
        config = json.loads((model / "config.json").read_text())
    except (OSError, ValueError):
        return "float32"
    value = config.get("dtype") or config.get("torch_dtype") or "float32"
    try:
        name = normalise(str(value).removeprefix("torch."))
    except ValueError:
        return "float32"
    return "float32" if name == AUTO else name


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> set[str]:
    """The CPU feature flags Linux reports (x86 ``flags``, Arm ``Features``); empty where unreadable."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return set(value.split())
    return set()


def cpu_has_native_bfloat16(flags: set[str]) -> bool:
    """x86 with AVX512-BF16 or AMX-BF16, or Arm with BF16 instructions."""
    return bool(flags & {"avx512_bf16", "amx_bf16", "bf16"})


def resolve(requested: str, model: Path, *, gpu: bool, gpu_bfloat16: bool, cpu_bfloat16: bool) -> str:
    """The dtype to start the engine with: ``requested`` itself unless it is ``auto`` (see the module)."""
    name = normalise(requested)
    if name != AUTO:
        return name
    declared = declared_dtype(model)
    if declared == "bfloat16":
        if gpu:
            return "bfloat16" if gpu_bfloat16 else "float16"
        return "bfloat16" if cpu_bfloat16 else "float32"
    if declared == "float16":
        return "float16" if gpu else "float32"
    return "float32"


def resolve_here(requested: str, model: Path) -> str:
    """:func:`resolve` for this process's hardware (vLLM's platform: CUDA, or the CPU's flags)."""
    name = normalise(requested)
    if name != AUTO:
        return name
    from vllm.platforms import current_platform

    gpu = not current_platform.is_cpu()
    gpu_bfloat16 = False
    if gpu:
        import torch

        gpu_bfloat16 = bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    cpu_bfloat16 = cpu_has_native_bfloat16(cpu_flags())
    return resolve(name, model, gpu=gpu, gpu_bfloat16=gpu_bfloat16, cpu_bfloat16=cpu_bfloat16)
