"""An engine that serves LoRA adapters (as the server starts them: ``generator_max_lora_rank`` > 0) keeps
serving while a verification probe is scored beside running generations, and an adapter deploys under load.

vLLM's LoRA wrapper of the output head maps prompt log-probs to the wrong requests: with it, a probe scored
in the same engine step as a generation killed the engine (a deploy under load did). The engine serves
adapters on the decoder's projections only, so the probe is exact beside other requests.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from maskdpo.server.generation.engine import GenerationEngine
from maskdpo.server.generation.engine_settings import EngineSettings
from maskdpo.server.generation.hotswap import Deployer
from maskdpo.server.generation.types import Prompt, SamplingOptions
from tests.helpers.tiny_model import build_tiny_adapter, build_tiny_model

PROMPT = Prompt.chat([("user", "Tell me a bio of Marie Curie.")])
LONG = SamplingOptions(max_tokens=400, ignore_eos=True)


def test_probe_and_adapter_deploy_beside_running_generations(tmp_path: Path) -> None:
    model = build_tiny_model(tmp_path / "m", seed=0)
    adapter = build_tiny_adapter(model, tmp_path / "adapter", seed=1)

    async def run() -> dict[str, Any]:
        engine = await GenerationEngine.start(EngineSettings(model=model, max_num_seqs=4, max_lora_rank=8))
        try:
            deployer = Deployer(engine)
            alone = await engine.score(deployer.probe)
            running = [asyncio.create_task(engine.generate(PROMPT, LONG)) for _ in range(2)]
            while engine.unfinished() < 2:
                await asyncio.sleep(0.01)
            beside = await engine.score(deployer.probe)
            overlapped = engine.unfinished() == 2  # both still decoding: they shared the probe's engine steps
            report = await deployer.deploy(adapter)
            results = await asyncio.gather(*running)
            after = await engine.generate(PROMPT, SamplingOptions(max_tokens=2))
            adapted = await engine.score(deployer.probe)
            return dict(alone=alone, beside=beside, overlapped=overlapped, report=report, results=results,
                        after=after, adapted=adapted, dead=engine._llm.errored)
        finally:
            engine.shutdown()

    out = asyncio.run(run())
    assert out["overlapped"], "the generations finished before the probe: the test proved nothing"
    assert max(abs(a - b) for a, b in zip(out["alone"], out["beside"], strict=True)) < 1e-4
    report = out["report"]
    assert report.accepted and report.served.version == 2 and report.paused_s == 0.0, report
    assert max(abs(a - b) for a, b in zip(out["alone"], out["adapted"], strict=True)) > 1e-3, "adapter not applied"
    assert not out["dead"]
    assert all(len(r.samples[0].token_ids) == LONG.max_tokens and r.weight_version == 1 for r in out["results"])
    assert out["after"].weight_version == 2
